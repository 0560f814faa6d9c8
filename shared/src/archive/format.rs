//! The ZIP records the check reads (APPNOTE 6.3.10, sections 4.3.12 to 4.3.16 and 4.5.3),
//! parsed from byte slices. Every length and offset is checked before use; nothing here panics
//! or allocates more than the slice it is given.

/// `PK\x05\x06`: end of central directory record.
pub const EOCD_SIGNATURE: u32 = 0x0605_4b50;
/// `PK\x06\x07`: ZIP64 end of central directory locator.
pub const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
/// `PK\x06\x06`: ZIP64 end of central directory record.
pub const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
/// `PK\x01\x02`: central directory file header.
pub const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;

pub const EOCD_LEN: usize = 22;
pub const ZIP64_LOCATOR_LEN: usize = 20;
pub const ZIP64_EOCD_LEN: usize = 56;
pub const CENTRAL_FIXED_LEN: usize = 46;
/// The smallest local file header: what must lie before an entry's data.
pub const LOCAL_FIXED_LEN: u64 = 30;
/// The EOCD plus the longest comment plus the ZIP64 locator: one read of this many bytes from
/// the end finds everything needed to locate the central directory.
pub const TAIL_LEN: u64 = (EOCD_LEN + u16::MAX as usize + ZIP64_LOCATOR_LEN) as u64;

const ZIP64_EXTRA_ID: u16 = 0x0001;
/// WinZip AES encryption.
const AES_EXTRA_ID: u16 = 0x9901;
/// Info-ZIP Unicode Path: the name in UTF-8 next to a legacy-encoded one.
const UNICODE_PATH_EXTRA_ID: u16 = 0x7075;

pub fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let slice = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([slice[0], slice[1]]))
}

pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(slice);
    Some(u64::from_le_bytes(array))
}

/// The end of central directory record, with its position in the tail it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eocd {
    pub position: usize,
    pub disk: u16,
    pub central_disk: u16,
    pub entries_on_disk: u16,
    pub entries: u16,
    pub central_size: u32,
    pub central_offset: u32,
}

impl Eocd {
    /// Whether a field holds the "see the ZIP64 record" marker.
    pub fn needs_zip64(&self) -> bool {
        self.entries == u16::MAX
            || self.entries_on_disk == u16::MAX
            || self.central_size == u32::MAX
            || self.central_offset == u32::MAX
            || self.disk == u16::MAX
            || self.central_disk == u16::MAX
    }
}

/// Finds the EOCD in `tail`, the last bytes of the archive: the last signature whose comment
/// ends exactly at the end, else the last one whose comment fits (trailing bytes after an
/// archive are tolerated, as most readers do).
pub fn find_eocd(tail: &[u8]) -> Option<Eocd> {
    let last_start = tail.len().checked_sub(EOCD_LEN)?;
    let candidates = (0..=last_start)
        .rev()
        .filter(|&at| u32_at(tail, at) == Some(EOCD_SIGNATURE));
    let mut fallback = None;
    for at in candidates {
        let Some(comment) = u16_at(tail, at + 20) else {
            continue;
        };
        let end = at + EOCD_LEN + usize::from(comment);
        if end == tail.len() {
            return parse_eocd(tail, at);
        }
        if end < tail.len() && fallback.is_none() {
            fallback = Some(at);
        }
    }
    fallback.and_then(|at| parse_eocd(tail, at))
}

fn parse_eocd(tail: &[u8], at: usize) -> Option<Eocd> {
    Some(Eocd {
        position: at,
        disk: u16_at(tail, at + 4)?,
        central_disk: u16_at(tail, at + 6)?,
        entries_on_disk: u16_at(tail, at + 8)?,
        entries: u16_at(tail, at + 10)?,
        central_size: u32_at(tail, at + 12)?,
        central_offset: u32_at(tail, at + 16)?,
    })
}

/// The ZIP64 end of central directory locator that precedes the EOCD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zip64Locator {
    pub record_disk: u32,
    pub record_offset: u64,
    pub disks: u32,
}

/// The locator ending at `eocd_position` in `tail`, if there is one.
pub fn find_zip64_locator(tail: &[u8], eocd_position: usize) -> Option<Zip64Locator> {
    let at = eocd_position.checked_sub(ZIP64_LOCATOR_LEN)?;
    if u32_at(tail, at)? != ZIP64_LOCATOR_SIGNATURE {
        return None;
    }
    Some(Zip64Locator {
        record_disk: u32_at(tail, at + 4)?,
        record_offset: u64_at(tail, at + 8)?,
        disks: u32_at(tail, at + 16)?,
    })
}

/// The ZIP64 end of central directory record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zip64Eocd {
    pub disk: u32,
    pub central_disk: u32,
    pub entries_on_disk: u64,
    pub entries: u64,
    pub central_size: u64,
    pub central_offset: u64,
}

pub fn parse_zip64_eocd(record: &[u8]) -> Option<Zip64Eocd> {
    if u32_at(record, 0)? != ZIP64_EOCD_SIGNATURE {
        return None;
    }
    // The record's own size counts what follows its first 12 bytes: at least the fixed 44.
    if u64_at(record, 4)? < (ZIP64_EOCD_LEN - 12) as u64 {
        return None;
    }
    Some(Zip64Eocd {
        disk: u32_at(record, 16)?,
        central_disk: u32_at(record, 20)?,
        entries_on_disk: u64_at(record, 24)?,
        entries: u64_at(record, 32)?,
        central_size: u64_at(record, 40)?,
        central_offset: u64_at(record, 48)?,
    })
}

/// One central directory file header, borrowed from the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralEntry<'a> {
    pub version_made_by: u16,
    pub flags: u16,
    pub method: u16,
    pub compressed: u64,
    pub uncompressed: u64,
    pub disk_start: u32,
    pub external_attributes: u32,
    pub local_offset: u64,
    pub raw_name: &'a [u8],
    /// The Info-ZIP Unicode Path, when present.
    pub unicode_name: Option<&'a [u8]>,
    /// A WinZip AES extra field is present.
    pub aes: bool,
}

impl CentralEntry<'_> {
    pub fn utf8(&self) -> bool {
        self.flags & (1 << 11) != 0
    }

    /// Traditional PKWARE encryption (bit 0), strong encryption (bit 6) or WinZip AES.
    pub fn encrypted(&self) -> bool {
        self.flags & 0x0001 != 0 || self.flags & 0x0040 != 0 || self.method == 99 || self.aes
    }

    /// The Unix file type from the upper half of the external attributes, when set.
    pub fn unix_file_type(&self) -> u32 {
        (self.external_attributes >> 16) & 0o170_000
    }

    /// A symbolic link, device, FIFO or socket (Unix mode), or an NTFS reparse point (MS-DOS
    /// attribute 0x400, which is how junctions and Windows symbolic links are archived).
    pub fn is_link_or_special(&self) -> bool {
        let special = matches!(
            self.unix_file_type(),
            0o120_000 | 0o010_000 | 0o020_000 | 0o060_000 | 0o140_000
        );
        special || self.external_attributes & 0x0400 != 0
    }
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The buffer ends before the record does: `needed` bytes in all would be enough to go on.
    Incomplete { needed: usize },
    /// The bytes are not a valid record; the English reason.
    Invalid(&'static str),
}

/// Parses the central directory file header at the start of `bytes`, returning it and its
/// length.
pub fn parse_central(bytes: &[u8]) -> Result<(CentralEntry<'_>, usize), RecordError> {
    let incomplete = |needed: usize| RecordError::Incomplete { needed };
    if bytes.len() < CENTRAL_FIXED_LEN {
        return Err(incomplete(CENTRAL_FIXED_LEN));
    }
    let field16 = |at| u16_at(bytes, at).ok_or(RecordError::Invalid("truncated header"));
    let field32 = |at| u32_at(bytes, at).ok_or(RecordError::Invalid("truncated header"));
    if field32(0)? != CENTRAL_SIGNATURE {
        return Err(RecordError::Invalid(
            "the central directory holds something other than a file header",
        ));
    }
    let name_len = usize::from(field16(28)?);
    let extra_len = usize::from(field16(30)?);
    let comment_len = usize::from(field16(32)?);
    let total = CENTRAL_FIXED_LEN + name_len + extra_len + comment_len;
    if bytes.len() < total {
        return Err(incomplete(total));
    }
    let name_end = CENTRAL_FIXED_LEN + name_len;
    let raw_name = &bytes[CENTRAL_FIXED_LEN..name_end];
    let extra = &bytes[name_end..name_end + extra_len];

    let mut entry = CentralEntry {
        version_made_by: field16(4)?,
        flags: field16(8)?,
        method: field16(10)?,
        compressed: u64::from(field32(20)?),
        uncompressed: u64::from(field32(24)?),
        disk_start: u32::from(field16(34)?),
        external_attributes: field32(38)?,
        local_offset: u64::from(field32(42)?),
        raw_name,
        unicode_name: None,
        aes: false,
    };
    read_extra(extra, &mut entry)?;
    Ok((entry, total))
}

/// Applies the extra fields the check needs: ZIP64 sizes and offset, AES, Unicode Path.
fn read_extra<'a>(mut extra: &'a [u8], entry: &mut CentralEntry<'a>) -> Result<(), RecordError> {
    let malformed = RecordError::Invalid("malformed extra field");
    let mut zip64_seen = false;
    while !extra.is_empty() {
        let id = u16_at(extra, 0).ok_or(malformed.clone())?;
        let len = usize::from(u16_at(extra, 2).ok_or(malformed.clone())?);
        let data = extra.get(4..4 + len).ok_or(malformed.clone())?;
        match id {
            ZIP64_EXTRA_ID if !zip64_seen => {
                zip64_seen = true;
                read_zip64_extra(data, entry)?;
            }
            ZIP64_EXTRA_ID => return Err(RecordError::Invalid("two ZIP64 extra fields")),
            AES_EXTRA_ID => entry.aes = true,
            // Version 1, then the CRC-32 of the legacy name, then the UTF-8 name.
            UNICODE_PATH_EXTRA_ID if data.first() == Some(&1) && data.len() > 5 => {
                entry.unicode_name = Some(&data[5..]);
            }
            _ => {}
        }
        extra = &extra[4 + len..];
    }
    let needs_zip64 = entry.compressed == u64::from(u32::MAX)
        || entry.uncompressed == u64::from(u32::MAX)
        || entry.local_offset == u64::from(u32::MAX)
        || entry.disk_start == u32::from(u16::MAX);
    if needs_zip64 && !zip64_seen {
        return Err(RecordError::Invalid(
            "sizes beyond 4 GiB without the ZIP64 field that holds them",
        ));
    }
    Ok(())
}

/// The ZIP64 extended information: only the fields whose header value is the marker, in order.
fn read_zip64_extra(data: &[u8], entry: &mut CentralEntry<'_>) -> Result<(), RecordError> {
    let missing = RecordError::Invalid("ZIP64 extra field shorter than its header says");
    let mut at = 0;
    let mut next = || -> Result<u64, RecordError> {
        let value = u64_at(data, at).ok_or(missing.clone())?;
        at += 8;
        Ok(value)
    };
    if entry.uncompressed == u64::from(u32::MAX) {
        entry.uncompressed = next()?;
    }
    if entry.compressed == u64::from(u32::MAX) {
        entry.compressed = next()?;
    }
    if entry.local_offset == u64::from(u32::MAX) {
        entry.local_offset = next()?;
    }
    if entry.disk_start == u32::from(u16::MAX) {
        entry.disk_start = u32_at(data, at).ok_or(missing)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_refuse_out_of_bounds_and_overflowing_offsets() {
        assert_eq!(u16_at(&[1, 2], 0), Some(0x0201));
        assert_eq!(u16_at(&[1, 2], 1), None);
        assert_eq!(u32_at(&[0; 3], 0), None);
        assert_eq!(u64_at(&[0; 8], usize::MAX - 2), None);
    }

    #[test]
    fn an_eocd_is_found_behind_its_comment_and_not_inside_it() {
        // A comment holding an EOCD that does not end the file must not fool the search.
        let mut fake = vec![0u8; EOCD_LEN];
        fake[..4].copy_from_slice(&EOCD_SIGNATURE.to_le_bytes());
        fake.extend_from_slice(b" end of comment");
        let mut tail = vec![0u8; EOCD_LEN];
        tail[..4].copy_from_slice(&EOCD_SIGNATURE.to_le_bytes());
        tail[10..12].copy_from_slice(&7u16.to_le_bytes());
        tail[20..22].copy_from_slice(&(fake.len() as u16).to_le_bytes());
        tail.extend_from_slice(&fake);
        let eocd = find_eocd(&tail).unwrap();
        assert_eq!(eocd.position, 0);
        assert_eq!(eocd.entries, 7);
    }

    #[test]
    fn a_central_header_longer_than_the_buffer_asks_for_more() {
        let mut header = vec![0u8; CENTRAL_FIXED_LEN];
        header[..4].copy_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
        header[28..30].copy_from_slice(&10u16.to_le_bytes());
        assert_eq!(
            parse_central(&header),
            Err(RecordError::Incomplete { needed: 56 })
        );
        assert_eq!(
            parse_central(&header[..10]),
            Err(RecordError::Incomplete { needed: 46 })
        );
    }
}
