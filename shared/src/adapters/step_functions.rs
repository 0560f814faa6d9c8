//! Workflows on AWS Step Functions: one state machine per workflow kind, and the callbacks of
//! their `waitForTaskToken` tasks.

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;

use crate::ports::{TaskTokenError, WorkflowError, WorkflowKind, WorkflowRun, Workflows};

pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
    provisioning_arn: String,
    mounting_arn: String,
}

impl StepFunctions {
    pub fn new(
        client: aws_sdk_sfn::Client,
        provisioning_arn: String,
        mounting_arn: String,
    ) -> Self {
        Self {
            client,
            provisioning_arn,
            mounting_arn,
        }
    }
}

#[async_trait]
impl Workflows for StepFunctions {
    async fn start(
        &self,
        run: &WorkflowRun,
        input: serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let arn = match run.kind {
            WorkflowKind::Provisioning => &self.provisioning_arn,
            WorkflowKind::Mounting => &self.mounting_arn,
        };
        let input = run.input(input);
        let result = self
            .client
            .start_execution()
            .state_machine_arn(arn)
            .name(run.name())
            .input(input.to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The execution name is fixed by establishment and attempt: it already runs.
            Err(error) if error.code() == Some("ExecutionAlreadyExists") => Ok(()),
            Err(error) => Err(WorkflowError(format!(
                "StartExecution {}: {}",
                run.name(),
                aws_sdk_sfn::error::DisplayErrorContext(&error)
            ))),
        }
    }

    async fn send_task_success(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> Result<(), TaskTokenError> {
        let result = self
            .client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|error| token_error("SendTaskSuccess", &error))
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TaskTokenError> {
        let result = self
            .client
            .send_task_failure()
            .task_token(token)
            .error(truncate(error, MAX_ERROR_CHARS))
            .cause(truncate(cause, MAX_CAUSE_CHARS))
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|error| token_error("SendTaskFailure", &error))
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        let result = self
            .client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|error| token_error("SendTaskHeartbeat", &error))
    }
}

/// Step Functions' limits on SendTaskFailure's `error` and `cause`, in characters.
const MAX_ERROR_CHARS: usize = 256;
const MAX_CAUSE_CHARS: usize = 32_768;

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The task is gone when Step Functions says so; anything else may pass on a retry. The token
/// itself never reaches the message: it is a credential for the task.
fn token_error<E, R>(operation: &str, error: &aws_sdk_sfn::error::SdkError<E, R>) -> TaskTokenError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.code() {
        Some("TaskTimedOut" | "InvalidToken" | "TaskDoesNotExist") => TaskTokenError::Gone,
        Some(code) => TaskTokenError::Unavailable(format!("{operation}: {code}")),
        None => TaskTokenError::Unavailable(format!(
            "{operation}: {}",
            aws_sdk_sfn::error::DisplayErrorContext(error)
        )),
    }
}
