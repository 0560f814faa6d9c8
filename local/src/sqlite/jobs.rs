//! Jobs for the hosting agent in SQLite, with the promises of the DynamoDB adapter: one row per
//! job, claimed under the connection's lock so that two agents never lease the same job.

use async_trait::async_trait;
use bcdi_shared::domain::{Instant, Rne};
use bcdi_shared::ports::jobs::FINISHED_JOB_RETENTION_SECONDS;
use bcdi_shared::ports::{Job, JobKind, JobState, JobStore, Lease, NewJob, StoreError};
use rusqlite::{params, OptionalExtension, Row};

use super::{corrupt, unavailable, SqliteStore};

/// Created at every start, next to the establishments' tables. `available_at` is when a
/// claimable job (queued or leased) can be claimed: its creation, or its lease's expiry.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    key                 TEXT PRIMARY KEY,
    kind                TEXT NOT NULL,
    rne                 TEXT NOT NULL,
    input               TEXT NOT NULL,
    task_token          TEXT NOT NULL,
    state               TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    available_at        INTEGER,
    lease_id            TEXT,
    lease_expires_at    INTEGER,
    finished_at         INTEGER
) STRICT;

CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (kind, available_at)
    WHERE state IN ('queued', 'leased');
";

const SELECT_JOB: &str = "
SELECT key, kind, rne, input, task_token, state, created_at, lease_id, lease_expires_at,
       finished_at
FROM jobs";

struct StoredJob {
    key: String,
    kind: String,
    rne: String,
    input: String,
    task_token: String,
    state: String,
    created_at: i64,
    lease_id: Option<String>,
    lease_expires_at: Option<i64>,
    finished_at: Option<i64>,
}

impl StoredJob {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            key: row.get(0)?,
            kind: row.get(1)?,
            rne: row.get(2)?,
            input: row.get(3)?,
            task_token: row.get(4)?,
            state: row.get(5)?,
            created_at: row.get(6)?,
            lease_id: row.get(7)?,
            lease_expires_at: row.get(8)?,
            finished_at: row.get(9)?,
        })
    }

    fn parse(self) -> Result<Job, StoreError> {
        let lease = match (self.lease_id, self.lease_expires_at) {
            (Some(id), Some(expires_at)) => Some(Lease {
                id,
                expires_at: Instant::from_unix(expires_at),
            }),
            (None, None) => None,
            _ => return Err(corrupt("jobs.lease_id")),
        };
        Ok(Job {
            key: self.key,
            kind: JobKind::parse(&self.kind).map_err(|_| corrupt("jobs.kind"))?,
            rne: Rne::parse(&self.rne).map_err(|_| corrupt("jobs.rne"))?,
            input: serde_json::from_str(&self.input).map_err(|_| corrupt("jobs.input"))?,
            task_token: self.task_token,
            state: JobState::parse(&self.state).ok_or_else(|| corrupt("jobs.state"))?,
            lease,
            created_at: Instant::from_unix(self.created_at),
            finished_at: self.finished_at.map(Instant::from_unix),
        })
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(&self, job: &NewJob) -> Result<(), StoreError> {
        let connection = self.lock();
        // Finished jobs are kept for a while for inquiries, as DynamoDB's TTL keeps them.
        let forget_before = job
            .created_at
            .unix()
            .saturating_sub(i64::try_from(FINISHED_JOB_RETENTION_SECONDS).unwrap_or(i64::MAX));
        connection
            .execute(
                "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?1",
                [forget_before],
            )
            .map_err(unavailable)?;
        // The same token again is a repeated invocation of the step: the job stays as it is.
        connection
            .execute(
                "INSERT INTO jobs (key, kind, rne, input, task_token, state, created_at,
                                   available_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)
                 ON CONFLICT (key) DO UPDATE SET
                     kind = excluded.kind, rne = excluded.rne, input = excluded.input,
                     task_token = excluded.task_token, state = 'queued',
                     created_at = excluded.created_at, available_at = excluded.available_at,
                     lease_id = NULL, lease_expires_at = NULL, finished_at = NULL
                 WHERE jobs.task_token <> excluded.task_token",
                params![
                    job.key,
                    job.kind.as_str(),
                    job.rne.as_str(),
                    job.input.to_string(),
                    job.task_token,
                    job.created_at.unix(),
                ],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let row = self
            .lock()
            .query_row(
                &format!("{SELECT_JOB} WHERE key = ?1"),
                [key],
                StoredJob::read,
            )
            .optional()
            .map_err(unavailable)?;
        row.map(StoredJob::parse).transpose()
    }

    async fn claim(
        &self,
        kinds: &[JobKind],
        lease: &Lease,
        now: Instant,
    ) -> Result<Option<Job>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(unavailable)?;
        let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        let placeholders = vec!["?"; kinds.len()].join(", ");
        let key: Option<String> = {
            let mut statement = transaction
                .prepare(&format!(
                    "SELECT key FROM jobs
                     WHERE state IN ('queued', 'leased') AND available_at <= ?
                       AND kind IN ({placeholders})
                     ORDER BY available_at, key LIMIT 1"
                ))
                .map_err(unavailable)?;
            let mut values: Vec<rusqlite::types::Value> = vec![now.unix().into()];
            values.extend(kinds.iter().map(|kind| (*kind).to_owned().into()));
            statement
                .query_row(rusqlite::params_from_iter(values), |row| row.get(0))
                .optional()
                .map_err(unavailable)?
        };
        let Some(key) = key else {
            return Ok(None);
        };
        transaction
            .execute(
                "UPDATE jobs SET state = 'leased', lease_id = ?2, lease_expires_at = ?3,
                     available_at = ?3
                 WHERE key = ?1",
                params![key, lease.id, lease.expires_at.unix()],
            )
            .map_err(unavailable)?;
        let job = transaction
            .query_row(
                &format!("{SELECT_JOB} WHERE key = ?1"),
                [&key],
                StoredJob::read,
            )
            .map_err(unavailable)?;
        transaction.commit().map_err(unavailable)?;
        job.parse().map(Some)
    }

    async fn renew(
        &self,
        key: &str,
        lease_id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> Result<(), StoreError> {
        let updated = self
            .lock()
            .execute(
                "UPDATE jobs SET lease_expires_at = ?4, available_at = ?4
                 WHERE key = ?1 AND state = 'leased' AND lease_id = ?2 AND lease_expires_at > ?3",
                params![key, lease_id, now.unix(), expires_at.unix()],
            )
            .map_err(unavailable)?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn finish(
        &self,
        key: &str,
        lease_id: &str,
        state: JobState,
        at: Instant,
    ) -> Result<(), StoreError> {
        let updated = self
            .lock()
            .execute(
                "UPDATE jobs SET state = ?3, finished_at = ?4, available_at = NULL
                 WHERE key = ?1 AND state = 'leased' AND lease_id = ?2",
                params![key, lease_id, state.as_str(), at.unix()],
            )
            .map_err(unavailable)?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn cancel(&self, key: &str, at: Instant) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2, available_at = NULL
                 WHERE key = ?1 AND state IN ('queued', 'leased')",
                params![key, at.unix()],
            )
            .map_err(unavailable)?;
        Ok(())
    }
}
