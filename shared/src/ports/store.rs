//! Keeping establishments, their keys and their history.

use async_trait::async_trait;

use crate::domain::{Digest, Establishment, Instant, Rne, Status, StatusEvent, Transition};
use crate::ports::WorkflowKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with this identity already exists.
    #[error("already exists")]
    AlreadyExists,
    /// A listing cursor that this store did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The record changed since it was read: the condition of a write did not hold.
    #[error("the record changed concurrently")]
    Conflict,
    /// The store could not be reached or refused the request; nothing was changed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EstablishmentStore: Send + Sync {
    async fn get(&self, rne: &Rne) -> Result<Option<Establishment>, StoreError>;

    /// Which establishment a key belongs to, by the key's digest.
    async fn find_by_key(&self, key: &Digest) -> Result<Option<Rne>, StoreError>;

    /// Stores a new establishment with its first event, atomically, or `AlreadyExists`.
    async fn create(&self, establishment: &Establishment) -> Result<(), StoreError>;

    /// Replaces the establishment's key, atomically, if its key is still `previous`: the
    /// previous key stops working at the same instant. `Conflict` if it changed meanwhile.
    async fn replace_key(
        &self,
        rne: &Rne,
        previous: &Digest,
        next: &Digest,
    ) -> Result<(), StoreError>;

    /// Removes an establishment whose workflow could not be started, if its key is still `key`,
    /// so that a failed creation leaves nothing behind.
    async fn delete_unstarted(&self, rne: &Rne, key: &Digest) -> Result<(), StoreError>;

    /// The establishment's status changes, oldest first.
    async fn history(&self, rne: &Rne) -> Result<Vec<StatusEvent>, StoreError>;

    /// Stores a change of status and its event, atomically, if the establishment's `event_seq`
    /// is still `transition.expected_seq`; `Conflict` otherwise (or if it does not exist).
    async fn transition(&self, rne: &Rne, transition: &Transition) -> Result<(), StoreError>;

    /// Moves the expected time of the next step, if the status is still `status`; `Conflict`
    /// otherwise. Not a change of status: no event.
    async fn set_next_step_at(
        &self,
        rne: &Rne,
        status: Status,
        at: Instant,
    ) -> Result<(), StoreError>;

    /// The last attempt of `kind` an operator's retry was given ([`Self::accept_retry`]), 0
    /// if none was.
    async fn retried_attempt(&self, rne: &Rne, kind: WorkflowKind) -> Result<u32, StoreError>;

    /// Accepts an operator's retry of `kind` as attempt `next`, in one conditional write: if the
    /// establishment is still as `seen` (same `event_seq`, so the same status and attempts) and
    /// its last retried attempt of `kind` is still `retried`; `Conflict` otherwise. So two
    /// retries that saw the same establishment never both get an attempt, and each accepted
    /// retry gets one no run was named by before, even when the previous retry's run ended
    /// before its first step recorded its attempt.
    async fn accept_retry(
        &self,
        seen: &Establishment,
        kind: WorkflowKind,
        retried: u32,
        next: u32,
    ) -> Result<(), StoreError>;

    /// Establishments in `status`, oldest change first, `limit` at most, after `cursor` (the
    /// opaque `next` of the previous page). Served by an index, never by a scan.
    async fn list_by_status(
        &self,
        status: Status,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// How many establishments are in `status` now (the gauges the E1/E2 alarms watch). Served
    /// by the index, never by a scan. This default pages through `list_by_status`, right for any
    /// store; the adapters count without reading the records.
    async fn count_by_status(&self, status: Status) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut cursor = None;
        loop {
            let page = self.list_by_status(status, cursor.as_deref(), 1000).await?;
            count += page.items.len() as u64;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Establishment>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}
