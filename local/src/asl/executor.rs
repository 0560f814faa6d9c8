//! Running executions: one tokio task per execution walks its state machine, saving its
//! position in the store before each step that waits, so that `Executor::open` on the same
//! file after a restart continues every running execution where it was.
//!
//! An execution waiting for its task token is *parked*: its runner ends and the execution lives
//! only in the store until SendTaskSuccess or SendTaskFailure, or one of its deadlines, starts a
//! new runner for it. Waiting for an agent can take hours, and thousands of establishments may
//! wait at once: memory holds only the executions that are doing something (and one timer).

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::task::{AbortHandle, JoinHandle};

use super::definition::{
    Catcher, Fail, Io, Machine, Pass, Resource, Retrier, Seconds, State, StateMachineSource, Task,
    Text, Transition, Wait, WaitFor,
};
use super::path::Path;
use super::store::{
    now_ms, Cursor, ExecutionDescription, Phase, Settlement, Status, Store, StoreError, TokenRow,
    TokenUpdate, HEARTBEAT_TIMEOUT, TIMEOUT,
};
use super::{Functions, LoadError, TaskError};

/// Tuning of the executor; the default is what the local server runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// How long one second of the definitions lasts (Wait, TimeoutSeconds, HeartbeatSeconds,
    /// IntervalSeconds and MaxDelaySeconds): one real second, but tests shorten it to run fast.
    /// Absolute Timestamps are never scaled.
    pub second: Duration,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            second: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("two state machines are named `{0}`")]
    DuplicateStateMachine(String),
    #[error("there is no state machine named `{0}`")]
    UnknownStateMachine(String),
    #[error("`{0}` is not a valid execution name: 1 to 80 letters, digits, `-` or `_`")]
    InvalidExecutionName(String),
    #[error("there is no execution named `{0}`")]
    UnknownExecution(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat was refused, as Step Functions
/// says it: both are answered 409 by the callback endpoints.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No task was ever given this token.
    #[error("the task token is not valid")]
    InvalidToken,
    /// The task was given this token, but it is over: completed, failed or timed out.
    #[error("the task for this token is no longer waiting (completed or timed out)")]
    TaskTimedOut,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `start` started something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    /// An execution of that name exists already, running or not: nothing was started.
    AlreadyExists,
}

/// Runs the state machines it was opened with. Dropping it stops every execution task at its
/// next step; their progress is in the store, and the next `open` resumes them.
pub struct Executor {
    inner: Arc<Inner>,
    /// Wakes parked executions at their deadlines.
    timer: JoinHandle<()>,
}

struct Inner {
    store: Store,
    functions: Arc<dyn Functions>,
    machines: HashMap<String, Arc<Machine>>,
    second: Duration,
    /// Bumped each time an execution ends, for `wait_until_finished`.
    finished: watch::Sender<u64>,
    /// Lock order: `runs`, then the store's connection, never the other way round.
    runs: Mutex<Runs>,
    /// Woken when an execution parks with a deadline earlier than `Runs::timer_at`.
    timer: Notify,
}

/// The runners in memory, and when the timer wakes next. Parking, resuming and the timer
/// decide under this one lock, after reading the store, so that a callback that comes while
/// a runner parks is never missed: either the runner reads it, or the callback finds no
/// runner and starts one.
#[derive(Default)]
struct Runs {
    tasks: HashMap<String, AbortHandle>,
    timer_at: Option<i64>,
}

/// An error raised by a state, with the names Retry and Catch match.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    error: String,
    cause: String,
}

const RUNTIME: &str = "States.Runtime";
const TASK_FAILED: &str = "States.TaskFailed";
const ALL: &str = "States.ALL";
const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";

impl Failure {
    fn runtime(cause: impl Into<String>) -> Self {
        Self {
            error: RUNTIME.to_owned(),
            cause: cause.into(),
        }
    }
}

impl From<TaskError> for Failure {
    fn from(error: TaskError) -> Self {
        Self {
            error: error.error,
            cause: error.cause,
        }
    }
}

/// What a state did.
enum Step {
    Next(String, Value),
    Succeed(Value),
    Fail(Failure),
    /// The execution ended meanwhile (it timed out): this runner stops.
    Abandoned,
    /// The execution waits for its task token, in the store only: this runner stops.
    Parked,
}

/// How an execution's run ended.
enum End {
    Succeeded(Value),
    Failed(Failure),
    TimedOut,
    Abandoned,
    Parked,
}

/// One try of a Task.
enum Attempt {
    Succeeded(Value),
    Failed(Failure),
    /// A data error (a path that finds nothing): no Retry or Catch applies.
    Runtime(Failure),
    Abandoned,
    Parked,
}

impl Executor {
    /// Opens the store at `db_path` (created if missing; `:memory:` for one that lives as long
    /// as the executor), loads `machines`, and resumes every execution that was running.
    /// Must be called within a tokio runtime.
    pub async fn open(
        db_path: &FsPath,
        functions: Arc<dyn Functions>,
        machines: Vec<StateMachineSource>,
    ) -> Result<Self, ExecutorError> {
        Self::open_with(db_path, functions, machines, ExecutorOptions::default()).await
    }

    pub async fn open_with(
        db_path: &FsPath,
        functions: Arc<dyn Functions>,
        machines: Vec<StateMachineSource>,
        options: ExecutorOptions,
    ) -> Result<Self, ExecutorError> {
        let mut loaded = HashMap::new();
        for source in &machines {
            let machine = Machine::load(source)?;
            if loaded
                .insert(source.name.clone(), Arc::new(machine))
                .is_some()
            {
                return Err(ExecutorError::DuplicateStateMachine(source.name.clone()));
            }
        }
        let inner = Arc::new(Inner {
            store: Store::open(db_path)?,
            functions,
            machines: loaded,
            second: options.second,
            finished: watch::Sender::new(0),
            runs: Mutex::default(),
            timer: Notify::new(),
        });
        let timer = tokio::spawn(Arc::clone(&inner).wake_at_deadlines());
        let executor = Self { inner, timer };
        for name in executor.inner.store.running()? {
            tracing::info!(execution = %name, event = "ExecutionResumed", "asl");
            executor.inner.spawn(name);
        }
        Ok(executor)
    }

    /// Starts `execution_name` of `state_machine` with `input`, unless an execution of that
    /// name exists already (then nothing happens, as with an idempotent StartExecution).
    /// Returns once the execution is recorded; it runs on its own tokio task.
    pub async fn start(
        &self,
        state_machine: &str,
        execution_name: &str,
        input: Value,
    ) -> Result<StartOutcome, ExecutorError> {
        let machine = self
            .inner
            .machines
            .get(state_machine)
            .ok_or_else(|| ExecutorError::UnknownStateMachine(state_machine.to_owned()))?;
        if !valid_execution_name(execution_name) {
            return Err(ExecutorError::InvalidExecutionName(
                execution_name.to_owned(),
            ));
        }
        let now = now_ms();
        let cursor = Cursor {
            name: execution_name.to_owned(),
            machine: state_machine.to_owned(),
            input: input.clone(),
            started_at: now,
            deadline_at: machine
                .timeout_seconds
                .map(|seconds| now.saturating_add(self.inner.millis(seconds))),
            state: machine.start_at.clone(),
            state_input: input,
            entered_at: now,
            phase: Phase::Entered,
            retry_counts: Vec::new(),
            wake_at: None,
            token: None,
        };
        if !self.inner.store.insert(&cursor)? {
            return Ok(StartOutcome::AlreadyExists);
        }
        tracing::info!(
            execution = %execution_name,
            state_machine = %state_machine,
            event = "ExecutionStarted",
            "asl"
        );
        log(execution_name, &machine.start_at, "StateEntered");
        self.inner.spawn(execution_name.to_owned());
        Ok(StartOutcome::Started)
    }

    /// SendTaskSuccess: the waiting task succeeds with `output` as its result.
    pub async fn send_task_success(&self, token: &str, output: Value) -> Result<(), TokenError> {
        self.settle(token, Settlement::Success(output))
    }

    /// SendTaskFailure: the waiting task fails with `error`, which its Retry and Catch match.
    pub async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TokenError> {
        self.settle(
            token,
            Settlement::Failure {
                error: error.to_owned(),
                cause: cause.to_owned(),
            },
        )
    }

    /// SendTaskHeartbeat: the task's HeartbeatSeconds start again from now.
    pub async fn send_task_heartbeat(&self, token: &str) -> Result<(), TokenError> {
        if !well_formed_token(token) {
            return Err(TokenError::InvalidToken);
        }
        // A parked execution needs no runner for this: the timer reads the new deadline.
        match self.inner.store.heartbeat(token, now_ms())? {
            TokenUpdate::Accepted(_) => Ok(()),
            update => self.inner.token_answer(update),
        }
    }

    fn settle(&self, token: &str, settlement: Settlement) -> Result<(), TokenError> {
        if !well_formed_token(token) {
            return Err(TokenError::InvalidToken);
        }
        let update = self.inner.store.settle(token, &settlement)?;
        self.inner.token_answer(update)
    }

    /// The execution's status, output or error; `None` if no execution has that name.
    pub async fn describe(
        &self,
        execution_name: &str,
    ) -> Result<Option<ExecutionDescription>, ExecutorError> {
        Ok(self.inner.store.describe(execution_name)?)
    }

    /// How many executions have a runner in memory: those doing something now, not those
    /// parked until their task token comes. For tests and tools.
    pub fn runners_in_memory(&self) -> usize {
        lock(&self.inner.runs).tasks.len()
    }

    /// Waits until the execution has ended, and describes it. For tests and tools: wrap it in
    /// a timeout.
    pub async fn wait_until_finished(
        &self,
        execution_name: &str,
    ) -> Result<ExecutionDescription, ExecutorError> {
        let mut finished = self.inner.finished.subscribe();
        loop {
            match self.inner.store.describe(execution_name)? {
                None => return Err(ExecutorError::UnknownExecution(execution_name.to_owned())),
                Some(description) if description.status != Status::Running => {
                    return Ok(description)
                }
                Some(_) => {}
            }
            // The sender lives in `inner`, which `self` holds: this never reports closed.
            let _ = finished.changed().await;
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.timer.abort();
        let runs = std::mem::take(&mut lock(&self.inner.runs).tasks);
        for run in runs.into_values() {
            run.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Step Functions' rule for execution names, narrowed to what is safe in logs and URLs.
fn valid_execution_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Task tokens are 64 hexadecimal digits: 256 bits from the operating system.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's CSPRNG is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn well_formed_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A uniform fraction in [0, 1), for FULL jitter.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's CSPRNG is available");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// One line per transition; never a payload, which may hold licence secrets.
fn log(execution: &str, state: &str, event: &str) {
    tracing::info!(execution = %execution, state = %state, event = %event, "asl");
}

fn log_execution(execution: &str, event: &str, error: Option<&str>) {
    match error {
        Some(error) => {
            tracing::info!(execution = %execution, event = %event, error = %error, "asl")
        }
        None => tracing::info!(execution = %execution, event = %event, "asl"),
    }
}

fn log_error(execution: &str, state: &str, event: &str, error: &str) {
    tracing::info!(execution = %execution, state = %state, event = %event, error = %error, "asl");
}

async fn sleep_until_ms(at: i64) {
    let remaining = at.saturating_sub(now_ms());
    if remaining > 0 {
        tokio::time::sleep(Duration::from_millis(remaining.unsigned_abs())).await;
    }
}

async fn sleep_until_opt(at: Option<i64>) {
    match at {
        Some(at) => sleep_until_ms(at).await,
        None => std::future::pending().await,
    }
}

impl Inner {
    fn millis(&self, seconds: u64) -> i64 {
        let seconds = u32::try_from(seconds).unwrap_or(u32::MAX);
        i64::try_from(self.second.saturating_mul(seconds).as_millis()).unwrap_or(i64::MAX)
    }

    fn millis_f64(&self, seconds: f64) -> i64 {
        let seconds = seconds.clamp(0.0, 99_999_999.0);
        i64::try_from(self.second.mul_f64(seconds).as_millis()).unwrap_or(i64::MAX)
    }

    /// After the store settled a token: the execution goes on, in its runner if it has one
    /// (which reads the settlement before it could park), else in a new one.
    fn token_answer(self: &Arc<Self>, update: TokenUpdate) -> Result<(), TokenError> {
        match update {
            TokenUpdate::Accepted(execution) => {
                let mut runs = lock(&self.runs);
                if !runs.tasks.contains_key(&execution) {
                    self.spawn_locked(&mut runs, execution);
                }
                Ok(())
            }
            TokenUpdate::Closed => Err(TokenError::TaskTimedOut),
            TokenUpdate::Unknown => Err(TokenError::InvalidToken),
        }
    }

    fn spawn(self: &Arc<Self>, name: String) {
        let mut runs = lock(&self.runs);
        self.spawn_locked(&mut runs, name);
    }

    fn spawn_locked(self: &Arc<Self>, runs: &mut Runs, name: String) {
        let inner = Arc::clone(self);
        let key = name.clone();
        // The runner removes itself from `runs` when done, which waits for the caller's lock:
        // the handle is always inserted first. A runner that parked has left already, and a
        // new one may have taken its place: only its own entry is removed.
        let handle = tokio::spawn(async move {
            inner.run(&name).await;
            let mut runs = lock(&inner.runs);
            if runs.tasks.get(&name).map(AbortHandle::id) == tokio::task::try_id() {
                runs.tasks.remove(&name);
            }
        });
        runs.tasks.insert(key, handle.abort_handle());
    }

    /// Leaves memory while the task waits for its token, unless the token was settled
    /// meanwhile (`false`: the caller reads it). The execution stays RUNNING in the store, in
    /// phase AwaitingToken, with its earliest deadline as `wake_at` for the timer.
    fn park(&self, cursor: &mut Cursor, token: &str) -> Result<bool, StoreError> {
        let mut runs = lock(&self.runs);
        let Some(row) = self.store.token(token)? else {
            return Ok(false);
        };
        if !row.open || row.settlement.is_some() {
            return Ok(false);
        }
        cursor.wake_at = [row.next_deadline(), cursor.deadline_at]
            .into_iter()
            .flatten()
            .min();
        if !self.store.save(cursor)? {
            return Ok(false);
        }
        if runs.tasks.get(&cursor.name).map(AbortHandle::id) == tokio::task::try_id() {
            runs.tasks.remove(&cursor.name);
        }
        if let Some(at) = cursor.wake_at {
            if runs.timer_at.is_none_or(|timer_at| at < timer_at) {
                runs.timer_at = Some(at);
                // Kept as a permit if the timer is between two waits: it looks again.
                self.timer.notify_one();
            }
        }
        Ok(true)
    }

    /// The timer: one task for all parked executions, which starts a runner for each one
    /// whose deadline (task timeout, heartbeat or execution timeout) has come; the runner
    /// then times the task or the execution out, or parks again after a heartbeat.
    async fn wake_at_deadlines(self: Arc<Self>) {
        loop {
            let at = lock(&self.runs).timer_at;
            tokio::select! {
                () = self.timer.notified() => continue,
                () = sleep_until_opt(at) => {}
            }
            let mut runs = lock(&self.runs);
            let now = now_ms();
            let next = self.store.parked_until(now).and_then(|due| {
                for name in due {
                    if !runs.tasks.contains_key(&name) {
                        self.spawn_locked(&mut runs, name);
                    }
                }
                self.store.next_parked_wake_after(now)
            });
            runs.timer_at = match next {
                Ok(next) => next,
                Err(error) => {
                    // The deadlines are still in the store: try again in a second.
                    tracing::error!(error = %error, "asl timer cannot read parked executions");
                    Some(now.saturating_add(1000))
                }
            };
        }
    }

    async fn run(self: &Arc<Self>, name: &str) {
        let ended = match self.store.cursor(name) {
            Ok(Some(cursor)) => match self.machines.get(&cursor.machine).cloned() {
                Some(machine) => {
                    let drive = self.drive(&machine, name);
                    match cursor.deadline_at {
                        // Woken by the timer for this very deadline.
                        Some(deadline) if deadline <= now_ms() => Ok(End::TimedOut),
                        Some(deadline) => {
                            let ended = tokio::select! {
                                ended = drive => ended,
                                () = sleep_until_ms(deadline) => Ok(End::TimedOut),
                            };
                            match ended {
                                Ok(End::Parked) if deadline <= now_ms() => Ok(End::TimedOut),
                                ended => ended,
                            }
                        }
                        None => drive.await,
                    }
                }
                None => Ok(End::Failed(Failure::runtime(format!(
                    "the state machine `{}` is no longer loaded",
                    cursor.machine
                )))),
            },
            Ok(None) => Ok(End::Abandoned),
            Err(error) => Err(error),
        };
        let finished = match ended {
            Ok(End::Succeeded(output)) => {
                log_execution(name, "ExecutionSucceeded", None);
                self.store
                    .finish(name, Status::Succeeded, Some(&output), None, None)
            }
            Ok(End::Failed(failure)) => {
                log_execution(name, "ExecutionFailed", Some(&failure.error));
                self.store.finish(
                    name,
                    Status::Failed,
                    None,
                    Some(&failure.error),
                    Some(&failure.cause),
                )
            }
            Ok(End::TimedOut) => {
                log_execution(name, "ExecutionTimedOut", Some(TIMEOUT));
                self.store.finish(
                    name,
                    Status::TimedOut,
                    None,
                    Some(TIMEOUT),
                    Some("The execution ran longer than its state machine's TimeoutSeconds."),
                )
            }
            Ok(End::Abandoned) => Ok(false),
            // Still RUNNING in the store; a callback or the timer starts a runner again.
            Ok(End::Parked) => return,
            Err(error) => Err(error),
        };
        if let Err(error) = finished {
            // It stays RUNNING in the store, and the next `open` resumes it.
            tracing::error!(execution = %name, error = %error, "asl execution stopped");
        }
        self.finished
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    async fn drive(self: &Arc<Self>, machine: &Machine, name: &str) -> Result<End, StoreError> {
        loop {
            let Some(cursor) = self.store.cursor(name)? else {
                return Ok(End::Abandoned);
            };
            let step = match machine.states.get(&cursor.state) {
                Some(State::Pass(pass)) => run_pass(machine, pass, &cursor),
                Some(State::Succeed(io)) => run_succeed(io, &cursor),
                Some(State::Fail(fail)) => run_fail(fail, &cursor),
                Some(State::Choice(choice)) => run_choice(choice, &cursor),
                Some(State::Wait(wait)) => self.run_wait(wait, cursor.clone()).await?,
                Some(State::Task(task)) => self.run_task(machine, task, cursor.clone()).await?,
                None => Step::Fail(Failure::runtime(format!(
                    "the state `{}` is no longer in the definition",
                    cursor.state
                ))),
            };
            match step {
                Step::Next(next, output) => {
                    let entered = Cursor {
                        state: next.clone(),
                        state_input: output,
                        entered_at: now_ms(),
                        phase: Phase::Entered,
                        retry_counts: Vec::new(),
                        wake_at: None,
                        token: None,
                        ..cursor
                    };
                    if !self.store.save(&entered)? {
                        return Ok(End::Abandoned);
                    }
                    log(name, &next, "StateEntered");
                }
                Step::Succeed(output) => return Ok(End::Succeeded(output)),
                Step::Fail(failure) => return Ok(End::Failed(failure)),
                Step::Abandoned => return Ok(End::Abandoned),
                Step::Parked => return Ok(End::Parked),
            }
        }
    }

    async fn run_wait(&self, wait: &Wait, mut cursor: Cursor) -> Result<Step, StoreError> {
        let effective = match input(&wait.io, &cursor.state_input) {
            Ok(effective) => effective,
            Err(failure) => return Ok(Step::Fail(failure)),
        };
        let wake_at = match (cursor.phase, cursor.wake_at) {
            // Resumed: the end time chosen when the state was entered still holds.
            (Phase::Waiting, Some(wake_at)) => wake_at,
            _ => {
                let wake_at = match self.wait_end(&wait.until, &effective, cursor.entered_at) {
                    Ok(wake_at) => wake_at,
                    Err(failure) => return Ok(Step::Fail(failure)),
                };
                cursor.phase = Phase::Waiting;
                cursor.wake_at = Some(wake_at);
                if !self.store.save(&cursor)? {
                    return Ok(Step::Abandoned);
                }
                log(&cursor.name, &cursor.state, "WaitStarted");
                wake_at
            }
        };
        sleep_until_ms(wake_at).await;
        Ok(match output(&wait.io, effective) {
            Ok(output) => transition(&wait.transition, output),
            Err(failure) => Step::Fail(failure),
        })
    }

    fn wait_end(&self, until: &WaitFor, effective: &Value, from: i64) -> Result<i64, Failure> {
        match until {
            WaitFor::Seconds(seconds) => Ok(from.saturating_add(self.millis(*seconds))),
            WaitFor::Timestamp(at) => Ok(*at),
            WaitFor::SecondsPath(path) => {
                let seconds = path.get(effective).and_then(Value::as_u64).ok_or_else(|| {
                    Failure::runtime(format!(
                        "SecondsPath `{}` must select a non-negative integer",
                        path.as_str()
                    ))
                })?;
                Ok(from.saturating_add(self.millis(seconds)))
            }
            WaitFor::TimestampPath(path) => path
                .get(effective)
                .and_then(Value::as_str)
                .and_then(super::choice::parse_timestamp)
                .map(|at| at.as_millisecond())
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "TimestampPath `{}` must select an RFC 3339 timestamp",
                        path.as_str()
                    ))
                }),
        }
    }

    async fn run_task(
        self: &Arc<Self>,
        machine: &Machine,
        task: &Task,
        mut cursor: Cursor,
    ) -> Result<Step, StoreError> {
        loop {
            if cursor.phase == Phase::Backoff {
                sleep_until_ms(cursor.wake_at.unwrap_or(0)).await;
            }
            let failure = match self.attempt(machine, task, &mut cursor).await? {
                Attempt::Abandoned => return Ok(Step::Abandoned),
                Attempt::Parked => return Ok(Step::Parked),
                Attempt::Runtime(failure) => return Ok(Step::Fail(failure)),
                Attempt::Succeeded(result) => {
                    log(&cursor.name, &cursor.state, "TaskSucceeded");
                    return Ok(match task_output(machine, task, &cursor, result) {
                        Ok(output) => transition(&task.transition, output),
                        Err(failure) => Step::Fail(failure),
                    });
                }
                Attempt::Failed(failure) => failure,
            };
            log_error(&cursor.name, &cursor.state, "TaskFailed", &failure.error);

            if let Some(delay) =
                self.retry_delay(&task.retry, &mut cursor.retry_counts, &failure.error)
            {
                cursor.phase = Phase::Backoff;
                cursor.wake_at = Some(now_ms().saturating_add(delay));
                cursor.token = None;
                if !self.store.save(&cursor)? {
                    return Ok(Step::Abandoned);
                }
                log(&cursor.name, &cursor.state, "TaskRetryScheduled");
                continue;
            }
            return Ok(catch(&task.catch, &cursor, failure));
        }
    }

    /// The delay before the next attempt, counting it; `None` when no retrier matches or the
    /// one that matches has no attempts left.
    fn retry_delay(&self, retriers: &[Retrier], counts: &mut Vec<u32>, error: &str) -> Option<i64> {
        let (index, retrier) = retriers
            .iter()
            .enumerate()
            .find(|(_, retrier)| matches_any(&retrier.errors, error))?;
        counts.resize(retriers.len(), 0);
        let done = counts[index];
        if done >= retrier.max_attempts {
            return None;
        }
        counts[index] = done + 1;
        let exponent = i32::try_from(done).unwrap_or(i32::MAX);
        let mut seconds = retrier.interval_seconds as f64 * retrier.backoff_rate.powi(exponent);
        if let Some(max) = retrier.max_delay_seconds {
            seconds = seconds.min(max as f64);
        }
        if retrier.full_jitter {
            seconds *= random_fraction();
        }
        Some(self.millis_f64(seconds))
    }

    async fn attempt(
        self: &Arc<Self>,
        machine: &Machine,
        task: &Task,
        cursor: &mut Cursor,
    ) -> Result<Attempt, StoreError> {
        let prepared = (|| {
            let effective = input(&task.io, &cursor.state_input)?;
            let timeout =
                self.task_seconds(task.timeout.as_ref(), &effective, "TimeoutSecondsPath")?;
            let heartbeat =
                self.task_seconds(task.heartbeat.as_ref(), &effective, "HeartbeatSecondsPath")?;
            Ok::<_, Failure>((effective, timeout, heartbeat))
        })();
        let (effective, timeout_ms, heartbeat_ms) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => return Ok(Attempt::Runtime(failure)),
        };
        if task.resource == Resource::InvokeWaitForTaskToken {
            return self
                .attempt_with_token(machine, task, cursor, &effective, timeout_ms, heartbeat_ms)
                .await;
        }

        let context = context(machine, cursor, None);
        let (function, payload) = match call(task, &effective, &context) {
            Ok(call) => call,
            Err(failure) => return Ok(Attempt::Runtime(failure)),
        };
        cursor.phase = Phase::Invoking;
        cursor.wake_at = None;
        cursor.token = None;
        if !self.store.save(cursor)? {
            return Ok(Attempt::Abandoned);
        }
        log(&cursor.name, &cursor.state, "TaskScheduled");

        // Known shortcoming: a call past its TimeoutSeconds is abandoned (its future dropped),
        // not stopped as a Lambda would be; in-process stand-ins should not block.
        let invocation = self.functions.invoke(&function, payload);
        let result = match timeout_ms {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms.unsigned_abs()), invocation)
                .await
                .unwrap_or_else(|_| {
                    Err(TaskError::new(
                        TIMEOUT,
                        "The task did not complete within its TimeoutSeconds.",
                    ))
                }),
            None => invocation.await,
        };
        Ok(match result {
            Ok(value) if task.resource == Resource::Invoke => {
                Attempt::Succeeded(json!({ "Payload": value, "StatusCode": 200 }))
            }
            Ok(value) => Attempt::Succeeded(value),
            Err(error) => Attempt::Failed(error.into()),
        })
    }

    /// A lambda:invoke.waitForTaskToken attempt: issue a token, call the function with it, and
    /// wait for SendTaskSuccess or SendTaskFailure, a timeout, or a missed heartbeat.
    async fn attempt_with_token(
        self: &Arc<Self>,
        machine: &Machine,
        task: &Task,
        cursor: &mut Cursor,
        effective: &Value,
        timeout_ms: Option<i64>,
        heartbeat_ms: Option<i64>,
    ) -> Result<Attempt, StoreError> {
        // After a restart, the token issued before it is still the one its caller holds.
        let issued = match (&cursor.token, cursor.phase) {
            (Some(token), Phase::Invoking | Phase::AwaitingToken) => self.store.token(token)?,
            _ => None,
        };
        let (token, must_invoke) = match issued {
            // A token settled before the restart needs no new call: its outcome is there.
            Some(row) => (row.token, cursor.phase == Phase::Invoking && row.open),
            None => (new_token(), true),
        };

        if must_invoke {
            let context = context(machine, cursor, Some(&token));
            let (function, payload) = match call(task, effective, &context) {
                Ok(call) => call,
                Err(failure) => return Ok(Attempt::Runtime(failure)),
            };
            if cursor.token.as_deref() != Some(token.as_str()) {
                let now = now_ms();
                cursor.phase = Phase::Invoking;
                cursor.wake_at = None;
                cursor.token = Some(token.clone());
                let row = TokenRow {
                    token: token.clone(),
                    execution: cursor.name.clone(),
                    open: true,
                    deadline_at: timeout_ms.map(|ms| now.saturating_add(ms)),
                    heartbeat_ms,
                    heartbeat_at: heartbeat_ms.map(|ms| now.saturating_add(ms)),
                    settlement: None,
                };
                if !self.store.issue_token(cursor, &row)? {
                    return Ok(Attempt::Abandoned);
                }
            }
            log(&cursor.name, &cursor.state, "TaskScheduled");

            let invocation = self.functions.invoke(&function, payload);
            tokio::pin!(invocation);
            let result = loop {
                // Once settled by an early callback, only the call itself is waited for.
                let deadline = self
                    .store
                    .token(&token)?
                    .filter(|row| row.open)
                    .and_then(|row| row.next_deadline());
                tokio::select! {
                    result = &mut invocation => break result,
                    () = sleep_until_opt(deadline) => {
                        if let Some(expired) = self.store.expire(&token, now_ms())? {
                            return Ok(settled(expired));
                        }
                    }
                }
            };
            if let Err(error) = result {
                // Unless a callback settled the token first, the function's error is the task's.
                let failure = Settlement::Failure {
                    error: error.error,
                    cause: error.cause,
                };
                self.store.settle(&token, &failure)?;
            }
            cursor.phase = Phase::AwaitingToken;
            if !self.store.save(cursor)? {
                return Ok(Attempt::Abandoned);
            }
        }

        loop {
            let Some(row) = self.store.token(&token)? else {
                return Ok(Attempt::Runtime(Failure::runtime(
                    "the task token was lost",
                )));
            };
            if let Some(settlement) = row.settlement {
                return Ok(settled(settlement));
            }
            if !row.open {
                return Ok(Attempt::Abandoned);
            }
            let now = now_ms();
            if row.next_deadline().is_some_and(|at| at <= now) {
                if let Some(expired) = self.store.expire(&token, now)? {
                    return Ok(settled(expired));
                }
                // Settled or heartbeaten meanwhile: read the token again.
                continue;
            }
            if self.park(cursor, &token)? {
                return Ok(Attempt::Parked);
            }
        }
    }

    /// TimeoutSeconds or HeartbeatSeconds in milliseconds, the Path form read from the input.
    fn task_seconds(
        &self,
        seconds: Option<&Seconds>,
        effective: &Value,
        field: &str,
    ) -> Result<Option<i64>, Failure> {
        match seconds {
            None => Ok(None),
            Some(Seconds::Fixed(seconds)) => Ok(Some(self.millis(*seconds))),
            Some(Seconds::Path(path)) => path
                .get(effective)
                .and_then(Value::as_u64)
                .filter(|seconds| *seconds > 0)
                .map(|seconds| Some(self.millis(seconds)))
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "{field} `{}` must select a positive integer",
                        path.as_str()
                    ))
                }),
        }
    }
}

fn settled(settlement: Settlement) -> Attempt {
    match settlement {
        Settlement::Success(output) => Attempt::Succeeded(output),
        Settlement::Failure { error, cause } => Attempt::Failed(Failure { error, cause }),
    }
}

/// The function to call and its payload, from the resource and the rendered Parameters.
fn call(task: &Task, effective: &Value, context: &Value) -> Result<(String, Value), Failure> {
    let parameters = match &task.parameters {
        Some(template) => template
            .render(effective, context)
            .map_err(Failure::runtime)?,
        None => effective.clone(),
    };
    match &task.resource {
        Resource::Function(function) => Ok((function.clone(), parameters)),
        Resource::Invoke | Resource::InvokeWaitForTaskToken => {
            let function = parameters
                .get("FunctionName")
                .and_then(Value::as_str)
                .ok_or_else(|| Failure::runtime("Parameters.FunctionName must be a string"))?
                .to_owned();
            let payload = parameters.get("Payload").cloned().unwrap_or(json!({}));
            Ok((function, payload))
        }
    }
}

/// The Task's output from its result: ResultSelector, ResultPath, then OutputPath.
fn task_output(
    machine: &Machine,
    task: &Task,
    cursor: &Cursor,
    result: Value,
) -> Result<Value, Failure> {
    let result = match &task.result_selector {
        Some(selector) => selector
            .render(&result, &context(machine, cursor, None))
            .map_err(Failure::runtime)?,
        None => result,
    };
    let combined = result_path(task.result_path.as_ref(), &cursor.state_input, result)?;
    output(&task.io, combined)
}

/// The first catcher that matches sends the error output on; none fails the execution.
fn catch(catchers: &[Catcher], cursor: &Cursor, failure: Failure) -> Step {
    let Some(catcher) = catchers
        .iter()
        .find(|catcher| matches_any(&catcher.errors, &failure.error))
    else {
        return Step::Fail(failure);
    };
    log_error(&cursor.name, &cursor.state, "TaskCaught", &failure.error);
    let error_output = json!({ "Error": failure.error, "Cause": failure.cause });
    match result_path(
        catcher.result_path.as_ref(),
        &cursor.state_input,
        error_output,
    ) {
        Ok(output) => Step::Next(catcher.next.clone(), output),
        Err(failure) => Step::Fail(failure),
    }
}

/// Whether an ErrorEquals list matches `error`. States.ALL matches everything but
/// States.Runtime; States.TaskFailed everything but timeouts; States.Timeout also a missed
/// heartbeat, as the specification says.
fn matches_any(patterns: &[String], error: &str) -> bool {
    let timeout = error == TIMEOUT || error == HEARTBEAT_TIMEOUT;
    patterns.iter().any(|pattern| match pattern.as_str() {
        ALL => error != RUNTIME,
        TASK_FAILED => !timeout && error != RUNTIME,
        TIMEOUT => timeout,
        pattern => pattern == error,
    })
}

fn run_pass(machine: &Machine, pass: &Pass, cursor: &Cursor) -> Step {
    let output = (|| {
        let effective = input(&pass.io, &cursor.state_input)?;
        let effective = match &pass.parameters {
            Some(template) => template
                .render(&effective, &context(machine, cursor, None))
                .map_err(Failure::runtime)?,
            None => effective,
        };
        let result = pass.result.clone().unwrap_or(effective);
        let combined = result_path(pass.result_path.as_ref(), &cursor.state_input, result)?;
        output(&pass.io, combined)
    })();
    match output {
        Ok(output) => transition(&pass.transition, output),
        Err(failure) => Step::Fail(failure),
    }
}

fn run_succeed(io: &Io, cursor: &Cursor) -> Step {
    match input(io, &cursor.state_input).and_then(|effective| output(io, effective)) {
        Ok(output) => Step::Succeed(output),
        Err(failure) => Step::Fail(failure),
    }
}

fn run_fail(fail: &Fail, cursor: &Cursor) -> Step {
    let text = |text: &Option<Text>, field: &str| -> Result<String, Failure> {
        match text {
            None => Ok(String::new()),
            Some(Text::Literal(text)) => Ok(text.clone()),
            Some(Text::Path(path)) => path
                .get(&cursor.state_input)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Failure::runtime(format!("{field} `{}` must select a string", path.as_str()))
                }),
        }
    };
    Step::Fail(
        match (
            text(&fail.error, "ErrorPath"),
            text(&fail.cause, "CausePath"),
        ) {
            (Ok(error), Ok(cause)) => Failure { error, cause },
            (Err(failure), _) | (_, Err(failure)) => failure,
        },
    )
}

fn run_choice(choice: &super::definition::Choice, cursor: &Cursor) -> Step {
    let effective = match input(&choice.io, &cursor.state_input) {
        Ok(effective) => effective,
        Err(failure) => return Step::Fail(failure),
    };
    let mut next = None;
    for (rule, target) in &choice.choices {
        match rule.evaluate(&effective) {
            Ok(true) => {
                next = Some(target);
                break;
            }
            Ok(false) => {}
            Err(cause) => return Step::Fail(Failure::runtime(cause)),
        }
    }
    let Some(next) = next.or(choice.default.as_ref()) else {
        return Step::Fail(Failure {
            error: NO_CHOICE_MATCHED.to_owned(),
            cause: "No choice rule matched, and the Choice state has no Default.".to_owned(),
        });
    };
    match output(&choice.io, effective) {
        Ok(output) => Step::Next(next.clone(), output),
        Err(failure) => Step::Fail(failure),
    }
}

fn transition(transition: &Transition, output: Value) -> Step {
    match transition {
        Transition::Next(next) => Step::Next(next.clone(), output),
        Transition::End => Step::Succeed(output),
    }
}

/// InputPath: the part of the state's input it works on; `null` gives `{}`.
fn input(io: &Io, raw: &Value) -> Result<Value, Failure> {
    select(io.input_path.as_ref(), raw, "InputPath")
}

/// OutputPath: the part of the state's result passed on; `null` gives `{}`.
fn output(io: &Io, combined: Value) -> Result<Value, Failure> {
    match &io.output_path {
        Some(path) if path.as_str() == "$" => Ok(combined),
        path => select(path.as_ref(), &combined, "OutputPath"),
    }
}

fn select(path: Option<&Path>, value: &Value, field: &str) -> Result<Value, Failure> {
    match path {
        None => Ok(json!({})),
        Some(path) => path.get(value).cloned().ok_or_else(|| {
            Failure::runtime(format!(
                "{field} `{}` could not be found in the state's data",
                path.as_str()
            ))
        }),
    }
}

/// ResultPath: the result placed into the state's raw input; `null` keeps the input as it is.
/// Known shortcoming: its States.ResultPathMatchFailure ends the execution, Catch or not.
fn result_path(path: Option<&Path>, raw: &Value, result: Value) -> Result<Value, Failure> {
    match path {
        None => Ok(raw.clone()),
        Some(path) => path.set(raw.clone(), result).map_err(|cause| Failure {
            error: "States.ResultPathMatchFailure".to_owned(),
            cause,
        }),
    }
}

/// The context object `$$`, as Step Functions fills it for a state.
fn context(machine: &Machine, cursor: &Cursor, token: Option<&str>) -> Value {
    let machine_id = format!(
        "arn:aws:states:local:000000000000:stateMachine:{}",
        machine.name
    );
    let mut context = json!({
        "Execution": {
            "Id": format!(
                "arn:aws:states:local:000000000000:execution:{}:{}",
                machine.name, cursor.name
            ),
            "Input": cursor.input,
            "Name": cursor.name,
            "StartTime": rfc3339(cursor.started_at),
        },
        "State": {
            "Name": cursor.state,
            "EnteredTime": rfc3339(cursor.entered_at),
            "RetryCount": cursor.retry_counts.iter().sum::<u32>(),
        },
        "StateMachine": { "Id": machine_id, "Name": machine.name },
    });
    if let Some(token) = token {
        context["Task"] = json!({ "Token": token });
    }
    context
}

/// `2025-12-03T14:00:00.123Z`, as Step Functions writes times in the context object.
fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
