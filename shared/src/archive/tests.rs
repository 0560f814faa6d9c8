//! The check against archives written by the `zip` crate (what real tools produce) and against
//! hand-made bytes (what real tools never produce), one per rejection reason.

use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;

use super::craft::{Archive, Entry};
use super::*;

fn limits() -> ArchiveLimits {
    ArchiveLimits::default()
}

async fn run(bytes: &[u8]) -> Result<ArchiveSummary, ArchiveError> {
    check(bytes, &limits()).await
}

async fn rejected_with(bytes: &[u8], limits: &ArchiveLimits) -> Rejection {
    match check(bytes, limits).await {
        Err(ArchiveError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn reason(bytes: &[u8]) -> &'static str {
    rejected_with(bytes, &limits()).await.reason()
}

/// An archive as a real writer makes it: deflated files, folders.
fn zipped(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        if let Some(dir) = name.strip_suffix('/') {
            writer.add_directory(dir, options).unwrap();
        } else {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

/// A few hundred kilobytes of record-like data: compresses, but not absurdly.
fn records(count: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for index in 0..count {
        data.extend_from_slice(
            format!(
                "{index:08}|Le Petit Prince|Saint-Exupery, Antoine de|Gallimard|{}\n",
                index * 7919 % 1000
            )
            .as_bytes(),
        );
    }
    data
}

fn notices(name: &str) -> Entry {
    Entry::file(name, b"notices")
}

/// Records every read, to show what the check touches.
struct Counting<'a> {
    bytes: &'a [u8],
    reads: Mutex<Vec<(u64, u64)>>,
}

impl<'a> Counting<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            reads: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl RangeSource for Counting<'_> {
    async fn size(&self) -> Result<u64, SourceError> {
        Ok(self.bytes.len() as u64)
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        self.reads.lock().unwrap().push((start, len));
        self.bytes.read(start, len).await
    }
}

/// Answers with a fixed failure, or with fewer bytes than asked.
enum Broken {
    Missing,
    Down,
    Short(Vec<u8>),
}

#[async_trait]
impl RangeSource for Broken {
    async fn size(&self) -> Result<u64, SourceError> {
        match self {
            Broken::Missing => Err(SourceError::NotFound),
            Broken::Down => Err(SourceError::Unavailable("connection reset".into())),
            Broken::Short(bytes) => Ok(bytes.len() as u64),
        }
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        match self {
            Broken::Short(bytes) => {
                let mut read = bytes.read(start, len).await?;
                read.pop();
                Ok(read)
            }
            _ => Err(SourceError::Unavailable("connection reset".into())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Accepted archives

#[tokio::test]
async fn a_base_at_the_top_of_the_archive_is_accepted_and_summarised() {
    // Given a base archived as its files, the way BCDI's backup writes it
    let data = records(2000);
    let bytes = zipped(&[
        ("NOTICES.DAT", &data),
        ("EXEMPLAI.DAT", &data),
        ("LECTEURS.DAT", b"x"),
    ]);

    // When it is checked
    let summary = run(&bytes).await.unwrap();

    // Then it is accepted, with the base at the top
    assert_eq!(summary.entries, 3);
    assert_eq!(summary.files, 3);
    assert_eq!(summary.uncompressed_bytes, 2 * data.len() as u64 + 1);
    assert_eq!(summary.archive_bytes, bytes.len() as u64);
    assert_eq!(summary.base_dir, "");
    assert_eq!(summary.notices_path, "NOTICES.DAT");
}

#[tokio::test]
async fn a_base_zipped_with_its_folder_is_found_in_any_case() {
    let bytes = zipped(&[
        ("Sauvegarde/", b""),
        ("Sauvegarde/data/", b""),
        ("Sauvegarde/data/notices.dat", b"n"),
        ("Sauvegarde/data/Exemplai.dat", b"e"),
        ("Sauvegarde/LISEZMOI.TXT", b"r"),
    ]);
    let summary = run(&bytes).await.unwrap();
    assert_eq!(summary.base_dir, "Sauvegarde/data");
    assert_eq!(summary.notices_path, "Sauvegarde/data/notices.dat");
    assert_eq!(summary.entries, 5);
    assert_eq!(summary.files, 3);
}

#[tokio::test]
async fn the_shallowest_notices_dat_is_the_base_and_deeper_copies_are_ignored() {
    let bytes = Archive::new()
        .with(notices("data/NOTICES.DAT"))
        .with(notices("data/ancien/NOTICES.DAT"))
        .build();
    assert_eq!(run(&bytes).await.unwrap().base_dir, "data");
}

#[tokio::test]
async fn code_page_437_names_and_unicode_path_fields_are_read() {
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("x", b"1").raw_name(b"Donn\x82es.DAT", false))
        .with(
            Entry::file("y", b"2")
                .raw_name(b"PRETS.DAT", false)
                .extra_field(
                    0x7075,
                    &[&[1, 0, 0, 0, 0][..], "Prêts.DAT".as_bytes()].concat(),
                ),
        )
        .build();
    let scan = scan(bytes.as_slice(), &limits()).await.unwrap();
    let names: Vec<_> = scan
        .entries
        .iter()
        .map(|entry| entry.path.as_str())
        .collect();
    assert_eq!(names, ["NOTICES.DAT", "Données.DAT", "Prêts.DAT"]);
}

#[tokio::test]
async fn a_small_archive_is_checked_with_one_read_of_its_end() {
    // Given an archive whose data is far larger than the tail the check reads
    let big = records(40_000);
    let bytes = zipped(&[("NOTICES.DAT", &big), ("AUTRE.DAT", &big)]);
    assert!(bytes.len() > 300_000, "{}", bytes.len());
    let source = Counting::new(&bytes);

    // When it is checked
    let summary = check(&source, &limits()).await.unwrap();

    // Then one read of the last 64 KiB or so was enough
    let reads = source.reads.lock().unwrap().clone();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(summary.reads, 1);
    let (start, len) = reads[0];
    assert_eq!(start + len, bytes.len() as u64);
    assert_eq!(len, format::TAIL_LEN);
}

#[tokio::test]
async fn a_large_central_directory_is_read_in_a_few_chunks_and_not_the_data() {
    // Given 30 000 entries with long names: a central directory of several megabytes
    let mut archive = Archive::new().with(notices("base/NOTICES.DAT"));
    let padding = "x".repeat(120);
    for index in 0..30_000 {
        archive = archive.with(Entry::file(&format!("base/{padding}{index:05}.DAT"), b"d"));
    }
    let bytes = archive.build();
    let source = Counting::new(&bytes);

    let summary = check(&source, &limits()).await.unwrap();

    assert_eq!(summary.entries, 30_001);
    let reads = source.reads.lock().unwrap().clone();
    // The tail, then 4 MiB chunks of the rest of the directory.
    assert!(reads.len() >= 3 && reads.len() <= 7, "{reads:?}");
    let directory_start = reads[1..].iter().map(|(start, _)| *start).min().unwrap();
    let data_end = 30_001 * (30 + 1) + 30_000 * (5 + 120 + 4) + 15 + 7;
    assert!(
        directory_start >= data_end as u64,
        "read data at {directory_start}"
    );
}

#[tokio::test]
async fn zip64_records_are_followed() {
    let bytes = Archive::new()
        .zip64()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("AUTRE.DAT", b"autre"))
        .build();
    let summary = run(&bytes).await.unwrap();
    assert_eq!(summary.entries, 2);
    assert_eq!(summary.uncompressed_bytes, 12);
}

#[tokio::test]
async fn a_zip64_archive_written_by_the_zip_crate_is_read() {
    // Given more entries than the classic EOCD can count: the writer must use ZIP64 records
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.start_file("NOTICES.DAT", options).unwrap();
    writer.write_all(b"notices").unwrap();
    for index in 0..70_000 {
        writer.start_file(format!("{index}"), options).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();

    let summary = run(&bytes).await.unwrap();

    assert_eq!(summary.entries, 70_001);
}

#[tokio::test]
async fn an_archive_comment_and_trailing_bytes_do_not_hide_the_directory() {
    let mut bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .comment(&[b'c'; 1000])
        .build();
    assert!(run(&bytes).await.is_ok());
    bytes.extend_from_slice(b"\n");
    assert!(run(&bytes).await.is_ok());
}

#[tokio::test]
async fn small_entries_are_not_held_to_the_ratio() {
    // A megabyte of zeros deflates a thousandfold: preallocated database files do that.
    let zeros = vec![0u8; 1024 * 1024];
    let bytes = zipped(&[("NOTICES.DAT", &zeros)]);
    assert!(bytes.len() < zeros.len() / 200);
    assert!(run(&bytes).await.is_ok());
}

// ---------------------------------------------------------------------------------------------
// One test per rejection reason

#[tokio::test]
async fn not_a_zip_for_garbage_empty_and_truncated_files() {
    let good = zipped(&[("NOTICES.DAT", &records(100))]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"hello, this is not an archive at all".to_vec()),
        ("zeros", vec![0; 100_000]),
        ("truncated end", good[..good.len() - 10].to_vec()),
        ("first half", good[..good.len() / 2].to_vec()),
        ("without its start", good[good.len() / 2..].to_vec()),
    ];
    for (what, bytes) in cases {
        assert_eq!(reason(&bytes).await, "not_a_zip", "{what}");
    }
}

#[tokio::test]
async fn not_a_zip_when_the_directory_does_not_match_its_records() {
    let bytes = Archive::new().with(notices("NOTICES.DAT")).build();
    let eocd = bytes.len() - 22;

    // More entries announced than there are.
    let mut more = bytes.clone();
    more[eocd + 8..eocd + 12].copy_from_slice(&[2, 0, 2, 0]);
    assert_eq!(reason(&more).await, "not_a_zip");

    // The directory said to start beyond the archive.
    let mut beyond = bytes.clone();
    beyond[eocd + 16..eocd + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(reason(&beyond).await, "not_a_zip");

    // A split archive.
    let mut split = bytes.clone();
    split[eocd + 4] = 1;
    assert_eq!(reason(&split).await, "not_a_zip");

    // ZIP64 markers without ZIP64 records.
    let mut markers = bytes.clone();
    markers[eocd + 10..eocd + 12].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(reason(&markers).await, "not_a_zip");

    // An entry whose data would lie in the directory itself.
    let mut offset = bytes;
    let central = offset.len() - 22 - (46 + 11);
    offset[central + 42..central + 46].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(reason(&offset).await, "not_a_zip");
}

#[tokio::test]
async fn archive_missing_when_storage_has_no_such_object() {
    let rejection = match check(&Broken::Missing, &limits()).await {
        Err(ArchiveError::Rejected(rejection)) => rejection,
        other => panic!("{other:?}"),
    };
    assert_eq!(rejection.reason(), "archive_missing");
}

#[tokio::test]
async fn an_unreadable_or_shrinking_source_is_unavailable_not_rejected() {
    assert!(matches!(
        check(&Broken::Down, &limits()).await,
        Err(ArchiveError::Unavailable(_))
    ));
    let bytes = Archive::new().with(notices("NOTICES.DAT")).build();
    assert!(matches!(
        check(&Broken::Short(bytes), &limits()).await,
        Err(ArchiveError::Unavailable(_))
    ));
}

#[tokio::test]
async fn missing_notices_dat_when_no_file_has_that_name() {
    let bytes = zipped(&[
        ("EXEMPLAI.DAT", b"e"),
        ("NOTICES.DAT/", b""),
        ("NOTICES.BAK", b"n"),
    ]);
    let rejection = rejected_with(&bytes, &limits()).await;
    assert_eq!(rejection.reason(), "missing_notices_dat");
    assert!(rejection.detail().contains("NOTICES.DAT"));
    assert_eq!(reason(&Archive::new().build()).await, "missing_notices_dat");
}

#[tokio::test]
async fn several_bases_when_two_folders_hold_notices_dat_at_the_same_depth() {
    let bytes = Archive::new()
        .with(notices("data/NOTICES.DAT"))
        .with(notices("manuels/NOTICES.DAT"))
        .build();
    let rejection = rejected_with(&bytes, &limits()).await;
    assert_eq!(rejection.reason(), "several_bases");
    assert!(
        rejection.detail().contains("manuels/NOTICES.DAT"),
        "{}",
        rejection.detail()
    );
}

#[tokio::test]
async fn unsafe_path_for_absolute_climbing_and_windows_tricks() {
    for name in [
        "/etc/cron.d/x",
        "../NOTICES.DAT",
        "data/../../x",
        "..\\..\\Windows\\x",
        "C:\\Windows\\x",
        "\\\\serveur\\partage\\x",
        "data/NOTICES.DAT.",
        "data/aux.dat",
    ] {
        let bytes = Archive::new()
            .with(notices("NOTICES.DAT"))
            .with(Entry::file(name, b"x"))
            .build();
        let rejection = rejected_with(&bytes, &limits()).await;
        assert_eq!(rejection.reason(), "unsafe_path", "{name}");
        assert!(
            rejection.detail().contains(&format!("{name:?}")),
            "{}",
            rejection.detail()
        );
    }
}

#[tokio::test]
async fn unsafe_path_when_the_unicode_path_field_climbs_out() {
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(
            Entry::file("ok.dat", b"x")
                .extra_field(0x7075, &[&[1, 0, 0, 0, 0][..], b"../../evil"].concat()),
        )
        .build();
    assert_eq!(reason(&bytes).await, "unsafe_path");
}

#[tokio::test]
async fn link_entry_for_symlinks_special_files_and_reparse_points() {
    let cases = [
        Entry::file("lien", b"/etc/passwd").unix_mode(0o120_777),
        Entry::file("fifo", b"").unix_mode(0o010_644),
        Entry::file("jonction", b"").external_attributes(0x0400 | 0x10),
    ];
    for entry in cases {
        let name = String::from_utf8(entry.name.clone()).unwrap();
        let bytes = Archive::new()
            .with(notices("NOTICES.DAT"))
            .with(entry)
            .build();
        let rejection = rejected_with(&bytes, &limits()).await;
        assert_eq!(rejection.reason(), "link_entry", "{name}");
        assert!(rejection.detail().contains(&name));
    }
}

#[tokio::test]
async fn a_symlink_written_by_the_zip_crate_is_a_link_entry() {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file("NOTICES.DAT", options).unwrap();
    writer.add_symlink("data", "/etc", options).unwrap();
    let bytes = writer.finish().unwrap().into_inner();
    assert_eq!(reason(&bytes).await, "link_entry");
}

#[tokio::test]
async fn encrypted_entry_for_the_password_flag_and_aes() {
    let cases = [
        Entry::file("NOTICES.DAT", b"x").flags(1),
        Entry::file("NOTICES.DAT", b"x")
            .method(99)
            .extra_field(0x9901, &[2, 0, b'A', b'E', 3, 8, 0]),
    ];
    for entry in cases {
        let bytes = Archive::new().with(entry).build();
        let rejection = rejected_with(&bytes, &limits()).await;
        assert_eq!(rejection.reason(), "encrypted_entry");
        assert!(rejection.detail().contains("NOTICES.DAT"));
    }
}

#[tokio::test]
async fn duplicate_entry_for_names_equal_but_for_case_and_for_file_folder_clashes() {
    let twice = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("Prets.dat", b"1"))
        .with(Entry::file("PRETS.DAT", b"2"))
        .build();
    let rejection = rejected_with(&twice, &limits()).await;
    assert_eq!(rejection.reason(), "duplicate_entry");
    assert!(rejection.detail().contains("PRETS.DAT"));

    let dot_slash = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(notices("./notices.dat"))
        .build();
    assert_eq!(reason(&dot_slash).await, "duplicate_entry");

    let clash = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("data", b"file"))
        .with(Entry::file("DATA/x.dat", b"in a folder"))
        .build();
    assert_eq!(reason(&clash).await, "duplicate_entry");

    let folder_then_file = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::dir("data/"))
        .with(Entry::file("data", b"file"))
        .build();
    assert_eq!(reason(&folder_then_file).await, "duplicate_entry");
}

#[tokio::test]
async fn a_folder_entry_after_its_files_is_not_a_duplicate() {
    let bytes = Archive::new()
        .with(notices("data/NOTICES.DAT"))
        .with(Entry::dir("data/"))
        .build();
    assert!(run(&bytes).await.is_ok());
}

#[tokio::test]
async fn too_many_entries_beyond_the_limit() {
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("a", b""))
        .with(Entry::file("b", b""))
        .build();
    let strict = ArchiveLimits {
        max_entries: 2,
        ..limits()
    };
    assert_eq!(
        rejected_with(&bytes, &strict).await.reason(),
        "too_many_entries"
    );
    let enough = ArchiveLimits {
        max_entries: 3,
        ..limits()
    };
    assert!(check(bytes.as_slice(), &enough).await.is_ok());
}

#[tokio::test]
async fn too_large_when_the_total_inflates_beyond_the_limit() {
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("a", &[1; 600]))
        .with(Entry::file("b", &[2; 600]))
        .build();
    let small = ArchiveLimits {
        max_uncompressed_bytes: 1000,
        ..limits()
    };
    let rejection = rejected_with(&bytes, &small).await;
    assert_eq!(rejection.reason(), "too_large");
    assert!(
        rejection.detail().contains("\"b\""),
        "{}",
        rejection.detail()
    );

    // Sizes that would overflow a 64-bit sum are too large, not a panic.
    let huge = Archive::new()
        .zip64()
        .with(Entry::claimed("NOTICES.DAT", 10, u64::MAX))
        .with(Entry::claimed("b", 10, u64::MAX))
        .build();
    assert_eq!(reason(&huge).await, "too_large");
}

#[tokio::test]
async fn suspicious_ratio_for_an_entry_that_inflates_too_much() {
    // 1 KiB claiming 1 GiB: over the default 200:1.
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::claimed("bombe.dat", 1024, 1 << 30))
        .build();
    let rejection = rejected_with(&bytes, &limits()).await;
    assert_eq!(rejection.reason(), "suspicious_ratio");
    assert!(rejection.detail().contains("bombe.dat"));
}

#[tokio::test]
async fn suspicious_ratio_for_many_small_entries_that_inflate_too_much_together() {
    // Each entry is under the floor, the whole is not.
    let mut archive = Archive::new().with(notices("NOTICES.DAT"));
    for index in 0..100 {
        archive = archive.with(Entry::claimed(&format!("{index}.dat"), 10, 1 << 20));
    }
    let bytes = archive.build();
    let rejection = rejected_with(&bytes, &limits()).await;
    assert_eq!(rejection.reason(), "suspicious_ratio");
    assert!(rejection.detail().contains("The archive"));
}

#[tokio::test]
async fn suspicious_ratio_for_a_real_zip_bomb_entry() {
    let zeros = vec![0u8; 32 * 1024 * 1024];
    let bytes = zipped(&[("NOTICES.DAT", b"n"), ("zeros.dat", &zeros)]);
    assert_eq!(reason(&bytes).await, "suspicious_ratio");
}

#[tokio::test]
async fn overlapping_entries_that_share_their_data() {
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("a.dat", &[7; 100]))
        .with(Entry::file("b.dat", &[7; 100]).same_data_as(1))
        .build();
    let rejection = rejected_with(&bytes, &limits()).await;
    assert_eq!(rejection.reason(), "overlapping_entries");
    assert!(rejection.detail().contains("a.dat") && rejection.detail().contains("b.dat"));
}

#[tokio::test]
async fn unsupported_compression_for_methods_other_than_stored_and_deflate() {
    let bytes = Archive::new()
        .with(notices("NOTICES.DAT"))
        .with(Entry::file("b.dat", b"x").method(12))
        .build();
    let rejection = rejected_with(&bytes, &limits()).await;
    assert_eq!(rejection.reason(), "unsupported_compression");
    assert!(rejection.detail().contains("b.dat"));
}

#[test]
fn every_reason_has_a_distinct_code_that_parses_back() {
    let mut codes: Vec<_> = Reason::ALL.iter().map(|reason| reason.code()).collect();
    for reason in Reason::ALL {
        assert_eq!(Reason::parse(reason.code()), Some(reason));
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), Reason::ALL.len());
}

// ---------------------------------------------------------------------------------------------
// Robustness: no panic whatever the bytes

/// xorshift64*: reproducible pseudo-random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[tokio::test]
async fn every_truncation_of_an_archive_is_refused_without_panic() {
    let bytes = Archive::new()
        .zip64()
        .with(notices("data/NOTICES.DAT"))
        .with(Entry::file("data/EXEMPLAI.DAT", b"exemplaires"))
        .comment(b"sauvegarde")
        .build();
    for len in 0..bytes.len() {
        let outcome = run(&bytes[..len]).await;
        assert!(
            matches!(outcome, Err(ArchiveError::Rejected(_))),
            "{len}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn corrupted_bytes_give_an_answer_never_a_panic() {
    let originals = [
        Archive::new()
            .with(notices("data/NOTICES.DAT"))
            .with(Entry::file("data/EXEMPLAI.DAT", b"exemplaires"))
            .build(),
        Archive::new()
            .zip64()
            .with(notices("NOTICES.DAT"))
            .with(Entry::dir("d/"))
            .build(),
        zipped(&[("NOTICES.DAT", b"n"), ("x/y.dat", b"y")]),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for original in &originals {
        for _ in 0..3000 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % bytes.len() as u64) as usize;
                bytes[at] = match rng.next() % 3 {
                    0 => 0xff,
                    1 => 0,
                    _ => rng.next() as u8,
                };
            }
            // Any answer is fine; a panic fails the test.
            let _ = run(&bytes).await;
        }
    }
}

#[tokio::test]
async fn random_bytes_around_an_end_record_are_refused_without_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = (rng.next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let at = (rng.next() % (len as u64 + 1)) as usize;
        let mut eocd = vec![0x50, 0x4b, 0x05, 0x06];
        eocd.extend((0..18).map(|_| {
            if rng.next() & 1 == 0 {
                0
            } else {
                rng.next() as u8
            }
        }));
        bytes.splice(at..at, eocd);
        let _ = run(&bytes).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn limits_come_from_the_environment_with_defaults() {
    let defaults = ArchiveLimits::from_lookup(|_| None).unwrap();
    assert_eq!(defaults, ArchiveLimits::default());
    assert_eq!(defaults.max_uncompressed_bytes, 20 << 30);

    let set = ArchiveLimits::from_lookup(|name| match name {
        "ARCHIVE_MAX_RATIO" => Some("50".into()),
        "ARCHIVE_MAX_ENTRIES" => Some(" 10 ".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!((set.max_ratio, set.max_entries), (50, 10));

    let bad = ArchiveLimits::from_lookup(|name| {
        (name == "ARCHIVE_MAX_UNCOMPRESSED_BYTES").then(|| "20G".to_owned())
    })
    .unwrap_err();
    assert_eq!(bad.name, "ARCHIVE_MAX_UNCOMPRESSED_BYTES");
}
