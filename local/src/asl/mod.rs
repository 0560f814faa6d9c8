//! Step Functions on a laptop: an interpreter for the Amazon States Language that runs the very
//! `infra/statemachines/*.asl.json` files SAM deploys, keeping executions in SQLite so that they
//! survive a restart of the local server.
//!
//! It implements what those files need (Task on Lambda functions, including
//! waitForTaskToken, Choice, Wait, Pass, Succeed, Fail, Retry and Catch, JSONPath paths and
//! Parameters) and refuses everything else when a definition is loaded, naming the state and
//! the field: Map, Parallel, intrinsic functions, JSONata, variables, other integrations.
//!
//! Where it differs from Step Functions on purpose: a path that finds nothing is a
//! `States.Runtime` error that no Catch handles (as AWS does); task tokens are kept in clear in
//! the local database, since a resumed task must hand the same token out again.

mod choice;
mod definition;
mod executor;
mod path;
mod store;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use serde_json::Value;

pub use definition::{validate, LoadError, StateMachineSource};
pub use executor::{Executor, ExecutorError, ExecutorOptions, StartOutcome, TokenError};
pub use store::{ExecutionDescription, Status, StoreError};

/// The functions Task states call, by the name or ARN the definition gives after substitution.
/// Locally they are in-process stand-ins for the Lambdas.
#[async_trait]
pub trait Functions: Send + Sync {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskError>;
}

/// A function's failure. `error` is the name that Retry and Catch match, as a Lambda's
/// `errorType`; `cause` says what happened, and ends up in the execution's error output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

impl TaskError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}
