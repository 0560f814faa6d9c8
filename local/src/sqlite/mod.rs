//! Establishments in one SQLite file, the local stand-in for the DynamoDB table. Every method
//! does its short work under one connection's lock, in a transaction when it writes more than
//! one row, so it keeps the same promises as the DynamoDB store.
//!
//! That connection is the only writer. The reads on every request's path (`get`, `find_by_key`)
//! go to a few more connections of a file database instead, so that they neither queue behind a
//! write nor behind each other; in WAL mode a read sees every transaction committed before it
//! began, so a read that follows a write sees it, as with one connection. `get`, the
//! Cyberlibrairie's polling read, is answered from memory while nothing was written since its
//! record was read (see [`cache`]).

mod cache;
mod counts;
mod jobs;
mod notifications;
mod retries;
mod uploads;

use std::fs::{File, TryLockError as FileLockError};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bcdi_shared::domain::establishment::{Connection as ServerConnection, Failure};
use bcdi_shared::domain::{
    Base, Digest, Establishment, Griffe, Instant, LicenceCode, Rne, Status, StatusEvent,
    Transition, Version,
};
use bcdi_shared::ports::{EstablishmentStore, Page, StoreError, WorkflowKind};
use cache::RecordCache;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

/// The schema, created on every start and kept across restarts. A key is a unique column of its
/// establishment, so replacing it is one `UPDATE`: the previous key stops working at once.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS establishments (
    rne                     TEXT PRIMARY KEY,
    griffe                  TEXT NOT NULL,
    code                    TEXT NOT NULL,
    version                 TEXT NOT NULL,
    agricole                INTEGER NOT NULL,
    key_digest              TEXT NOT NULL UNIQUE,
    status                  TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    status_changed_at       INTEGER NOT NULL,
    next_step_at            INTEGER,
    provisioning_attempt    INTEGER NOT NULL,
    mounting_attempt        INTEGER NOT NULL,
    event_seq               INTEGER NOT NULL,
    bases                   TEXT NOT NULL,
    failure_reason          TEXT,
    failure_detail          TEXT,
    connection_host         TEXT,
    connection_port         INTEGER,
    connection_client_download_url TEXT
) STRICT;

-- The operators' listing by status, oldest change first (DynamoDB's `by_status` index).
CREATE INDEX IF NOT EXISTS establishments_by_status
    ON establishments (status, status_changed_at, rne);

CREATE TABLE IF NOT EXISTS events (
    rne         TEXT NOT NULL REFERENCES establishments (rne),
    seq         INTEGER NOT NULL,
    status      TEXT NOT NULL,
    previous    TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (rne, seq)
) STRICT;
";

/// How long a write waits for another process holding the database (e.g. a second server).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections of a file database beside its writer: more than the runtime's worker threads
/// on a small machine, so that a read rarely waits for a free one.
const READERS: usize = 4;

const SELECT_ESTABLISHMENT: &str = "
SELECT rne, griffe, code, version, agricole, key_digest, status, created_at, status_changed_at,
       next_step_at, provisioning_attempt, failure_reason, failure_detail,
       connection_host, connection_port, connection_client_download_url,
       mounting_attempt, event_seq, bases
FROM establishments";

pub struct SqliteStore {
    /// The writer, and the reader of everything off the requests' hot path.
    connection: Mutex<Connection>,
    /// Connections that only read (see the module's header); none for an in-memory database,
    /// which only its own connection sees: it reads on the writer.
    readers: Vec<Mutex<Connection>>,
    /// Where the next read starts looking for a free reader, so that reads spread over all.
    next_reader: AtomicUsize,
    /// Records read by `get`, valid until the writer is next used.
    cache: RecordCache,
    /// Held while the store is open: no other process writes its file behind the cache's back.
    _exclusive: Option<File>,
}

/// The writer connection, held: once released, every cached record counts as stale.
pub(crate) struct Writer<'a> {
    connection: MutexGuard<'a, Connection>,
    cache: &'a RecordCache,
}

impl Deref for Writer<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Drop for Writer<'_> {
    /// Runs before the connection's lock is released, after whatever it committed.
    fn drop(&mut self) {
        self.cache.written();
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, with its schema, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!(
                    "SQLite: cannot create the data directory: {error}"
                ))
            })?;
        }
        let exclusive = lock_exclusively(path)?;
        let connection = Connection::open(path).map_err(unavailable)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "SQLite: WAL mode refused (journal mode {mode})"
            )));
        }
        // In WAL mode, NORMAL loses at most the last transactions on a power cut, never integrity.
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        let mut store = Self::with_schema(connection)?;
        store._exclusive = Some(exclusive);
        // Opened once the schema exists, so that their statements prepare against it.
        store.readers = (0..READERS)
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(store)
    }

    /// A database that lives as long as the store, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_schema(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn with_schema(connection: Connection) -> Result<Self, StoreError> {
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(unavailable)?;
        connection.execute_batch(SCHEMA).map_err(unavailable)?;
        notifications::migrate(&connection)?;
        connection
            .execute_batch(jobs::SCHEMA)
            .map_err(unavailable)?;
        connection
            .execute_batch(uploads::SCHEMA)
            .map_err(unavailable)?;
        connection
            .execute_batch(retries::SCHEMA)
            .map_err(unavailable)?;
        Ok(Self {
            connection: Mutex::new(connection),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            cache: RecordCache::default(),
            _exclusive: None,
        })
    }

    /// The writer connection; a panic of another holder left no transaction open (dropping a
    /// transaction rolls it back), so a poisoned lock is still safe to use.
    fn lock(&self) -> Writer<'_> {
        Writer {
            connection: self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            cache: &self.cache,
        }
    }

    /// A connection for a read outside any write: a free reader if there is one, else the next
    /// in turn (or the writer, for an in-memory database). Poisoned locks are safe as above.
    fn read(&self) -> Reader<'_> {
        let count = self.readers.len();
        if count == 0 {
            return Reader::Writer(self.lock());
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for offset in 0..count {
            match self.readers[(start + offset) % count].try_lock() {
                Ok(reader) => return Reader::Pool(reader),
                Err(TryLockError::Poisoned(poisoned)) => {
                    return Reader::Pool(poisoned.into_inner())
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        Reader::Pool(
            self.readers[start % count]
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// A connection to read on: one of the pool's, or the writer of an in-memory database.
enum Reader<'a> {
    Pool(MutexGuard<'a, Connection>),
    Writer(Writer<'a>),
}

impl Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Pool(connection) => connection,
            Reader::Writer(writer) => writer,
        }
    }
}

/// Takes the lock file beside the database at `path` (`bcdi.sqlite3.lock`), refusing to open a
/// database that another process (a second server on the same `DATA_DIR`) has open: two
/// servers would both run its workflows, and each would answer from a cache the other's writes
/// do not reach. The lock goes with the file handle, so a crash releases it.
fn lock_exclusively(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| {
            StoreError::Unavailable(format!("SQLite: cannot create the lock file: {error}"))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(FileLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another process: is another bcdi-hosting serve running on the \
             same DATA_DIR? Stop it, or give this one another DATA_DIR",
            path.display()
        ))),
        Err(FileLockError::Error(error)) => Err(StoreError::Unavailable(format!(
            "SQLite: cannot lock {}: {error}",
            path.display()
        ))),
    }
}

/// One more connection to the database at `path`, for reads only (`query_only`: a statement
/// that would write fails instead of bypassing the writer).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unavailable)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    connection
        .pragma_update(None, "query_only", true)
        .map_err(unavailable)?;
    Ok(connection)
}

#[async_trait]
impl EstablishmentStore for SqliteStore {
    async fn get(&self, rne: &Rne) -> Result<Option<Establishment>, StoreError> {
        let start = match self.cache.get(rne) {
            Ok(record) => return Ok(Some(record)),
            Err(start) => start,
        };
        // Prepared once per connection: parsing and planning the statement cost more than
        // running it.
        let row = self
            .read()
            .prepare_cached(&format!("{SELECT_ESTABLISHMENT} WHERE rne = ?1"))
            .and_then(|mut statement| {
                statement
                    .query_row([rne.as_str()], StoredEstablishment::read)
                    .optional()
            })
            .map_err(unavailable)?;
        let record = row.map(StoredEstablishment::parse).transpose()?;
        if let Some(record) = &record {
            self.cache.keep(start, record);
        }
        Ok(record)
    }

    async fn find_by_key(&self, key: &Digest) -> Result<Option<Rne>, StoreError> {
        let rne: Option<String> = self
            .read()
            .prepare_cached("SELECT rne FROM establishments WHERE key_digest = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([key.to_hex()], |row| row.get(0))
                    .optional()
            })
            .map_err(unavailable)?;
        rne.map(|rne| Rne::parse(&rne).map_err(|_| corrupt("rne")))
            .transpose()
    }

    async fn create(&self, establishment: &Establishment) -> Result<(), StoreError> {
        let e = establishment;
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;

        let exists = transaction
            .query_row(
                "SELECT 1 FROM establishments WHERE rne = ?1",
                [e.rne.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map_err(unavailable)?
            .is_some();
        if exists {
            return Err(StoreError::AlreadyExists);
        }

        let inserted = transaction.execute(
            "INSERT INTO establishments (rne, griffe, code, version, agricole, key_digest, status,
                 created_at, status_changed_at, next_step_at, provisioning_attempt,
                 failure_reason, failure_detail,
                 connection_host, connection_port, connection_client_download_url,
                 mounting_attempt, event_seq, bases)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19)",
            params![
                e.rne.as_str(),
                e.griffe.expose(),
                e.code.expose(),
                e.version.as_str(),
                e.agricole,
                e.key_digest.to_hex(),
                e.status.code(),
                e.created_at.unix(),
                e.status_changed_at.unix(),
                e.next_step_at.map(Instant::unix),
                e.provisioning_attempt,
                e.failure.as_ref().map(|failure| &failure.reason),
                e.failure.as_ref().map(|failure| &failure.detail),
                e.connection.as_ref().map(|connection| &connection.host),
                e.connection.as_ref().map(|connection| connection.port),
                e.connection
                    .as_ref()
                    .map(|connection| &connection.client_download_url),
                e.mounting_attempt,
                e.event_seq,
                bases_json(&e.bases),
            ],
        );
        match inserted {
            Ok(_) => {}
            // The only constraint left is the key's uniqueness: another establishment has it.
            Err(error) if is_constraint_violation(&error) => return Err(StoreError::Conflict),
            Err(error) => return Err(unavailable(error)),
        }
        insert_event(&transaction, &e.rne, &e.first_event())?;
        transaction.commit().map_err(unavailable)
    }

    async fn replace_key(
        &self,
        rne: &Rne,
        previous: &Digest,
        next: &Digest,
    ) -> Result<(), StoreError> {
        let connection = self.lock();
        let updated = connection.execute(
            "UPDATE establishments SET key_digest = ?3 WHERE rne = ?1 AND key_digest = ?2",
            params![rne.as_str(), previous.to_hex(), next.to_hex()],
        );
        match updated {
            Ok(1) => Ok(()),
            Ok(_) => Err(StoreError::Conflict),
            Err(error) if is_constraint_violation(&error) => Err(StoreError::Conflict),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn delete_unstarted(&self, rne: &Rne, key: &Digest) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;

        let stored: Option<String> = transaction
            .query_row(
                "SELECT key_digest FROM establishments WHERE rne = ?1",
                [rne.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(unavailable)?;
        match stored {
            None => return Ok(()),
            Some(stored) if stored != key.to_hex() => return Err(StoreError::Conflict),
            Some(_) => {}
        }

        transaction
            .execute("DELETE FROM events WHERE rne = ?1", [rne.as_str()])
            .map_err(unavailable)?;
        transaction
            .execute("DELETE FROM establishments WHERE rne = ?1", [rne.as_str()])
            .map_err(unavailable)?;
        transaction.commit().map_err(unavailable)
    }

    async fn history(&self, rne: &Rne) -> Result<Vec<StatusEvent>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT seq, status, previous, at FROM events WHERE rne = ?1 ORDER BY seq",
            )
            .map_err(unavailable)?;
        let rows = statement
            .query_map([rne.as_str()], |row| {
                Ok((
                    row.get::<_, u32>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(unavailable)?;
        rows.map(|row| {
            let (seq, status, previous, at) = row.map_err(unavailable)?;
            Ok(StatusEvent {
                seq,
                status: Status::parse(&status).map_err(|_| corrupt("event status"))?,
                previous: previous
                    .map(|code| Status::parse(&code).map_err(|_| corrupt("event previous")))
                    .transpose()?,
                at: Instant::from_unix(at),
            })
        })
        .collect()
    }

    async fn transition(&self, rne: &Rne, transition: &Transition) -> Result<(), StoreError> {
        let t = transition;
        let mut connection = self.lock();
        let sql_transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let updated = sql_transaction
            .execute(
                "UPDATE establishments SET status = ?3, status_changed_at = ?4, event_seq = ?5,
                     next_step_at = ?6, failure_reason = ?7, failure_detail = ?8,
                     connection_host = ?9, connection_port = ?10,
                     connection_client_download_url = ?11, bases = ?12,
                     provisioning_attempt = ?13, mounting_attempt = ?14
                 WHERE rne = ?1 AND event_seq = ?2",
                params![
                    rne.as_str(),
                    t.expected_seq,
                    t.event.status.code(),
                    t.event.at.unix(),
                    t.event.seq,
                    t.next_step_at.map(Instant::unix),
                    t.failure.as_ref().map(|failure| &failure.reason),
                    t.failure.as_ref().map(|failure| &failure.detail),
                    t.connection.as_ref().map(|connection| &connection.host),
                    t.connection.as_ref().map(|connection| connection.port),
                    t.connection
                        .as_ref()
                        .map(|connection| &connection.client_download_url),
                    bases_json(&t.bases),
                    t.provisioning_attempt,
                    t.mounting_attempt,
                ],
            )
            .map_err(unavailable)?;
        if updated != 1 {
            return Err(StoreError::Conflict);
        }
        insert_event(&sql_transaction, rne, &t.event)?;
        sql_transaction.commit().map_err(unavailable)
    }

    async fn set_next_step_at(
        &self,
        rne: &Rne,
        status: Status,
        at: Instant,
    ) -> Result<(), StoreError> {
        let updated = self
            .lock()
            .execute(
                "UPDATE establishments SET next_step_at = ?3 WHERE rne = ?1 AND status = ?2",
                params![rne.as_str(), status.code(), at.unix()],
            )
            .map_err(unavailable)?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn count_by_status(&self, status: Status) -> Result<u64, StoreError> {
        self.count_in_status(status)
    }

    async fn retried_attempt(&self, rne: &Rne, kind: WorkflowKind) -> Result<u32, StoreError> {
        retries::retried_attempt(&self.lock(), rne, kind)
    }

    async fn accept_retry(
        &self,
        seen: &Establishment,
        kind: WorkflowKind,
        retried: u32,
        next: u32,
    ) -> Result<(), StoreError> {
        retries::accept_retry(&mut self.lock(), seen, kind, retried, next)
    }

    async fn list_by_status(
        &self,
        status: Status,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // The cursor is the last item's (status_changed_at, rne), the index's order.
        let after = match cursor {
            None => (i64::MIN, String::new()),
            Some(cursor) => URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| {
                    let (at, rne) = text.split_once('#')?;
                    Some((at.parse().ok()?, Rne::parse(rne).ok()?.to_string()))
                })
                .ok_or(StoreError::InvalidCursor)?,
        };
        let limit = limit.clamp(1, 1000);
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(&format!(
                "{SELECT_ESTABLISHMENT} WHERE status = ?1 AND (status_changed_at, rne) > (?2, ?3)
                 ORDER BY status_changed_at, rne LIMIT ?4"
            ))
            .map_err(unavailable)?;
        let rows = statement
            .query_map(
                params![status.code(), after.0, after.1, limit as i64 + 1],
                StoredEstablishment::read,
            )
            .map_err(unavailable)?;
        let mut items = rows
            .map(|row| row.map_err(unavailable)?.parse())
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| {
                URL_SAFE_NO_PAD.encode(format!("{}#{}", last.status_changed_at.unix(), last.rne))
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

fn bases_json(bases: &[Base]) -> String {
    serde_json::to_string(bases).unwrap_or_else(|_| "[]".to_owned())
}

fn insert_event(
    transaction: &rusqlite::Transaction<'_>,
    rne: &Rne,
    event: &StatusEvent,
) -> Result<(), StoreError> {
    transaction
        .execute(
            // Every status event is a webhook to deliver, due at once (notifications.rs).
            "INSERT INTO events (rne, seq, status, previous, at, notify_state, notify_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?5)",
            params![
                rne.as_str(),
                event.seq,
                event.status.code(),
                event.previous.map(Status::code),
                event.at.unix(),
            ],
        )
        .map_err(unavailable)?;
    Ok(())
}

/// A row as stored, before its values are parsed back into domain types.
struct StoredEstablishment {
    rne: String,
    griffe: String,
    code: String,
    version: String,
    agricole: bool,
    key_digest: String,
    status: String,
    created_at: i64,
    status_changed_at: i64,
    next_step_at: Option<i64>,
    provisioning_attempt: u32,
    failure_reason: Option<String>,
    failure_detail: Option<String>,
    connection_host: Option<String>,
    connection_port: Option<u16>,
    connection_client_download_url: Option<String>,
    mounting_attempt: u32,
    event_seq: u32,
    bases: String,
}

impl StoredEstablishment {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            rne: row.get(0)?,
            griffe: row.get(1)?,
            code: row.get(2)?,
            version: row.get(3)?,
            agricole: row.get(4)?,
            key_digest: row.get(5)?,
            status: row.get(6)?,
            created_at: row.get(7)?,
            status_changed_at: row.get(8)?,
            next_step_at: row.get(9)?,
            provisioning_attempt: row.get(10)?,
            failure_reason: row.get(11)?,
            failure_detail: row.get(12)?,
            connection_host: row.get(13)?,
            connection_port: row.get(14)?,
            connection_client_download_url: row.get(15)?,
            mounting_attempt: row.get(16)?,
            event_seq: row.get(17)?,
            bases: row.get(18)?,
        })
    }

    // Errors name the column, never its value: a griffe or licence code must not reach a log.
    fn parse(self) -> Result<Establishment, StoreError> {
        let failure = match (self.failure_reason, self.failure_detail) {
            (Some(reason), Some(detail)) => Some(Failure { reason, detail }),
            (None, None) => None,
            _ => return Err(corrupt("failure")),
        };
        let connection = match (
            self.connection_host,
            self.connection_port,
            self.connection_client_download_url,
        ) {
            (Some(host), Some(port), Some(client_download_url)) => Some(ServerConnection {
                host,
                port,
                client_download_url,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("connection")),
        };
        Ok(Establishment {
            rne: Rne::parse(&self.rne).map_err(|_| corrupt("rne"))?,
            griffe: Griffe::parse(&self.griffe).map_err(|_| corrupt("griffe"))?,
            code: LicenceCode::parse(&self.code).map_err(|_| corrupt("code"))?,
            version: Version::parse(&self.version).map_err(|_| corrupt("version"))?,
            agricole: self.agricole,
            key_digest: Digest::parse_hex(&self.key_digest).map_err(|_| corrupt("key_digest"))?,
            status: Status::parse(&self.status).map_err(|_| corrupt("status"))?,
            created_at: Instant::from_unix(self.created_at),
            status_changed_at: Instant::from_unix(self.status_changed_at),
            next_step_at: self.next_step_at.map(Instant::from_unix),
            provisioning_attempt: self.provisioning_attempt,
            mounting_attempt: self.mounting_attempt,
            failure,
            connection,
            bases: serde_json::from_str(&self.bases).map_err(|_| corrupt("bases"))?,
            event_seq: self.event_seq,
        })
    }
}

fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// SQLite's messages name tables and columns, never bound values: no secret can leak here.
fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {error}"))
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Unavailable(format!("SQLite: a stored `{column}` is invalid"))
}
