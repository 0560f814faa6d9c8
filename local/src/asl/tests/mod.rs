//! Tests of the executor, on real SQLite files and real (shortened) time: one second of the
//! definitions lasts `SECOND` here.

mod load;
mod resume;
mod states;
mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    ExecutionDescription, Executor, ExecutorOptions, Functions, StartOutcome, StateMachineSource,
    TaskError,
};

/// One second of the definitions, in tests.
const SECOND: Duration = Duration::from_millis(20);

/// Longest a test waits for anything before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

type Reply = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send>>;
type Handler = Arc<dyn Fn(Value, usize) -> Reply + Send + Sync>;

/// One call a function received.
#[derive(Clone)]
struct Call {
    function: String,
    payload: Value,
    at: Instant,
}

/// Stand-ins for the Lambdas: each answers with a closure given the payload and the number of
/// the call (from 1), and every call is recorded.
#[derive(Default)]
struct Fakes {
    handlers: Mutex<HashMap<String, Handler>>,
    calls: Mutex<Vec<Call>>,
}

impl Fakes {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `function` answers at once with what `reply` returns.
    fn on(
        &self,
        function: &str,
        reply: impl Fn(Value, usize) -> Result<Value, TaskError> + Send + Sync + 'static,
    ) {
        let reply = Arc::new(reply);
        self.on_async(function, move |payload, n| {
            let reply = Arc::clone(&reply);
            async move { reply(payload, n) }
        });
    }

    fn on_async<F>(&self, function: &str, reply: impl Fn(Value, usize) -> F + Send + Sync + 'static)
    where
        F: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |payload, n| Box::pin(reply(payload, n)));
        self.handlers
            .lock()
            .unwrap()
            .insert(function.to_owned(), handler);
    }

    fn calls(&self, function: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|call| call.function == function)
            .cloned()
            .collect()
    }

    /// The payload of the `n`th call (from 1) of `function`, once it has come.
    async fn nth_call(&self, function: &str, n: usize) -> Value {
        let started = Instant::now();
        loop {
            if let Some(call) = self.calls(function).get(n - 1) {
                return call.payload.clone();
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{function} was not called {n} times"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The task token passed to the `n`th call of `function`.
    async fn token(&self, function: &str, n: usize) -> String {
        let payload = self.nth_call(function, n).await;
        payload["token"]
            .as_str()
            .expect("the payload carries the token")
            .to_owned()
    }
}

#[async_trait]
impl Functions for Fakes {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskError> {
        let handler = self.handlers.lock().unwrap().get(function).cloned();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                function: function.to_owned(),
                payload: payload.clone(),
                at: Instant::now(),
            });
            calls
                .iter()
                .filter(|call| call.function == function)
                .count()
        };
        match handler {
            Some(handler) => handler(payload, n).await,
            None => Err(TaskError::new(
                "Lambda.ResourceNotFoundException",
                format!("no function {function}"),
            )),
        }
    }
}

/// A database file of its own for each test, removed afterwards.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(std::env::temp_dir().join(format!(
            "bcdi-asl-test-{}-{suffix}.sqlite3",
            std::process::id()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn machine(name: &str, definition: Value) -> StateMachineSource {
    StateMachineSource::new(name, definition.to_string())
}

async fn open_with_second(
    db: &TempDb,
    fakes: &Arc<Fakes>,
    machines: Vec<StateMachineSource>,
    second: Duration,
) -> Executor {
    let functions: Arc<dyn Functions> = fakes.clone();
    Executor::open_with(db.path(), functions, machines, ExecutorOptions { second })
        .await
        .expect("the executor opens")
}

async fn open(db: &TempDb, fakes: &Arc<Fakes>, machines: Vec<StateMachineSource>) -> Executor {
    open_with_second(db, fakes, machines, SECOND).await
}

/// Waits for the execution to end, failing the test after `PATIENCE`.
async fn finished(executor: &Executor, name: &str) -> ExecutionDescription {
    tokio::time::timeout(PATIENCE, executor.wait_until_finished(name))
        .await
        .expect("the execution ends in time")
        .expect("the execution exists")
}

/// Runs `definition` once on `input`, on an in-memory store, and describes how it ended.
async fn run(definition: Value, input: Value, fakes: &Arc<Fakes>) -> ExecutionDescription {
    let functions: Arc<dyn Functions> = fakes.clone();
    let executor = Executor::open_with(
        Path::new(":memory:"),
        functions,
        vec![machine("test", definition)],
        ExecutorOptions { second: SECOND },
    )
    .await
    .expect("the executor opens");
    let outcome = executor.start("test", "run-1", input).await.unwrap();
    assert_eq!(outcome, StartOutcome::Started);
    finished(&executor, "run-1").await
}

/// A one-state machine: `state` under the name `Only`.
fn single(state: Value) -> Value {
    json!({ "StartAt": "Only", "States": { "Only": state } })
}

/// The output of a run that must have succeeded.
fn succeeded(description: &ExecutionDescription) -> Value {
    assert_eq!(
        description.status,
        super::Status::Succeeded,
        "error {:?}: {:?}",
        description.error,
        description.cause
    );
    description
        .output
        .clone()
        .expect("a succeeded run has an output")
}

/// The error and cause of a run that must have failed.
fn failed(description: &ExecutionDescription) -> (String, String) {
    assert_eq!(description.status, super::Status::Failed, "{description:?}");
    (
        description.error.clone().unwrap_or_default(),
        description.cause.clone().unwrap_or_default(),
    )
}
