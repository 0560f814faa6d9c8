//! Workflows on this machine: the local ASL executor runs the very state machines SAM deploys
//! (`infra/statemachines/*.asl.json`, compiled into the binary), with each `${XxxFunctionArn}`
//! placeholder standing for the in-process step of that name. Executions are kept in
//! `DATA_DIR/workflows.sqlite3` and resume when the server starts again.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bcdi_shared::ports::{
    Started, TaskTokenError, WorkflowError, WorkflowKind, WorkflowRun, Workflows,
};
use bcdi_shared::steps::{Step, Steps};
use serde_json::Value;

use crate::asl::{
    Executor, ExecutorError, ExecutorOptions, Functions, StartOutcome, StateMachineSource,
    Status as ExecutionStatus, TaskError, TokenError,
};

/// The state machines, as deployed.
pub const PROVISIONING_ASL: &str = include_str!("../../infra/statemachines/provisioning.asl.json");
pub const MOUNTING_ASL: &str = include_str!("../../infra/statemachines/mounting.asl.json");

/// Both state machines with their placeholders bound to the local steps, named as the
/// workflow kinds (`provisioning`, `mounting`).
pub fn state_machines() -> Vec<StateMachineSource> {
    [
        (WorkflowKind::Provisioning, PROVISIONING_ASL),
        (WorkflowKind::Mounting, MOUNTING_ASL),
    ]
    .into_iter()
    .map(|(kind, definition)| {
        Step::ALL.into_iter().fold(
            StateMachineSource::new(kind.as_str(), definition),
            |source, step| source.substitute(step.placeholder(), step.name()),
        )
    })
    .collect()
}

pub struct LocalWorkflows {
    executor: Executor,
}

impl LocalWorkflows {
    /// Opens the executions kept at `db_path` and resumes those that were running.
    pub async fn open(db_path: &Path, steps: Arc<Steps>) -> Result<Self, ExecutorError> {
        Self::open_with(db_path, steps, ExecutorOptions::default()).await
    }

    /// The same with the executor's tuning, e.g. a shorter second for tests.
    pub async fn open_with(
        db_path: &Path,
        steps: Arc<Steps>,
        options: ExecutorOptions,
    ) -> Result<Self, ExecutorError> {
        let executor = Executor::open_with(
            db_path,
            Arc::new(LocalSteps(steps)),
            state_machines(),
            options,
        )
        .await?;
        Ok(Self { executor })
    }

    /// The executor, for tools and tests that describe or wait for executions.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }
}

/// The steps as the executor's Task states call them, by name.
struct LocalSteps(Arc<Steps>);

#[async_trait]
impl Functions for LocalSteps {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskError> {
        let step = Step::from_name(function).ok_or_else(|| {
            TaskError::new(
                "Lambda.ResourceNotFoundException",
                format!("there is no step named `{function}`"),
            )
        })?;
        self.0
            .run(step, payload)
            .await
            .map_err(|error| TaskError::new(error.name, error.message))
    }
}

#[async_trait]
impl Workflows for LocalWorkflows {
    async fn start(&self, run: &WorkflowRun, input: Value) -> Result<Started, WorkflowError> {
        let name = run.name();
        let outcome = self
            .executor
            .start(run.kind.as_str(), &name, run.input(input))
            .await
            .map_err(|error| WorkflowError(error.to_string()))?;
        if outcome == StartOutcome::Started {
            return Ok(Started::Running);
        }
        // An execution of that name exists already: started once, as with Step Functions; if it
        // has ended, that name can never run again.
        let existing = self
            .executor
            .describe(&name)
            .await
            .map_err(|error| WorkflowError(error.to_string()))?;
        Ok(match existing {
            Some(execution) if execution.status != ExecutionStatus::Running => Started::Ended,
            _ => Started::Running,
        })
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), TaskTokenError> {
        self.executor
            .send_task_success(token, output.clone())
            .await
            .map_err(token_error)
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TaskTokenError> {
        self.executor
            .send_task_failure(token, error, cause)
            .await
            .map_err(token_error)
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        self.executor
            .send_task_heartbeat(token)
            .await
            .map_err(token_error)
    }
}

fn token_error(error: TokenError) -> TaskTokenError {
    match error {
        TokenError::InvalidToken | TokenError::TaskTimedOut => TaskTokenError::Gone,
        TokenError::Store(error) => TaskTokenError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_state_machines_load_with_every_placeholder_bound() {
        for source in state_machines() {
            crate::asl::validate(&source).unwrap_or_else(|error| panic!("{error}"));
        }
    }
}
