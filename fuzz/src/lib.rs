//! What the fuzz targets share: running the archive check on bytes in memory, and the properties
//! every outcome must have, whatever the input.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bcdi_shared::archive::{self, names, ArchiveError, ArchiveLimits, RangeSource, SourceError};

/// Bytes in memory that hold the check to its side of [`RangeSource`]: it asks only for ranges
/// inside the size, and never reads more than a bounded multiple of the archive.
pub struct StrictSource<'a> {
    bytes: &'a [u8],
    read: AtomicU64,
}

impl<'a> StrictSource<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            read: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RangeSource for StrictSource<'_> {
    async fn size(&self) -> Result<u64, SourceError> {
        Ok(self.bytes.len() as u64)
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        let end = start
            .checked_add(len)
            .expect("a range that does not overflow");
        assert!(
            end <= self.bytes.len() as u64,
            "read {start}..{end} of a {}-byte archive",
            self.bytes.len()
        );
        let total = self.read.fetch_add(len, Ordering::Relaxed) + len;
        // The tail and the central directory, each read once, and a few small records: twice
        // the archive and 128 KiB is far more than a correct check needs.
        assert!(
            total <= 2 * self.bytes.len() as u64 + 128 * 1024,
            "read {total} bytes of a {}-byte archive",
            self.bytes.len()
        );
        Ok(self.bytes[start as usize..end as usize].to_vec())
    }
}

/// Drives a future that never waits (the source is in memory) to its end, without a runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// Scans `bytes` as an archive under `limits` and checks what every answer must satisfy.
pub fn scan_and_check(bytes: &[u8], limits: &ArchiveLimits) {
    let source = StrictSource::new(bytes);
    match block_on(archive::scan(&source, limits)) {
        Ok(scan) => {
            let summary = &scan.summary;
            assert!(summary.files <= summary.entries);
            assert!(summary.entries <= limits.max_entries);
            assert!(summary.uncompressed_bytes <= limits.max_uncompressed_bytes);
            assert_eq!(summary.archive_bytes, bytes.len() as u64);
            let notices = summary.notices_path.rsplit('/').next().unwrap_or_default();
            assert!(
                notices.eq_ignore_ascii_case(archive::NOTICES_DAT),
                "{summary:?}"
            );

            let mut keys = std::collections::HashSet::new();
            for entry in &scan.entries {
                let path = entry.path.as_str();
                assert!(
                    !path.is_empty() && path.len() <= names::MAX_NAME_BYTES,
                    "{path:?}"
                );
                assert!(entry.path.depth() <= names::MAX_DEPTH, "{path:?}");
                for component in entry.path.components() {
                    // Nothing that climbs out of, or jumps from, the extraction directory, on
                    // Linux or on Windows.
                    assert!(!component.is_empty() && component != "." && component != "..");
                    assert!(component.len() <= names::MAX_COMPONENT_BYTES, "{path:?}");
                    assert!(
                        !component.contains(['\\', ':', '<', '>', '"', '|', '?', '*'])
                            && !component.chars().any(char::is_control),
                        "{path:?}"
                    );
                    assert!(!component.ends_with(['.', ' ']), "{path:?}");
                }
                assert!(
                    keys.insert(entry.path.key()),
                    "two entries are one file: {path:?}"
                );
                assert!(entry.uncompressed <= summary.uncompressed_bytes || entry.is_dir);
            }
        }
        Err(ArchiveError::Rejected(rejection)) => {
            // A stable reason code, and a detail for the school.
            assert!(archive::Reason::parse(rejection.reason()).is_some());
            assert!(!rejection.detail().is_empty());
        }
        Err(ArchiveError::Unavailable(detail)) => {
            panic!("bytes in memory are always readable, yet: {detail}")
        }
    }
}
