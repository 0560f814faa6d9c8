//! The last attempt given to an operator's retry, per establishment and workflow kind: the
//! SQLite side of `EstablishmentStore::retried_attempt` / `accept_retry` (on DynamoDB, two
//! attributes of the establishment's item).

use bcdi_shared::domain::{Establishment, Rne};
use bcdi_shared::ports::{StoreError, WorkflowKind};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::unavailable;

/// Created at every start, next to the establishments' tables; no row means no retry yet.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retries (
    rne         TEXT NOT NULL REFERENCES establishments (rne) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    PRIMARY KEY (rne, kind)
) STRICT;
";

pub(super) fn retried_attempt(
    connection: &Connection,
    rne: &Rne,
    kind: WorkflowKind,
) -> Result<u32, StoreError> {
    let attempt: Option<u32> = connection
        .query_row(
            "SELECT attempt FROM retries WHERE rne = ?1 AND kind = ?2",
            params![rne.as_str(), kind.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    Ok(attempt.unwrap_or(0))
}

/// One immediate transaction: both conditions are checked and the counter written while no
/// other writer can come in between.
pub(super) fn accept_retry(
    connection: &mut Connection,
    seen: &Establishment,
    kind: WorkflowKind,
    retried: u32,
    next: u32,
) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let event_seq: Option<u32> = transaction
        .query_row(
            "SELECT event_seq FROM establishments WHERE rne = ?1",
            [seen.rne.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    if event_seq != Some(seen.event_seq) {
        return Err(StoreError::Conflict);
    }
    if retried_attempt(&transaction, &seen.rne, kind)? != retried {
        return Err(StoreError::Conflict);
    }
    transaction
        .execute(
            "INSERT INTO retries (rne, kind, attempt) VALUES (?1, ?2, ?3)
             ON CONFLICT (rne, kind) DO UPDATE SET attempt = excluded.attempt",
            params![seen.rne.as_str(), kind.as_str(), next],
        )
        .map_err(unavailable)?;
    transaction.commit().map_err(unavailable)
}
