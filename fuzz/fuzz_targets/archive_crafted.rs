//! The archive check on archives written record by record (`archive::craft`) from fuzzed
//! entries: names with `..`, backslashes, drive letters and device names, links, encryption
//! flags, lying sizes, shared data, ZIP64 records, then a few bytes overwritten. Raw bytes
//! rarely get past the end-of-central-directory search; these start as well-formed ZIP files,
//! so the fuzzer spends its time on the rules about entries.

#![no_main]

use bcdi_fuzz::scan_and_check;
use bcdi_shared::archive::craft::{Archive, Entry};
use bcdi_shared::archive::ArchiveLimits;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Pieces names are made of: what path attacks and BCDI bases are made of.
const PIECES: [&str; 16] = [
    "data",
    "NOTICES.DAT",
    "notices.dat",
    "..",
    ".",
    "/",
    "\\",
    "C:",
    "CON",
    "a.",
    "b ",
    "é",
    "travperso",
    "Sauvegarde",
    "x:y",
    "\u{1}",
];

#[derive(Arbitrary, Debug)]
struct FuzzEntry {
    pieces: Vec<u8>,
    raw_name: Option<Vec<u8>>,
    utf8: bool,
    data: Vec<u8>,
    method: u8,
    flags: u16,
    unix_mode: Option<u32>,
    uncompressed: Option<u32>,
    crc: Option<u32>,
    same_data_as: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    entries: Vec<FuzzEntry>,
    zip64: bool,
    comment: Vec<u8>,
    /// Positions (modulo the length) and values of bytes to overwrite once written.
    patches: Vec<(u16, u8)>,
}

fuzz_target!(|input: Input| {
    let mut archive = Archive::new();
    for (index, fuzzed) in input.entries.iter().take(32).enumerate() {
        let name: String = fuzzed
            .pieces
            .iter()
            .take(12)
            .map(|piece| PIECES[usize::from(*piece) % PIECES.len()])
            .collect();
        let mut entry = Entry::file(&name, &fuzzed.data);
        if let Some(raw) = &fuzzed.raw_name {
            entry = entry.raw_name(raw, fuzzed.utf8);
        }
        entry = entry.method(match fuzzed.method % 4 {
            0 => 0,
            1 => 8,
            _ => u16::from(fuzzed.method),
        });
        // Encryption (bit 0) and the data descriptor (bit 3) matter; the UTF-8 bit is kept.
        let utf8_flag = entry.flags & (1 << 11);
        entry = entry.flags(utf8_flag | (fuzzed.flags & 0b1001));
        if let Some(mode) = fuzzed.unix_mode {
            entry = entry.unix_mode(mode);
        }
        entry.uncompressed = fuzzed.uncompressed.map(u64::from);
        if let Some(crc) = fuzzed.crc {
            entry = entry.crc(crc);
        }
        if let Some(earlier) = fuzzed.same_data_as {
            if index > 0 {
                entry = entry.same_data_as(usize::from(earlier) % index);
            }
        }
        archive = archive.with(entry);
    }
    if input.zip64 {
        archive = archive.zip64();
    }
    let mut bytes = archive.comment(&input.comment).build();
    if !bytes.is_empty() {
        for (at, value) in input.patches.iter().take(8) {
            let at = usize::from(*at) % bytes.len();
            bytes[at] = *value;
        }
    }
    let limits = ArchiveLimits {
        max_uncompressed_bytes: 1 << 20,
        max_ratio: 50,
        ratio_min_bytes: 1024,
        max_entries: 16,
    };
    scan_and_check(&bytes, &limits);
});
