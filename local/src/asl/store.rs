//! Executions and task tokens in SQLite: enough to pick every running execution up where it
//! was after a restart. One connection behind a mutex; no statement waits on anything but the
//! disk, so the lock is never held across an `.await`.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

/// The store failed: the database file is unreadable, locked for too long, or corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("execution store: {0}")]
pub struct StoreError(pub(crate) String);

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self(error.to_string())
    }
}

/// Where an execution stands, with the names Step Functions uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "SUCCEEDED" => Status::Succeeded,
            "FAILED" => Status::Failed,
            "TIMED_OUT" => Status::TimedOut,
            _ => Status::Running,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One execution as operators and tests see it. Its input and output may hold licence
/// secrets: `Debug` leaves them out.
#[derive(Clone, PartialEq)]
pub struct ExecutionDescription {
    pub name: String,
    pub state_machine: String,
    pub status: Status,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The state it is in while running.
    pub current_state: Option<String>,
    pub started_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
}

impl fmt::Debug for ExecutionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionDescription")
            .field("name", &self.name)
            .field("state_machine", &self.state_machine)
            .field("status", &self.status)
            .field("error", &self.error)
            .field("current_state", &self.current_state)
            .finish_non_exhaustive()
    }
}

/// What a running execution is doing in its current state, so that a restart resumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Just entered: the state is run from its beginning.
    Entered,
    /// A Wait state, until `wake_at`.
    Waiting,
    /// A Task between two attempts, until `wake_at`.
    Backoff,
    /// A Task calling its function; after a restart the function is called again.
    Invoking,
    /// A waitForTaskToken Task whose function was called: only the token can end it now.
    AwaitingToken,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Entered => "ENTERED",
            Phase::Waiting => "WAITING",
            Phase::Backoff => "BACKOFF",
            Phase::Invoking => "INVOKING",
            Phase::AwaitingToken => "AWAITING_TOKEN",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "WAITING" => Phase::Waiting,
            "BACKOFF" => Phase::Backoff,
            "INVOKING" => Phase::Invoking,
            "AWAITING_TOKEN" => Phase::AwaitingToken,
            _ => Phase::Entered,
        }
    }
}

/// A running execution's position: its state, that state's input, and the phase within it.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pub(crate) name: String,
    pub(crate) machine: String,
    pub(crate) input: Value,
    pub(crate) started_at: i64,
    pub(crate) deadline_at: Option<i64>,
    pub(crate) state: String,
    pub(crate) state_input: Value,
    pub(crate) entered_at: i64,
    pub(crate) phase: Phase,
    /// Attempts already retried, one counter per retrier of the current Task.
    pub(crate) retry_counts: Vec<u32>,
    pub(crate) wake_at: Option<i64>,
    pub(crate) token: Option<String>,
}

/// How a task token was settled: by SendTaskSuccess, or by a failure of any kind (SendTaskFailure,
/// the function's own error, a timeout).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settlement {
    Success(Value),
    Failure { error: String, cause: String },
}

impl Settlement {
    fn to_json(&self) -> String {
        match self {
            Settlement::Success(output) => json!({ "output": output }),
            Settlement::Failure { error, cause } => json!({ "error": error, "cause": cause }),
        }
        .to_string()
    }

    fn from_json(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        if let Some(output) = value.get("output") {
            return Some(Settlement::Success(output.clone()));
        }
        Some(Settlement::Failure {
            error: value.get("error")?.as_str()?.to_owned(),
            cause: value.get("cause")?.as_str()?.to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) token: String,
    pub(crate) execution: String,
    pub(crate) open: bool,
    pub(crate) deadline_at: Option<i64>,
    pub(crate) heartbeat_ms: Option<i64>,
    pub(crate) heartbeat_at: Option<i64>,
    pub(crate) settlement: Option<Settlement>,
}

impl TokenRow {
    /// The earliest instant at which the task times out, unless a heartbeat moves it.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        match (self.deadline_at, self.heartbeat_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What became of a SendTask* call.
#[derive(Debug, PartialEq)]
pub(crate) enum TokenUpdate {
    /// Accepted, for this execution.
    Accepted(String),
    /// The token was issued, but its task is over.
    Closed,
    /// No such token was ever issued here.
    Unknown,
}

pub(crate) const TIMEOUT: &str = "States.Timeout";
pub(crate) const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS asl_executions (
    name          TEXT PRIMARY KEY,
    machine       TEXT NOT NULL,
    input         TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    deadline_at   INTEGER,
    stopped_at    INTEGER,
    output        TEXT,
    error         TEXT,
    cause         TEXT,
    state         TEXT,
    state_input   TEXT,
    entered_at    INTEGER,
    phase         TEXT,
    retry_counts  TEXT,
    wake_at       INTEGER,
    token         TEXT
);
CREATE INDEX IF NOT EXISTS asl_executions_status ON asl_executions (status);
-- Parked executions (waiting for their task token, no runner in memory) by their earliest
-- deadline, for the executor's timer.
CREATE INDEX IF NOT EXISTS asl_executions_parked ON asl_executions (wake_at)
    WHERE phase = 'AWAITING_TOKEN';
CREATE TABLE IF NOT EXISTS asl_task_tokens (
    token         TEXT PRIMARY KEY,
    execution     TEXT NOT NULL,
    open          INTEGER NOT NULL,
    deadline_at   INTEGER,
    heartbeat_ms  INTEGER,
    heartbeat_at  INTEGER,
    settlement    TEXT
);
CREATE INDEX IF NOT EXISTS asl_task_tokens_execution ON asl_task_tokens (execution);
";

pub(crate) struct Store {
    connection: Mutex<Connection>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the database at `path`; `:memory:` keeps it in memory.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        if path != Path::new(":memory:") {
            connection.pragma_update(None, "journal_mode", "WAL")?;
        }
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: keep going.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a new execution at its first state; `false` when the name is already taken.
    pub(crate) fn insert(&self, cursor: &Cursor) -> Result<bool, StoreError> {
        let inserted = self.lock().execute(
            "INSERT OR IGNORE INTO asl_executions
                (name, machine, input, status, started_at, deadline_at, state, state_input,
                 entered_at, phase, retry_counts, wake_at, token)
             VALUES (?1, ?2, ?3, 'RUNNING', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                cursor.name,
                cursor.machine,
                cursor.input.to_string(),
                cursor.started_at,
                cursor.deadline_at,
                cursor.state,
                cursor.state_input.to_string(),
                cursor.entered_at,
                cursor.phase.as_str(),
                json!(cursor.retry_counts).to_string(),
                cursor.wake_at,
                cursor.token,
            ],
        )?;
        Ok(inserted == 1)
    }

    pub(crate) fn running(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT name FROM asl_executions WHERE status = 'RUNNING' ORDER BY started_at",
        )?;
        let names = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(names)
    }

    /// The executions waiting for their task token whose earliest deadline is at or before
    /// `now`, earliest first.
    pub(crate) fn parked_until(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT name FROM asl_executions
             WHERE phase = 'AWAITING_TOKEN' AND wake_at <= ?1 ORDER BY wake_at",
        )?;
        let names = statement
            .query_map([now], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(names)
    }

    /// The earliest deadline after `now` of an execution waiting for its task token.
    pub(crate) fn next_parked_wake_after(&self, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.lock().query_row(
            "SELECT MIN(wake_at) FROM asl_executions
             WHERE phase = 'AWAITING_TOKEN' AND wake_at > ?1",
            [now],
            |row| row.get(0),
        )?)
    }

    /// The position of a running execution; `None` once it is over.
    pub(crate) fn cursor(&self, name: &str) -> Result<Option<Cursor>, StoreError> {
        let cursor = self
            .lock()
            .query_row(
                "SELECT name, machine, input, started_at, deadline_at, state, state_input,
                        entered_at, phase, retry_counts, wake_at, token
                 FROM asl_executions WHERE name = ?1 AND status = 'RUNNING'",
                [name],
                |row| {
                    Ok(Cursor {
                        name: row.get(0)?,
                        machine: row.get(1)?,
                        input: json_column(row, 2)?,
                        started_at: row.get(3)?,
                        deadline_at: row.get(4)?,
                        state: row.get(5)?,
                        state_input: json_column(row, 6)?,
                        entered_at: row.get(7)?,
                        phase: Phase::parse(&row.get::<_, String>(8)?),
                        retry_counts: serde_json::from_value(json_column(row, 9)?)
                            .unwrap_or_default(),
                        wake_at: row.get(10)?,
                        token: row.get(11)?,
                    })
                },
            )
            .optional()?;
        Ok(cursor)
    }

    /// Saves the cursor of a running execution; `false` if it is no longer running (it timed
    /// out meanwhile), in which case its runner stops.
    pub(crate) fn save(&self, cursor: &Cursor) -> Result<bool, StoreError> {
        Ok(save_with(&self.lock(), cursor)? == 1)
    }

    /// Saves the cursor and issues its task token in one transaction.
    pub(crate) fn issue_token(
        &self,
        cursor: &Cursor,
        token: &TokenRow,
    ) -> Result<bool, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        if save_with(&transaction, cursor)? != 1 {
            return Ok(false);
        }
        transaction.execute(
            "INSERT INTO asl_task_tokens
                (token, execution, open, deadline_at, heartbeat_ms, heartbeat_at, settlement)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, NULL)",
            params![
                token.token,
                token.execution,
                token.deadline_at,
                token.heartbeat_ms,
                token.heartbeat_at
            ],
        )?;
        transaction.commit()?;
        Ok(true)
    }

    pub(crate) fn token(&self, token: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = self
            .lock()
            .query_row(
                "SELECT token, execution, open, deadline_at, heartbeat_ms, heartbeat_at, settlement
                 FROM asl_task_tokens WHERE token = ?1",
                [token],
                |row| {
                    Ok(TokenRow {
                        token: row.get(0)?,
                        execution: row.get(1)?,
                        open: row.get(2)?,
                        deadline_at: row.get(3)?,
                        heartbeat_ms: row.get(4)?,
                        heartbeat_at: row.get(5)?,
                        settlement: row
                            .get::<_, Option<String>>(6)?
                            .and_then(|text| Settlement::from_json(&text)),
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Settles an open token; whoever settles it first wins, any later attempt sees `Closed`.
    pub(crate) fn settle(
        &self,
        token: &str,
        settlement: &Settlement,
    ) -> Result<TokenUpdate, StoreError> {
        let connection = self.lock();
        let changed = connection.execute(
            "UPDATE asl_task_tokens SET open = 0, settlement = ?2 WHERE token = ?1 AND open = 1",
            params![token, settlement.to_json()],
        )?;
        token_update(&connection, token, changed)
    }

    /// Moves the heartbeat deadline of an open token to `now` plus its HeartbeatSeconds.
    pub(crate) fn heartbeat(&self, token: &str, now: i64) -> Result<TokenUpdate, StoreError> {
        let connection = self.lock();
        let changed = connection.execute(
            "UPDATE asl_task_tokens SET heartbeat_at = ?2 + heartbeat_ms
             WHERE token = ?1 AND open = 1",
            params![token, now],
        )?;
        token_update(&connection, token, changed)
    }

    /// Settles the token as timed out if one of its deadlines has passed at `now`; a heartbeat
    /// or a callback that came in meanwhile wins, since the check and the write are one step.
    pub(crate) fn expire(&self, token: &str, now: i64) -> Result<Option<Settlement>, StoreError> {
        let connection = self.lock();
        let row: Option<(Option<i64>, Option<i64>)> = connection
            .query_row(
                "SELECT deadline_at, heartbeat_at FROM asl_task_tokens
                 WHERE token = ?1 AND open = 1",
                [token],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((deadline_at, heartbeat_at)) = row else {
            return Ok(None);
        };
        let settlement = if deadline_at.is_some_and(|at| at <= now) {
            Settlement::Failure {
                error: TIMEOUT.to_owned(),
                cause: "The task did not complete within its TimeoutSeconds.".to_owned(),
            }
        } else if heartbeat_at.is_some_and(|at| at <= now) {
            Settlement::Failure {
                error: HEARTBEAT_TIMEOUT.to_owned(),
                cause: "No heartbeat came within the task's HeartbeatSeconds.".to_owned(),
            }
        } else {
            return Ok(None);
        };
        connection.execute(
            "UPDATE asl_task_tokens SET open = 0, settlement = ?2 WHERE token = ?1 AND open = 1",
            params![token, settlement.to_json()],
        )?;
        Ok(Some(settlement))
    }

    /// Ends a running execution and closes its open tokens; `false` if it had already ended.
    pub(crate) fn finish(
        &self,
        name: &str,
        status: Status,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let changed = transaction.execute(
            "UPDATE asl_executions
             SET status = ?2, output = ?3, error = ?4, cause = ?5, stopped_at = ?6,
                 phase = NULL, wake_at = NULL, token = NULL
             WHERE name = ?1 AND status = 'RUNNING'",
            params![
                name,
                status.as_str(),
                output.map(Value::to_string),
                error,
                cause,
                now_ms()
            ],
        )?;
        transaction.execute(
            "UPDATE asl_task_tokens SET open = 0 WHERE execution = ?1 AND open = 1",
            [name],
        )?;
        transaction.commit()?;
        Ok(changed == 1)
    }

    pub(crate) fn describe(&self, name: &str) -> Result<Option<ExecutionDescription>, StoreError> {
        let description = self
            .lock()
            .query_row(
                "SELECT name, machine, status, input, output, error, cause, state, started_at,
                        stopped_at
                 FROM asl_executions WHERE name = ?1",
                [name],
                |row| {
                    let status = Status::parse(&row.get::<_, String>(2)?);
                    Ok(ExecutionDescription {
                        name: row.get(0)?,
                        state_machine: row.get(1)?,
                        status,
                        input: json_column(row, 3)?,
                        output: row
                            .get::<_, Option<String>>(4)?
                            .and_then(|text| serde_json::from_str(&text).ok()),
                        error: row.get(5)?,
                        cause: row.get(6)?,
                        current_state: match status {
                            Status::Running => row.get(7)?,
                            _ => None,
                        },
                        started_at_ms: row.get(8)?,
                        stopped_at_ms: row.get(9)?,
                    })
                },
            )
            .optional()?;
        Ok(description)
    }
}

fn save_with(connection: &Connection, cursor: &Cursor) -> Result<usize, StoreError> {
    Ok(connection.execute(
        "UPDATE asl_executions
         SET state = ?2, state_input = ?3, entered_at = ?4, phase = ?5, retry_counts = ?6,
             wake_at = ?7, token = ?8
         WHERE name = ?1 AND status = 'RUNNING'",
        params![
            cursor.name,
            cursor.state,
            cursor.state_input.to_string(),
            cursor.entered_at,
            cursor.phase.as_str(),
            json!(cursor.retry_counts).to_string(),
            cursor.wake_at,
            cursor.token,
        ],
    )?)
}

fn token_update(
    connection: &Connection,
    token: &str,
    changed: usize,
) -> Result<TokenUpdate, StoreError> {
    let row: Option<(String, bool)> = connection
        .query_row(
            "SELECT execution, open FROM asl_task_tokens WHERE token = ?1",
            [token],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((execution, _)) if changed == 1 => TokenUpdate::Accepted(execution),
        Some(_) => TokenUpdate::Closed,
        None => TokenUpdate::Unknown,
    })
}

fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}
