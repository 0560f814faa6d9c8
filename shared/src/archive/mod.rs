//! Checking a base archive (a ZIP file) without downloading it: a ranged read of its end finds
//! the central directory, whose entries are then read in large chunks and judged. A rejected
//! archive gets a stable reason code and an English detail naming the entry; a source that
//! could not be read is `Unavailable`, for the caller to retry.
//!
//! The same rules serve the hosting agent before it extracts an archive (`scan` gives it the
//! entries with their safe paths), so the check and the extraction cannot disagree.

pub mod craft;
pub mod format;
pub mod names;
pub mod source;

use std::collections::HashMap;
use std::fmt;

use format::{CentralEntry, RecordError};
use names::{Normalised, SafePath};
pub use source::{LocalFile, RangeSource, SourceError, StorageObject};

use crate::config::ConfigError;

/// The central directory is read in chunks of this size: after the tail, three more reads for a
/// directory of 100 000 entries (about 11 MB), and never more memory than this plus one record.
const CHUNK_LEN: u64 = 4 * 1024 * 1024;

/// Compression methods a BCDI server's host can inflate: stored and deflate, what Windows'
/// compressed folders, 7-Zip's ZIP mode and the usual backup tools write.
pub const SUPPORTED_METHODS: [u16; 2] = [0, 8];

/// The name of the main bibliographic file that makes a directory a BCDI base.
pub const NOTICES_DAT: &str = "NOTICES.DAT";

/// Limits that keep a hostile or broken archive from filling the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// `ARCHIVE_MAX_UNCOMPRESSED_BYTES`: the most an archive may inflate to, all entries
    /// together.
    pub max_uncompressed_bytes: u64,
    /// `ARCHIVE_MAX_RATIO`: the most an entry, or the whole archive, may inflate per byte.
    pub max_ratio: u64,
    /// `ARCHIVE_RATIO_MIN_BYTES`: entries (and archives) smaller than this once inflated are not
    /// held to the ratio. A few megabytes of zeros compress a thousandfold and harm no one;
    /// preallocated database files do exactly that.
    pub ratio_min_bytes: u64,
    /// `ARCHIVE_MAX_ENTRIES`: the most entries (files and folders) an archive may hold.
    pub max_entries: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_uncompressed_bytes: 20 * 1024 * 1024 * 1024,
            max_ratio: 200,
            ratio_min_bytes: 16 * 1024 * 1024,
            max_entries: 100_000,
        }
    }
}

impl ArchiveLimits {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(crate::config::var)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(number) if number > 0 => Ok(number),
                    _ => Err(ConfigError {
                        name,
                        problem: format!("must be a positive whole number, not {value:?}"),
                    }),
                },
            }
        };
        Ok(Self {
            max_uncompressed_bytes: number(
                "ARCHIVE_MAX_UNCOMPRESSED_BYTES",
                defaults.max_uncompressed_bytes,
            )?,
            max_ratio: number("ARCHIVE_MAX_RATIO", defaults.max_ratio)?,
            ratio_min_bytes: number("ARCHIVE_RATIO_MIN_BYTES", defaults.ratio_min_bytes)?,
            max_entries: number("ARCHIVE_MAX_ENTRIES", defaults.max_entries)?,
        })
    }
}

/// Why an archive cannot be used. Each has a stable code: workflows and the API carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not a ZIP archive, or a damaged one.
    NotAZip,
    /// The archive no longer exists in storage.
    ArchiveMissing,
    /// No `NOTICES.DAT` anywhere: not a BCDI base.
    MissingNoticesDat,
    /// `NOTICES.DAT` in several folders at the same depth: several bases in one archive.
    SeveralBases,
    /// A name that is absolute, climbs out with `..`, or that Windows would change.
    UnsafePath,
    /// A symbolic link or another special file.
    LinkEntry,
    /// An encrypted entry.
    EncryptedEntry,
    /// Two entries with the same name (ignoring case), or a name both file and folder.
    DuplicateEntry,
    /// More entries than `ARCHIVE_MAX_ENTRIES`.
    TooManyEntries,
    /// Inflates to more than `ARCHIVE_MAX_UNCOMPRESSED_BYTES`.
    TooLarge,
    /// Inflates more than `ARCHIVE_MAX_RATIO` times: a zip bomb.
    SuspiciousRatio,
    /// Entries sharing their compressed bytes: the other kind of zip bomb.
    OverlappingEntries,
    /// A compression method other than stored or deflate.
    UnsupportedCompression,
    /// An entry whose data does not inflate as the directory says (found at extraction).
    CorruptEntry,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::NotAZip,
        Reason::ArchiveMissing,
        Reason::MissingNoticesDat,
        Reason::SeveralBases,
        Reason::UnsafePath,
        Reason::LinkEntry,
        Reason::EncryptedEntry,
        Reason::DuplicateEntry,
        Reason::TooManyEntries,
        Reason::TooLarge,
        Reason::SuspiciousRatio,
        Reason::OverlappingEntries,
        Reason::UnsupportedCompression,
        Reason::CorruptEntry,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::NotAZip => "not_a_zip",
            Reason::ArchiveMissing => "archive_missing",
            Reason::MissingNoticesDat => "missing_notices_dat",
            Reason::SeveralBases => "several_bases",
            Reason::UnsafePath => "unsafe_path",
            Reason::LinkEntry => "link_entry",
            Reason::EncryptedEntry => "encrypted_entry",
            Reason::DuplicateEntry => "duplicate_entry",
            Reason::TooManyEntries => "too_many_entries",
            Reason::TooLarge => "too_large",
            Reason::SuspiciousRatio => "suspicious_ratio",
            Reason::OverlappingEntries => "overlapping_entries",
            Reason::UnsupportedCompression => "unsupported_compression",
            Reason::CorruptEntry => "corrupt_entry",
        }
    }

    pub fn parse(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected archive: the reason and one English sentence naming the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    reason: Reason,
    detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    pub fn kind(&self) -> Reason {
        self.reason
    }

    /// The stable snake_case code.
    pub fn reason(&self) -> &'static str {
        self.reason.code()
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The archive cannot be used; retrying changes nothing.
    #[error("archive rejected: {0}")]
    Rejected(Rejection),
    /// The archive could not be read; retry later.
    #[error("archive unavailable: {0}")]
    Unavailable(String),
}

impl ArchiveError {
    fn reject(reason: Reason, detail: impl Into<String>) -> Self {
        ArchiveError::Rejected(Rejection::new(reason, detail))
    }

    fn not_a_zip(detail: impl fmt::Display) -> Self {
        Self::reject(
            Reason::NotAZip,
            format!("This is not a usable ZIP archive: {detail}."),
        )
    }
}

impl From<SourceError> for ArchiveError {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::NotFound => Self::reject(
                Reason::ArchiveMissing,
                "The archive is no longer in storage.",
            ),
            SourceError::Unavailable(detail) => ArchiveError::Unavailable(detail),
        }
    }
}

/// What an accepted archive holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveSummary {
    /// Entries in the central directory, folders included.
    pub entries: u64,
    /// Of which files.
    pub files: u64,
    /// All files inflated, in bytes.
    pub uncompressed_bytes: u64,
    /// The archive's own size.
    pub archive_bytes: u64,
    /// The folder holding `NOTICES.DAT`, the base: `""` when at the top, else e.g. `data` or
    /// `Sauvegarde/data` (no trailing slash), as spelled in the archive.
    pub base_dir: String,
    /// `NOTICES.DAT`'s path in the archive, as spelled there (any case).
    pub notices_path: String,
    /// Ranged reads it took.
    pub reads: u32,
}

/// One entry as the check saw it, for the extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedEntry {
    /// Position in the central directory (the `zip` crate's index).
    pub index: usize,
    pub path: SafePath,
    pub is_dir: bool,
    pub compressed: u64,
    pub uncompressed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub summary: ArchiveSummary,
    /// In central directory order; the `./` root entry is left out.
    pub entries: Vec<ScannedEntry>,
}

/// Checks the archive `source` holds against `limits`, reading only its end and its central
/// directory.
pub async fn check<S: RangeSource + ?Sized>(
    source: &S,
    limits: &ArchiveLimits,
) -> Result<ArchiveSummary, ArchiveError> {
    scan(source, limits).await.map(|scan| scan.summary)
}

/// [`check`], also returning every entry with its safe path.
pub async fn scan<S: RangeSource + ?Sized>(
    source: &S,
    limits: &ArchiveLimits,
) -> Result<Scan, ArchiveError> {
    let mut reader = Reader { source, reads: 0 };
    let size = source.size().await?;
    if size < format::EOCD_LEN as u64 {
        return Err(ArchiveError::not_a_zip(format_args!(
            "it is {size} bytes long, shorter than the smallest ZIP archive"
        )));
    }

    let tail_start = size - size.min(format::TAIL_LEN);
    let tail = reader.read(tail_start, size - tail_start).await?;
    let directory = locate_directory(&mut reader, &tail, tail_start, size).await?;
    if directory.entries > limits.max_entries {
        return Err(ArchiveError::reject(
            Reason::TooManyEntries,
            format!(
                "The archive holds {} entries; at most {} are accepted.",
                directory.entries, limits.max_entries
            ),
        ));
    }

    // The central directory is often inside the tail already: no second read then.
    let initial = directory
        .offset
        .checked_sub(tail_start)
        .and_then(|at| tail.get(usize::try_from(at).ok()?..))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let mut chunks = Chunks {
        start: directory.offset,
        buffer_start: directory.offset,
        end: directory.offset + directory.size,
        buffer: initial,
        position: 0,
    };
    let mut judge = Judge::new(limits, size, directory.offset);
    for _ in 0..directory.entries {
        loop {
            let outcome = format::parse_central(chunks.available()).map(|(_, length)| length);
            match outcome {
                Ok(_) => break,
                Err(RecordError::Invalid(why)) => {
                    return Err(ArchiveError::not_a_zip(format_args!(
                        "entry {} of its central directory: {why}",
                        judge.index + 1
                    )))
                }
                Err(RecordError::Incomplete { needed }) => {
                    if !chunks.fill(&mut reader, needed).await? {
                        return Err(ArchiveError::not_a_zip(
                            "its central directory is shorter than declared",
                        ));
                    }
                }
            }
        }
        let (entry, length) = format::parse_central(chunks.available())
            .map_err(|_| ArchiveError::not_a_zip("its central directory changed while read"))?;
        judge.entry(&entry)?;
        chunks.position += length;
    }
    if chunks.consumed() != directory.size {
        return Err(ArchiveError::not_a_zip(
            "its central directory holds more than its declared entries",
        ));
    }
    judge.finish(reader.reads)
}

/// Counts reads, and refuses short ones: a source shorter than it said has changed under us.
struct Reader<'s, S: ?Sized> {
    source: &'s S,
    reads: u32,
}

impl<S: RangeSource + ?Sized> Reader<'_, S> {
    async fn read(&mut self, start: u64, len: u64) -> Result<Vec<u8>, ArchiveError> {
        self.reads += 1;
        let mut bytes = self.source.read(start, len).await?;
        if (bytes.len() as u64) < len {
            return Err(ArchiveError::Unavailable(format!(
                "read {} bytes at offset {start} where {len} were expected: the archive changed \
                 while being read",
                bytes.len()
            )));
        }
        bytes.truncate(len as usize);
        Ok(bytes)
    }
}

/// Where the central directory is, from the EOCD and, for ZIP64 archives, its records.
struct Directory {
    entries: u64,
    offset: u64,
    size: u64,
}

async fn locate_directory<S: RangeSource + ?Sized>(
    reader: &mut Reader<'_, S>,
    tail: &[u8],
    tail_start: u64,
    size: u64,
) -> Result<Directory, ArchiveError> {
    let eocd = format::find_eocd(tail)
        .ok_or_else(|| ArchiveError::not_a_zip("it has no end of central directory record"))?;
    let eocd_offset = tail_start + eocd.position as u64;
    let locator = format::find_zip64_locator(tail, eocd.position);

    let (directory, end) = match locator {
        Some(locator) => {
            if locator.record_disk != 0 || locator.disks > 1 {
                return Err(ArchiveError::not_a_zip("it is split over several disks"));
            }
            let locator_offset = eocd_offset - format::ZIP64_LOCATOR_LEN as u64;
            let record_end = locator
                .record_offset
                .checked_add(format::ZIP64_EOCD_LEN as u64)
                .filter(|&end| end <= locator_offset)
                .ok_or_else(|| {
                    ArchiveError::not_a_zip("its ZIP64 locator points outside the archive")
                })?;
            let record = match locator.record_offset.checked_sub(tail_start) {
                Some(at) => tail
                    .get(at as usize..(record_end - tail_start) as usize)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
                None => {
                    reader
                        .read(locator.record_offset, format::ZIP64_EOCD_LEN as u64)
                        .await?
                }
            };
            let record = format::parse_zip64_eocd(&record).ok_or_else(|| {
                ArchiveError::not_a_zip("its ZIP64 end of central directory record is damaged")
            })?;
            if record.disk != 0
                || record.central_disk != 0
                || record.entries_on_disk != record.entries
            {
                return Err(ArchiveError::not_a_zip("it is split over several disks"));
            }
            let directory = Directory {
                entries: record.entries,
                offset: record.central_offset,
                size: record.central_size,
            };
            (directory, locator.record_offset)
        }
        None => {
            if eocd.needs_zip64() {
                return Err(ArchiveError::not_a_zip(
                    "it announces ZIP64 records it does not have",
                ));
            }
            if eocd.disk != 0 || eocd.central_disk != 0 || eocd.entries_on_disk != eocd.entries {
                return Err(ArchiveError::not_a_zip("it is split over several disks"));
            }
            let directory = Directory {
                entries: u64::from(eocd.entries),
                offset: u64::from(eocd.central_offset),
                size: u64::from(eocd.central_size),
            };
            (directory, eocd_offset)
        }
    };

    let fits = directory
        .offset
        .checked_add(directory.size)
        .is_some_and(|directory_end| directory_end <= end && end <= size);
    if !fits {
        return Err(ArchiveError::not_a_zip(
            "its central directory lies outside the archive",
        ));
    }
    let smallest = directory
        .entries
        .checked_mul(format::CENTRAL_FIXED_LEN as u64);
    if smallest.is_none_or(|smallest| smallest > directory.size) {
        return Err(ArchiveError::not_a_zip(format_args!(
            "its central directory is too small for the {} entries it announces",
            directory.entries
        )));
    }
    Ok(directory)
}

/// The central directory, read in chunks into one buffer.
struct Chunks {
    /// Where the central directory starts.
    start: u64,
    /// The archive offset of `buffer[0]`.
    buffer_start: u64,
    /// Where the central directory ends.
    end: u64,
    /// Bytes from `buffer_start` on; from the tail it may hold more than the directory.
    buffer: Vec<u8>,
    /// Where the next record starts in `buffer`.
    position: usize,
}

impl Chunks {
    /// The unparsed bytes of the directory in the buffer, never beyond its end.
    fn available(&self) -> &[u8] {
        let directory_len = self.end.saturating_sub(self.buffer_start);
        let end = usize::try_from(directory_len)
            .unwrap_or(usize::MAX)
            .min(self.buffer.len());
        self.buffer.get(self.position..end).unwrap_or_default()
    }

    /// Bytes of the directory parsed so far.
    fn consumed(&self) -> u64 {
        self.buffer_start + self.position as u64 - self.start
    }

    /// Makes at least `needed` bytes available from `position`; false at the directory's end.
    async fn fill<S: RangeSource + ?Sized>(
        &mut self,
        reader: &mut Reader<'_, S>,
        needed: usize,
    ) -> Result<bool, ArchiveError> {
        let next = self.buffer_start + self.buffer.len() as u64;
        let remaining = self.end.saturating_sub(next);
        let missing = needed.saturating_sub(self.available().len()) as u64;
        if remaining == 0 || missing > remaining {
            return Ok(false);
        }
        self.buffer.drain(..self.position);
        self.buffer_start += self.position as u64;
        self.position = 0;
        let len = remaining.min(CHUNK_LEN.max(missing));
        let bytes = reader.read(next, len).await?;
        self.buffer.extend_from_slice(&bytes);
        Ok(true)
    }
}

/// What a path is in the archive so far, for duplicates and file/folder clashes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    Dir,
    /// A folder only implied by a deeper entry's path.
    ImpliedDir,
}

/// The rules, applied entry by entry, then to the whole.
struct Judge<'l> {
    limits: &'l ArchiveLimits,
    archive_bytes: u64,
    directory_offset: u64,
    index: usize,
    files: u64,
    uncompressed: u64,
    seen: HashMap<String, Seen>,
    /// Data spans (local header offset, end of its data at the least), for overlaps.
    spans: Vec<(u64, u64, usize)>,
    notices: Vec<SafePath>,
    entries: Vec<ScannedEntry>,
}

impl<'l> Judge<'l> {
    fn new(limits: &'l ArchiveLimits, archive_bytes: u64, directory_offset: u64) -> Self {
        Self {
            limits,
            archive_bytes,
            directory_offset,
            index: 0,
            files: 0,
            uncompressed: 0,
            seen: HashMap::new(),
            spans: Vec::new(),
            notices: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn entry(&mut self, entry: &CentralEntry<'_>) -> Result<(), ArchiveError> {
        let index = self.index;
        self.index += 1;
        let shown = names::decode(entry.raw_name, entry.utf8())
            .unwrap_or_else(|_| String::from_utf8_lossy(entry.raw_name).into_owned());
        let unsafe_path =
            |why: &str| ArchiveError::reject(Reason::UnsafePath, format!("Entry {shown:?} {why}."));

        if entry.disk_start != 0 {
            return Err(ArchiveError::not_a_zip("it is split over several disks"));
        }
        let name = names::decode(entry.raw_name, entry.utf8()).map_err(unsafe_path)?;
        let mut normalised = names::normalise(&name).map_err(|why| unsafe_path(&why))?;
        // A Unicode Path extra field is what most tools show and extract: hold it to the
        // same rules, and prefer it.
        if let Some(unicode) = entry.unicode_name {
            let unicode = names::decode(unicode, true).map_err(unsafe_path)?;
            normalised = names::normalise(&unicode).map_err(|why| unsafe_path(&why))?;
        }

        if entry.is_link_or_special() {
            return Err(ArchiveError::reject(
                Reason::LinkEntry,
                format!("Entry {shown:?} is a link or a special file, not a plain file."),
            ));
        }
        if entry.encrypted() {
            return Err(ArchiveError::reject(
                Reason::EncryptedEntry,
                format!("Entry {shown:?} is encrypted; bases must be archived without a password."),
            ));
        }

        let (path, is_dir) = match normalised {
            Normalised::Root => return Ok(()),
            Normalised::Dir(path) => (path, true),
            Normalised::File(path) => (path, false),
        };
        if !is_dir && !SUPPORTED_METHODS.contains(&entry.method) {
            return Err(ArchiveError::reject(
                Reason::UnsupportedCompression,
                format!(
                    "Entry {shown:?} uses compression method {}; only stored and deflate are \
                     accepted.",
                    entry.method
                ),
            ));
        }
        self.sizes(entry, &shown, index)?;
        self.names(&path, is_dir, &shown)?;

        if !is_dir {
            self.files += 1;
            if path.file_name().eq_ignore_ascii_case(NOTICES_DAT) {
                self.notices.push(path.clone());
            }
        }
        self.entries.push(ScannedEntry {
            index,
            path,
            is_dir,
            compressed: entry.compressed,
            uncompressed: entry.uncompressed,
        });
        Ok(())
    }

    fn sizes(
        &mut self,
        entry: &CentralEntry<'_>,
        shown: &str,
        index: usize,
    ) -> Result<(), ArchiveError> {
        let limits = self.limits;
        self.uncompressed = self
            .uncompressed
            .checked_add(entry.uncompressed)
            .filter(|&total| total <= limits.max_uncompressed_bytes)
            .ok_or_else(|| {
                ArchiveError::reject(
                    Reason::TooLarge,
                    format!(
                        "The archive inflates to more than {} bytes (reached at entry {shown:?}).",
                        limits.max_uncompressed_bytes
                    ),
                )
            })?;
        if exceeds_ratio(entry.uncompressed, entry.compressed, limits) {
            return Err(ArchiveError::reject(
                Reason::SuspiciousRatio,
                format!(
                    "Entry {shown:?} inflates from {} to {} bytes, more than {} times: this \
                     looks like a zip bomb.",
                    entry.compressed, entry.uncompressed, limits.max_ratio
                ),
            ));
        }
        // The data follows a local header of at least 30 bytes and ends before the directory.
        let data_end = entry
            .local_offset
            .checked_add(format::LOCAL_FIXED_LEN)
            .and_then(|end| end.checked_add(entry.compressed))
            .filter(|&end| end <= self.directory_offset);
        let Some(data_end) = data_end else {
            return Err(ArchiveError::not_a_zip(format_args!(
                "entry {shown:?} points outside the archive's data"
            )));
        };
        self.spans.push((entry.local_offset, data_end, index));
        Ok(())
    }

    fn names(&mut self, path: &SafePath, is_dir: bool, shown: &str) -> Result<(), ArchiveError> {
        let duplicate = |what: &str| {
            ArchiveError::reject(
                Reason::DuplicateEntry,
                format!("Entry {shown:?} {what} (names are compared ignoring case)."),
            )
        };
        for ancestor in path.ancestors() {
            match self.seen.get(&names::fold(ancestor)) {
                Some(Seen::File) => {
                    return Err(duplicate(&format!(
                        "lies in {ancestor:?}, which is also a file"
                    )))
                }
                Some(_) => {}
                None => {
                    self.seen.insert(names::fold(ancestor), Seen::ImpliedDir);
                }
            }
        }
        let key = path.key();
        match (self.seen.get(&key).copied(), is_dir) {
            (None, _) => {}
            (Some(Seen::ImpliedDir), true) => {}
            (Some(Seen::File), false) | (Some(Seen::Dir), true) => {
                return Err(duplicate("appears twice"))
            }
            (Some(_), _) => return Err(duplicate("is both a file and a folder")),
        }
        self.seen
            .insert(key, if is_dir { Seen::Dir } else { Seen::File });
        Ok(())
    }

    fn finish(mut self, reads: u32) -> Result<Scan, ArchiveError> {
        let limits = self.limits;
        if exceeds_ratio(self.uncompressed, self.archive_bytes, limits) {
            return Err(ArchiveError::reject(
                Reason::SuspiciousRatio,
                format!(
                    "The archive inflates from {} to {} bytes, more than {} times: this looks \
                     like a zip bomb.",
                    self.archive_bytes, self.uncompressed, limits.max_ratio
                ),
            ));
        }

        self.spans.sort_unstable();
        for pair in self.spans.windows(2) {
            let ((_, end, first), (start, _, second)) = (pair[0], pair[1]);
            if start < end {
                let name = |index: usize| {
                    self.entries
                        .iter()
                        .find(|entry| entry.index == index)
                        .map_or_else(|| format!("#{}", index + 1), |entry| entry.path.to_string())
                };
                return Err(ArchiveError::reject(
                    Reason::OverlappingEntries,
                    format!(
                        "Entries {:?} and {:?} share their compressed data: this looks like a \
                         zip bomb.",
                        name(first),
                        name(second)
                    ),
                ));
            }
        }

        let notices = self.base()?;
        let summary = ArchiveSummary {
            entries: self.index as u64,
            files: self.files,
            uncompressed_bytes: self.uncompressed,
            archive_bytes: self.archive_bytes,
            base_dir: notices.parent().to_owned(),
            notices_path: notices.to_string(),
            reads,
        };
        Ok(Scan {
            summary,
            entries: self.entries,
        })
    }

    /// `NOTICES.DAT` of the base: the shallowest one, which must be alone at its depth.
    fn base(&self) -> Result<SafePath, ArchiveError> {
        let Some(depth) = self.notices.iter().map(SafePath::depth).min() else {
            return Err(ArchiveError::reject(
                Reason::MissingNoticesDat,
                "The archive holds no NOTICES.DAT file: it is not a BCDI base.",
            ));
        };
        let mut shallowest = self.notices.iter().filter(|path| path.depth() == depth);
        let first = shallowest
            .next()
            .cloned()
            .unwrap_or_else(|| self.notices[0].clone());
        if let Some(second) = shallowest.next() {
            return Err(ArchiveError::reject(
                Reason::SeveralBases,
                format!(
                    "The archive holds several bases ({first} and {second}); send one archive \
                     per base."
                ),
            ));
        }
        Ok(first)
    }
}

/// Whether `uncompressed` bytes from `compressed` inflate beyond the limit; small ones never do.
fn exceeds_ratio(uncompressed: u64, compressed: u64, limits: &ArchiveLimits) -> bool {
    uncompressed >= limits.ratio_min_bytes
        && u128::from(uncompressed) > u128::from(compressed) * u128::from(limits.max_ratio)
}

#[cfg(test)]
mod tests;
