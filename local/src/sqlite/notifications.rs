//! `NotificationStore` on SQLite: the outbox is the `events` table itself, whose rows carry
//! their webhook's delivery in the `notify_*` columns (the same names as the DynamoDB item's
//! attributes). `insert_event` writes every new event as pending, due at once, in the
//! transaction that changes the status.

use async_trait::async_trait;
use bcdi_shared::domain::{Instant, Rne, Status, StatusEvent};
use bcdi_shared::ports::{
    AfterFailure, Delivery, DeliveryState, Notification, NotificationStore, StoreError,
};
use rusqlite::{params, Connection, Row};

use super::{corrupt, unavailable, SqliteStore};

/// The delivery columns, added to `events` when missing so that a database created before
/// notifications existed opens as it is. Its events keep `notify_state` NULL: they predate
/// the outbox and are never sent (their changes are long past).
const COLUMNS: [(&str, &str); 6] = [
    ("notify_state", "TEXT"),
    ("notify_at", "INTEGER"),
    ("notify_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("notify_sent_at", "INTEGER"),
    ("notify_last_at", "INTEGER"),
    ("notify_error", "TEXT"),
];

/// Due notifications, soonest first, without reading the settled ones.
const INDEX: &str = "CREATE INDEX IF NOT EXISTS events_notify_due
    ON events (notify_at, rne, seq) WHERE notify_state = 'pending'";

const SELECT: &str = "SELECT rne, seq, status, previous, at, notify_state, notify_at,
    notify_attempts, notify_sent_at, notify_last_at, notify_error FROM events";

/// Adds what is missing of the delivery columns and their index, in one transaction.
pub(super) fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let mut existing = Vec::new();
    {
        let mut statement = connection
            .prepare("SELECT name FROM pragma_table_info('events')")
            .map_err(unavailable)?;
        let names = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(unavailable)?;
        for name in names {
            existing.push(name.map_err(unavailable)?);
        }
    }
    let mut batch = String::from("BEGIN;\n");
    for (name, definition) in COLUMNS {
        if !existing.iter().any(|column| column == name) {
            batch.push_str(&format!(
                "ALTER TABLE events ADD COLUMN {name} {definition};\n"
            ));
        }
    }
    batch.push_str(INDEX);
    batch.push_str(";\nCOMMIT;");
    connection.execute_batch(&batch).map_err(unavailable)
}

fn read(row: &Row<'_>) -> rusqlite::Result<StoredNotification> {
    Ok(StoredNotification {
        rne: row.get(0)?,
        seq: row.get(1)?,
        status: row.get(2)?,
        previous: row.get(3)?,
        at: row.get(4)?,
        state: row.get(5)?,
        state_at: row.get(6)?,
        attempts: row.get(7)?,
        sent_at: row.get(8)?,
        last_at: row.get(9)?,
        error: row.get(10)?,
    })
}

/// A row as stored, before its values are parsed back into domain types.
struct StoredNotification {
    rne: String,
    seq: u32,
    status: String,
    previous: Option<String>,
    at: i64,
    state: String,
    state_at: Option<i64>,
    attempts: u32,
    sent_at: Option<i64>,
    last_at: Option<i64>,
    error: Option<String>,
}

impl StoredNotification {
    fn parse(self) -> Result<Notification, StoreError> {
        let at = Instant::from_unix(self.state_at.ok_or_else(|| corrupt("notify_at"))?);
        Ok(Notification {
            rne: Rne::parse(&self.rne).map_err(|_| corrupt("rne"))?,
            event: StatusEvent {
                seq: self.seq,
                status: Status::parse(&self.status).map_err(|_| corrupt("event status"))?,
                previous: self
                    .previous
                    .map(|code| Status::parse(&code).map_err(|_| corrupt("event previous")))
                    .transpose()?,
                at: Instant::from_unix(self.at),
            },
            delivery: Delivery {
                state: DeliveryState::from_name(&self.state, at)
                    .ok_or_else(|| corrupt("notify_state"))?,
                attempts: self.attempts,
                sent_at: self.sent_at.map(Instant::from_unix),
                last_attempt_at: self.last_at.map(Instant::from_unix),
                last_error: self.error,
            },
        })
    }
}

impl SqliteStore {
    /// Runs an update of one pending notification; no row changed is `Conflict`.
    fn update_pending(&self, sql: &str, values: impl rusqlite::Params) -> Result<(), StoreError> {
        match self.lock().execute(sql, values).map_err(unavailable)? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    fn select(
        &self,
        condition: &str,
        values: impl rusqlite::Params,
    ) -> Result<Vec<Notification>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(&format!("{SELECT} {condition}"))
            .map_err(unavailable)?;
        let rows = statement.query_map(values, read).map_err(unavailable)?;
        rows.map(|row| row.map_err(unavailable)?.parse()).collect()
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn due_notifications(
        &self,
        now: Instant,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let limit = i64::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        self.select(
            "WHERE notify_state = 'pending' AND notify_at <= ?1
             ORDER BY notify_at, rne, seq LIMIT ?2",
            params![now.unix(), limit],
        )
    }

    async fn notifications(&self, rne: &Rne) -> Result<Vec<Notification>, StoreError> {
        self.select(
            "WHERE rne = ?1 AND notify_state IS NOT NULL ORDER BY seq",
            [rne.as_str()],
        )
    }

    async fn begin_attempt(
        &self,
        rne: &Rne,
        seq: u32,
        attempts: u32,
        now: Instant,
        lease_until: Instant,
    ) -> Result<(), StoreError> {
        self.update_pending(
            "UPDATE events SET notify_attempts = ?3 + 1, notify_last_at = ?4,
                 notify_sent_at = COALESCE(notify_sent_at, ?4), notify_at = ?5
             WHERE rne = ?1 AND seq = ?2 AND notify_state = 'pending'
                 AND notify_attempts = ?3",
            params![rne.as_str(), seq, attempts, now.unix(), lease_until.unix()],
        )
    }

    async fn record_failure(
        &self,
        rne: &Rne,
        seq: u32,
        attempt: u32,
        error: &str,
        next: AfterFailure,
    ) -> Result<(), StoreError> {
        let (state, at) = match next {
            AfterFailure::RetryAt(at) => (
                DeliveryState::Pending {
                    next_attempt_at: at,
                },
                at,
            ),
            AfterFailure::GiveUp(at) => (DeliveryState::GivenUp { at }, at),
        };
        self.update_pending(
            "UPDATE events SET notify_state = ?4, notify_at = ?5, notify_error = ?6
             WHERE rne = ?1 AND seq = ?2 AND notify_state = 'pending'
                 AND notify_attempts = ?3",
            params![rne.as_str(), seq, attempt, state.name(), at.unix(), error],
        )
    }

    async fn acknowledge(&self, rne: &Rne, seq: u32, at: Instant) -> Result<(), StoreError> {
        let state = DeliveryState::Acknowledged { at };
        self.update_pending(
            "UPDATE events SET notify_state = ?3, notify_at = ?4
             WHERE rne = ?1 AND seq = ?2 AND notify_state = 'pending'",
            params![rne.as_str(), seq, state.name(), at.unix()],
        )
    }

    async fn skip(&self, rne: &Rne, seq: u32, at: Instant) -> Result<(), StoreError> {
        let state = DeliveryState::Skipped { at };
        self.update_pending(
            "UPDATE events SET notify_state = ?3, notify_at = ?4
             WHERE rne = ?1 AND seq = ?2 AND notify_state = 'pending'",
            params![rne.as_str(), seq, state.name(), at.unix()],
        )
    }
}
