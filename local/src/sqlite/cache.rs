//! The establishments read on the requests' path, kept in memory until the next write.
//!
//! `GET /v1/establishments/{rne}` is the Cyberlibrairie's polling call: the same few records
//! read again and again between rare changes. Reading one from SQLite costs a read transaction
//! (the WAL's shared-memory locks, two `fcntl` calls) and the parsing of its row, more than the
//! rest of the request. This cache answers those reads while nothing has been written since.
//!
//! Coherence rests on one counter, the *generation*:
//! - every use of the writer connection bumps it once done (after its commit), whatever it
//!   wrote, so a write can never be missed by forgetting to invalidate a record;
//! - a read notes the generation *before* it reads SQLite, and its record is kept only under
//!   that generation; entries of an older generation are never served.
//!
//! So a read that begins after a write has returned sees a newer generation than any record
//! read before the write committed, and goes to SQLite. This holds because the store is the
//! only writer of its database file: [`super::SqliteStore::open`] holds an exclusive lock on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bcdi_shared::domain::{Establishment, Rne};

/// Beyond this many records (more establishments read between two writes than a local server
/// holds), the cache starts again from empty rather than grow.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(super) struct RecordCache {
    generation: AtomicU64,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// The generation every record below was read under.
    generation: u64,
    records: HashMap<Rne, Establishment>,
}

/// The generation a read began under: what [`RecordCache::keep`] needs to keep its record.
#[derive(Clone, Copy)]
pub(super) struct ReadStart(u64);

impl RecordCache {
    /// The record of `rne` if no write happened since it was read, else the moment to read it.
    pub(super) fn get(&self, rne: &Rne) -> Result<Establishment, ReadStart> {
        let generation = self.generation.load(Ordering::SeqCst);
        let entries = self.lock();
        if entries.generation == generation {
            if let Some(record) = entries.records.get(rne) {
                return Ok(record.clone());
            }
        }
        Err(ReadStart(generation))
    }

    /// Keeps `record`, read from SQLite after `start`, unless a write has happened since.
    pub(super) fn keep(&self, start: ReadStart, record: &Establishment) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::SeqCst) != start.0 {
            return;
        }
        if entries.generation != start.0 || entries.records.len() >= CAPACITY {
            entries.records.clear();
            entries.generation = start.0;
        }
        entries.records.insert(record.rne.clone(), record.clone());
    }

    /// Called once the writer connection is released: every record read so far may be stale.
    pub(super) fn written(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Entries are replaced whole under the lock, so a panicking holder left them consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcdi_shared::domain::{Griffe, Instant, LicenceCode, NewEstablishment, Secret, Version};

    /// The record of `rne` as read at `second`: `created_at` tells the readings apart.
    fn record(rne: &str, second: i64) -> Establishment {
        let new = NewEstablishment {
            rne: rne_of(rne),
            griffe: Griffe::parse("Collège Jean Moulin").expect("a valid griffe"),
            code: LicenceCode::parse("ABCDEFGH").expect("a valid code"),
            version: Version::CollegeLycee,
            agricole: false,
        };
        let at = Instant::from_unix(second);
        Establishment::create(new, Secret::from_presented("key").digest(), at, at)
    }

    fn rne_of(rne: &str) -> Rne {
        Rne::parse(rne).expect("a valid RNE")
    }

    fn served(cache: &RecordCache, rne: &str) -> Option<Instant> {
        cache.get(&rne_of(rne)).ok().map(|record| record.created_at)
    }

    #[test]
    fn a_record_is_served_until_the_next_write() {
        let cache = RecordCache::default();
        let start = cache
            .get(&rne_of("0750655E"))
            .expect_err("an empty cache has nothing");
        cache.keep(start, &record("0750655E", 1));
        assert_eq!(served(&cache, "0750655E"), Some(Instant::from_unix(1)));

        cache.written();

        assert_eq!(
            served(&cache, "0750655E"),
            None,
            "a write makes every record stale"
        );
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        // Given a read that began, then a write that committed before its record came back
        let cache = RecordCache::default();
        let start = cache
            .get(&rne_of("0750655E"))
            .expect_err("an empty cache has nothing");
        cache.written();

        // When that possibly stale record is offered
        cache.keep(start, &record("0750655E", 1));

        // Then it is not served: the next read goes to the database, and that one is kept
        let start = cache
            .get(&rne_of("0750655E"))
            .expect_err("the raced record was dropped");
        cache.keep(start, &record("0750655E", 2));
        assert_eq!(served(&cache, "0750655E"), Some(Instant::from_unix(2)));
    }

    #[test]
    fn records_of_an_older_generation_go_when_a_newer_one_is_kept() {
        let cache = RecordCache::default();
        let start = cache.get(&rne_of("0750655E")).expect_err("empty");
        cache.keep(start, &record("0750655E", 1));
        cache.written();

        let start = cache.get(&rne_of("0750654D")).expect_err("empty");
        cache.keep(start, &record("0750654D", 2));

        assert_eq!(cache.lock().records.len(), 1, "the stale record is gone");
        assert_eq!(served(&cache, "0750655E"), None);
        assert_eq!(served(&cache, "0750654D"), Some(Instant::from_unix(2)));
    }
}
