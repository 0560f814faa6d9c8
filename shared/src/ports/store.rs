//! Keeping establishments, their keys and their history.

use async_trait::async_trait;

use crate::domain::{Digest, Establishment, Rne, StatusEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with this identity already exists.
    #[error("already exists")]
    AlreadyExists,
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
}
