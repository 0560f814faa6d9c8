//! Starting the provisioning and mounting workflows, and completing the tasks they wait on:
//! a workflow hands work to the hosting agent with a task token, and the agent's outcome comes
//! back through `send_task_success` / `send_task_failure` / `send_task_heartbeat`.

use async_trait::async_trait;

use crate::domain::Rne;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkflowKind {
    Provisioning,
    Mounting,
}

impl WorkflowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Provisioning => "provisioning",
            WorkflowKind::Mounting => "mounting",
        }
    }
}

/// One run of a workflow for one establishment. Its name is fixed by establishment, kind and
/// attempt, so that starting the same run twice starts it once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkflowRun {
    pub kind: WorkflowKind,
    pub rne: Rne,
    pub attempt: u32,
}

impl WorkflowRun {
    /// A name valid for a Step Functions execution: `0750655E-provisioning-1`.
    pub fn name(&self) -> String {
        format!("{}-{}-{}", self.rne, self.kind.as_str(), self.attempt)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("workflow engine unavailable: {0}")]
pub struct WorkflowError(pub String);

/// Why a task token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TaskTokenError {
    /// The task no longer waits for this token: it timed out, was completed already, its
    /// execution ended, or the token was never issued. Nothing can change that: the API
    /// answers 409.
    #[error("the task is gone (timed out, finished or unknown)")]
    Gone,
    /// The workflow engine could not be reached; nothing was changed and a retry may work.
    #[error("workflow engine unavailable: {0}")]
    Unavailable(String),
}

/// What became of a start: a run's name can be used once, so a start of a name that already
/// ran to its end starts nothing, and the caller must pick a new attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The run is running: started now, or by an earlier start of the same name.
    Running,
    /// A run of that name was started before and has ended (succeeded, failed, timed out or
    /// aborted); nothing was started.
    Ended,
}

#[async_trait]
pub trait Workflows: Send + Sync {
    /// Starts the run unless a run of that name was already started; `Ended` when that earlier
    /// run is over, since its name cannot run again. The execution's input is `input` (a JSON
    /// object) with `rne` and `attempt` added.
    async fn start(
        &self,
        run: &WorkflowRun,
        input: serde_json::Value,
    ) -> Result<Started, WorkflowError>;

    /// Completes the task waiting on `token` with `output` as its result.
    async fn send_task_success(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> Result<(), TaskTokenError>;

    /// Fails the task waiting on `token` with the error name `error` (what the state machine's
    /// Retry and Catch match) and `cause`.
    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TaskTokenError>;

    /// Tells the task waiting on `token` that its worker is alive: its heartbeat timeout
    /// starts again.
    async fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError>;
}

impl WorkflowRun {
    /// The execution input: `input` with the run's `rne` and `attempt`.
    pub fn input(&self, input: serde_json::Value) -> serde_json::Value {
        let mut input = match input {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        input.insert("rne".to_owned(), self.rne.as_str().into());
        input.insert("attempt".to_owned(), self.attempt.into());
        serde_json::Value::Object(input)
    }
}
