//! Extracting a checked archive's base into a fresh folder, safely: paths come from the check's
//! own reading of the central directory (never from the `zip` crate's), so nothing escapes the
//! target, no link is created, and no entry may inflate past the size the directory declares.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bcdi_shared::archive::names::fold;
use bcdi_shared::archive::{ArchiveError, ArchiveLimits, Reason, Rejection, Scan};

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub bytes: u64,
    /// Entries outside the base's folder, left in the archive.
    pub skipped: u64,
}

fn reject(reason: Reason, detail: String) -> ArchiveError {
    ArchiveError::Rejected(Rejection::new(reason, detail))
}

/// Trouble on this host (disk full, permissions): not the archive's fault.
fn local(what: &str, path: &Path, error: std::io::Error) -> ArchiveError {
    ArchiveError::Unavailable(format!("{what} {}: {error}", path.display()))
}

/// Extracts the base `scan` found in `archive` (the files under its `NOTICES.DAT` folder) into
/// `target`, which must not exist yet. Blocking: run it on a blocking thread.
pub fn extract(
    archive: &Path,
    scan: &Scan,
    target: &Path,
    limits: &ArchiveLimits,
) -> Result<Extracted, ArchiveError> {
    let file = File::open(archive).map_err(|error| local("cannot open", archive, error))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|error| {
        reject(
            Reason::NotAZip,
            format!("This is not a usable ZIP archive: {error}."),
        )
    })?;
    if zip.len() as u64 != scan.summary.entries {
        return Err(reject(
            Reason::NotAZip,
            "This is not a usable ZIP archive: its directory reads differently on a second look."
                .to_owned(),
        ));
    }
    fs::create_dir(target).map_err(|error| local("cannot create", target, error))?;

    let base = scan.summary.base_dir.as_str();
    let mut spelling = Spelling::default();
    let mut extracted = Extracted {
        files: 0,
        bytes: 0,
        skipped: 0,
    };
    let mut buffer = vec![0u8; 64 * 1024];
    for entry in &scan.entries {
        let Some(relative) = entry.path.strip_dir(base) else {
            extracted.skipped += 1;
            continue;
        };
        let path = target.join(spelling.of(relative));
        if entry.is_dir {
            fs::create_dir_all(&path).map_err(|error| local("cannot create", &path, error))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|error| local("cannot create", parent, error))?;
        }

        let shown = entry.path.as_str();
        let corrupt = |why: String| {
            reject(
                Reason::CorruptEntry,
                format!("Entry {shown:?} cannot be read: {why}."),
            )
        };
        let mut zipped = zip
            .by_index(entry.index)
            .map_err(|error| corrupt(error.to_string()))?;
        if zipped.size() != entry.uncompressed || zipped.compressed_size() != entry.compressed {
            return Err(corrupt(
                "its sizes differ between two readings of the directory".to_owned(),
            ));
        }
        // `create_new`: a second entry may never overwrite a first one.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| local("cannot create", &path, error))?;

        // One byte more than declared is enough to know it lies.
        let mut limited = (&mut zipped).take(entry.uncompressed.saturating_add(1));
        let mut written: u64 = 0;
        loop {
            let read = limited
                .read(&mut buffer)
                .map_err(|error| corrupt(error.to_string()))?;
            if read == 0 {
                break;
            }
            written += read as u64;
            if written > entry.uncompressed {
                return Err(reject(
                    Reason::SuspiciousRatio,
                    format!(
                        "Entry {shown:?} inflates beyond the {} bytes its directory declares: \
                         this looks like a zip bomb.",
                        entry.uncompressed
                    ),
                ));
            }
            if extracted.bytes + written > limits.max_uncompressed_bytes {
                return Err(reject(
                    Reason::TooLarge,
                    format!(
                        "The archive inflates to more than {} bytes.",
                        limits.max_uncompressed_bytes
                    ),
                ));
            }
            out.write_all(&buffer[..read])
                .map_err(|error| local("cannot write", &path, error))?;
        }
        if written != entry.uncompressed {
            return Err(corrupt(format!(
                "it inflates to {written} bytes, not the {} its directory declares",
                entry.uncompressed
            )));
        }
        out.flush()
            .map_err(|error| local("cannot write", &path, error))?;
        extracted.files += 1;
        extracted.bytes += written;
    }
    Ok(extracted)
}

/// One spelling per folder: the check treats `Data/` and `DATA/` as one folder (Windows
/// does), so on a case-sensitive disk both go to the first spelling seen.
#[derive(Default)]
struct Spelling {
    folders: HashMap<String, String>,
}

impl Spelling {
    fn of(&mut self, relative: &str) -> PathBuf {
        let mut path = PathBuf::new();
        let mut so_far = String::new();
        let mut components = relative.split('/').peekable();
        while let Some(component) = components.next() {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(component);
            if components.peek().is_none() {
                path.push(component);
            } else {
                let spelled = self
                    .folders
                    .entry(fold(&so_far))
                    .or_insert_with(|| component.to_owned());
                path.push(spelled.as_str());
            }
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use bcdi_shared::archive::craft::{Archive, Entry};
    use bcdi_shared::archive::{scan, LocalFile};

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let mut random = [0u8; 6];
            getrandom::fill(&mut random).unwrap();
            let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("bcdi-extract-{name}-{suffix}"));
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Writes `bytes` as an archive, scans it, and extracts it into `<dir>/base`.
    async fn extract_bytes(dir: &Dir, bytes: &[u8]) -> Result<Extracted, ArchiveError> {
        let archive = dir.0.join("archive.zip");
        fs::write(&archive, bytes).unwrap();
        let limits = ArchiveLimits::default();
        let scan = scan(&LocalFile::new(&archive), &limits).await?;
        extract(&archive, &scan, &dir.0.join("base"), &limits)
    }

    fn zipped(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[tokio::test]
    async fn the_base_folder_is_extracted_with_notices_dat_at_its_top() {
        let dir = Dir::new("top");
        let notices = b"notices ".repeat(10_000);
        let bytes = zipped(&[
            ("Sauvegarde/data/NOTICES.DAT", &notices),
            ("Sauvegarde/data/sous/EXEMPLAI.DAT", b"exemplaires"),
            ("Sauvegarde/LISEZMOI.TXT", b"hors de la base"),
        ]);

        let extracted = extract_bytes(&dir, &bytes).await.unwrap();

        assert_eq!(extracted.files, 2);
        assert_eq!(extracted.skipped, 1);
        assert_eq!(fs::read(dir.0.join("base/NOTICES.DAT")).unwrap(), notices);
        assert_eq!(
            fs::read(dir.0.join("base/sous/EXEMPLAI.DAT")).unwrap(),
            b"exemplaires"
        );
        assert!(!dir.0.join("base/LISEZMOI.TXT").exists());
        assert!(!dir.0.join("LISEZMOI.TXT").exists());
    }

    #[tokio::test]
    async fn folders_differing_only_in_case_become_one() {
        let dir = Dir::new("case");
        let bytes = Archive::new()
            .with(Entry::file("NOTICES.DAT", b"n"))
            .with(Entry::file("Index/a.dat", b"a"))
            .with(Entry::file("INDEX/b.dat", b"b"))
            .build();
        extract_bytes(&dir, &bytes).await.unwrap();
        assert!(dir.0.join("base/Index/a.dat").exists());
        assert!(dir.0.join("base/Index/b.dat").exists());
        assert!(!dir.0.join("base/INDEX").exists());
    }

    #[tokio::test]
    async fn an_entry_inflating_past_its_declared_size_is_refused_before_more_is_written() {
        // Given a real deflated entry whose declared size was lowered after writing
        let dir = Dir::new("bomb");
        let mut bytes = zipped(&[("NOTICES.DAT", b"n"), ("gros.dat", &[b'x'; 100_000])]);
        lower_declared_size(&mut bytes, b"gros.dat", 1000);

        let error = extract_bytes(&dir, &bytes).await.unwrap_err();

        let ArchiveError::Rejected(rejection) = error else {
            panic!("{error:?}")
        };
        // The `zip` crate notices first (a corrupt entry); our own cap would say zip bomb.
        assert!(
            ["corrupt_entry", "suspicious_ratio"].contains(&rejection.reason()),
            "{rejection}"
        );
        assert!(rejection.detail().contains("gros.dat"));
        let written = fs::metadata(dir.0.join("base/gros.dat")).map_or(0, |meta| meta.len());
        assert!(written <= 1000, "{written} bytes written");
    }

    #[tokio::test]
    async fn data_that_does_not_match_its_crc_is_a_corrupt_entry() {
        let dir = Dir::new("crc");
        let bytes = Archive::new()
            .with(Entry::file("NOTICES.DAT", b"notices").crc(0x1234_5678))
            .build();
        let error = extract_bytes(&dir, &bytes).await.unwrap_err();
        let ArchiveError::Rejected(rejection) = error else {
            panic!("{error:?}")
        };
        assert_eq!(rejection.reason(), "corrupt_entry");
        assert!(rejection.detail().contains("NOTICES.DAT"));
    }

    #[tokio::test]
    async fn an_existing_target_is_never_written_into() {
        let dir = Dir::new("exists");
        fs::create_dir(dir.0.join("base")).unwrap();
        let bytes = Archive::new()
            .with(Entry::file("NOTICES.DAT", b"n"))
            .build();
        assert!(matches!(
            extract_bytes(&dir, &bytes).await,
            Err(ArchiveError::Unavailable(_))
        ));
        assert!(!dir.0.join("base/NOTICES.DAT").exists());
    }

    #[test]
    fn folder_spellings_follow_the_first_seen() {
        let mut spelling = Spelling::default();
        assert_eq!(spelling.of("Data/x"), PathBuf::from("Data/x"));
        assert_eq!(spelling.of("DATA/Sub/y"), PathBuf::from("Data/Sub/y"));
        assert_eq!(spelling.of("data/SUB/z"), PathBuf::from("Data/Sub/z"));
        assert_eq!(spelling.of("top.dat"), PathBuf::from("top.dat"));
    }

    /// Sets the uncompressed size of `name` to `size` in its local and central headers.
    fn lower_declared_size(bytes: &mut [u8], name: &[u8], size: u32) {
        let mut at = 0;
        while let Some(found) = find(&bytes[at..], name) {
            let name_at = at + found;
            if name_at >= 30 && bytes[name_at - 30..name_at - 26] == [0x50, 0x4b, 0x03, 0x04] {
                bytes[name_at - 30 + 22..name_at - 30 + 26].copy_from_slice(&size.to_le_bytes());
            }
            if name_at >= 46 && bytes[name_at - 46..name_at - 42] == [0x50, 0x4b, 0x01, 0x02] {
                bytes[name_at - 46 + 24..name_at - 46 + 28].copy_from_slice(&size.to_le_bytes());
            }
            at = name_at + 1;
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
    }
}
