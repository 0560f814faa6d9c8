//! The archive check on any bytes: it never panics, reads only inside the archive and a bounded
//! amount of it, and whatever it accepts has only safe, distinct paths within the limits.

#![no_main]

use bcdi_fuzz::scan_and_check;
use bcdi_shared::archive::ArchiveLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // Small limits, so that inputs of a few kilobytes reach every limit's branch.
    let limits = ArchiveLimits {
        max_uncompressed_bytes: 1 << 20,
        max_ratio: 50,
        ratio_min_bytes: 1024,
        max_entries: 64,
    };
    scan_and_check(bytes, &limits);
    scan_and_check(bytes, &ArchiveLimits::default());
});
