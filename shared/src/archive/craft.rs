//! Hand-made ZIP archives, byte by byte, for tests and fuzzing seeds: entries no well-behaved
//! writer produces (`..` names, links, encryption flags, lying sizes, shared data, ZIP64 records
//! on a small archive) are exactly what the check must refuse. Data is stored as given; the
//! sizes and CRC it declares are right unless a test overrides them.

/// One entry to write.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    /// The bytes stored after the local header (already compressed if `method` says so).
    pub data: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub version_made_by: u16,
    pub external_attributes: u32,
    /// Uncompressed size to declare; the data's length when `None`.
    pub uncompressed: Option<u64>,
    /// CRC-32 to declare; the data's when `None`.
    pub crc: Option<u32>,
    /// Extra fields of the central header, after the ZIP64 one.
    pub extra: Vec<u8>,
    /// Write this entry's central header with the local offset of an earlier entry.
    pub same_data_as: Option<usize>,
}

impl Entry {
    /// A stored file.
    pub fn file(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            method: 0,
            flags: 1 << 11,
            // Unix (3), spec version 2.0: the usual for Info-ZIP.
            version_made_by: (3 << 8) | 20,
            external_attributes: 0o100_644 << 16,
            uncompressed: None,
            crc: None,
            extra: Vec::new(),
            same_data_as: None,
        }
    }

    /// A folder entry (the name should end with `/`).
    pub fn dir(name: &str) -> Self {
        Self {
            external_attributes: (0o040_755 << 16) | 0x10,
            ..Self::file(name, b"")
        }
    }

    /// A file whose stored bytes are `compressed_len` zeros and which claims to inflate to
    /// `uncompressed` bytes with deflate: enough for the check, which never inflates. Sizes of
    /// 4 GiB and more need a ZIP64 archive.
    pub fn claimed(name: &str, compressed_len: usize, uncompressed: u64) -> Self {
        Self {
            method: 8,
            uncompressed: Some(uncompressed),
            ..Self::file(name, &vec![0; compressed_len])
        }
    }

    pub fn raw_name(mut self, name: &[u8], utf8: bool) -> Self {
        self.name = name.to_vec();
        if utf8 {
            self.flags |= 1 << 11;
        } else {
            self.flags &= !(1 << 11);
        }
        self
    }

    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.external_attributes = mode << 16;
        self
    }

    pub fn external_attributes(mut self, attributes: u32) -> Self {
        self.external_attributes = attributes;
        self
    }

    pub fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }

    pub fn method(mut self, method: u16) -> Self {
        self.method = method;
        self
    }

    pub fn extra_field(mut self, id: u16, data: &[u8]) -> Self {
        self.extra.extend_from_slice(&id.to_le_bytes());
        self.extra
            .extend_from_slice(&u16::try_from(data.len()).unwrap_or(u16::MAX).to_le_bytes());
        self.extra.extend_from_slice(data);
        self
    }

    pub fn same_data_as(mut self, index: usize) -> Self {
        self.same_data_as = Some(index);
        self
    }

    pub fn crc(mut self, crc: u32) -> Self {
        self.crc = Some(crc);
        self
    }
}

/// An archive to write.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    pub entries: Vec<Entry>,
    /// Write ZIP64 records (EOCD record and locator, and ZIP64 extra fields) however small.
    pub zip64: bool,
    pub comment: Vec<u8>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, entry: Entry) -> Self {
        self.entries.push(entry);
        self
    }

    pub fn zip64(mut self) -> Self {
        self.zip64 = true;
        self
    }

    pub fn comment(mut self, comment: &[u8]) -> Self {
        self.comment = comment.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for entry in &self.entries {
            if let Some(earlier) = entry.same_data_as {
                offsets.push(offsets.get(earlier).copied().unwrap_or(0));
                continue;
            }
            offsets.push(out.len() as u64);
            let zip64_extra = self.local_zip64_extra(entry);
            put32(&mut out, 0x0403_4b50);
            put16(&mut out, if self.zip64 { 45 } else { 20 });
            put16(&mut out, entry.flags);
            put16(&mut out, entry.method);
            put16(&mut out, 0);
            put16(&mut out, 0x21);
            put32(&mut out, entry.crc.unwrap_or_else(|| crc32(&entry.data)));
            put32(&mut out, self.small(entry.data.len() as u64));
            put32(&mut out, self.small(uncompressed(entry)));
            put16(&mut out, entry.name.len() as u16);
            put16(&mut out, zip64_extra.len() as u16);
            out.extend_from_slice(&entry.name);
            out.extend_from_slice(&zip64_extra);
            out.extend_from_slice(&entry.data);
        }

        let directory_offset = out.len() as u64;
        for (entry, &offset) in self.entries.iter().zip(&offsets) {
            let mut extra = Vec::new();
            if self.zip64 {
                put16(&mut extra, 0x0001);
                put16(&mut extra, 24);
                put64(&mut extra, uncompressed(entry));
                put64(&mut extra, entry.data.len() as u64);
                put64(&mut extra, offset);
            }
            extra.extend_from_slice(&entry.extra);
            put32(&mut out, 0x0201_4b50);
            put16(&mut out, entry.version_made_by);
            put16(&mut out, if self.zip64 { 45 } else { 20 });
            put16(&mut out, entry.flags);
            put16(&mut out, entry.method);
            put16(&mut out, 0);
            put16(&mut out, 0x21);
            put32(&mut out, entry.crc.unwrap_or_else(|| crc32(&entry.data)));
            put32(&mut out, self.small(entry.data.len() as u64));
            put32(&mut out, self.small(uncompressed(entry)));
            put16(&mut out, entry.name.len() as u16);
            put16(&mut out, extra.len() as u16);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put32(&mut out, entry.external_attributes);
            put32(&mut out, self.small(offset));
            out.extend_from_slice(&entry.name);
            out.extend_from_slice(&extra);
        }
        let directory_size = out.len() as u64 - directory_offset;
        let count = self.entries.len() as u64;

        if self.zip64 {
            let record_offset = out.len() as u64;
            put32(&mut out, 0x0606_4b50);
            put64(&mut out, 44);
            put16(&mut out, 45);
            put16(&mut out, 45);
            put32(&mut out, 0);
            put32(&mut out, 0);
            put64(&mut out, count);
            put64(&mut out, count);
            put64(&mut out, directory_size);
            put64(&mut out, directory_offset);
            put32(&mut out, 0x0706_4b50);
            put32(&mut out, 0);
            put64(&mut out, record_offset);
            put32(&mut out, 1);
        }
        put32(&mut out, 0x0605_4b50);
        put16(&mut out, 0);
        put16(&mut out, 0);
        let short_count = if self.zip64 { u16::MAX } else { count as u16 };
        put16(&mut out, short_count);
        put16(&mut out, short_count);
        put32(&mut out, self.small(directory_size));
        put32(&mut out, self.small(directory_offset));
        put16(&mut out, self.comment.len() as u16);
        out.extend_from_slice(&self.comment);
        out
    }

    /// A 32-bit field: the marker that sends readers to the ZIP64 field, in ZIP64 archives.
    fn small(&self, value: u64) -> u32 {
        if self.zip64 {
            u32::MAX
        } else {
            value as u32
        }
    }

    fn local_zip64_extra(&self, entry: &Entry) -> Vec<u8> {
        let mut extra = Vec::new();
        if self.zip64 {
            put16(&mut extra, 0x0001);
            put16(&mut extra, 16);
            put64(&mut extra, uncompressed(entry));
            put64(&mut extra, entry.data.len() as u64);
        }
        extra
    }
}

fn uncompressed(entry: &Entry) -> u64 {
    entry.uncompressed.unwrap_or(entry.data.len() as u64)
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// CRC-32 (IEEE), bit by bit: slow, but only tests write archives this way.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
