//! Workflows on AWS Step Functions: one state machine per workflow kind, and the callbacks of
//! their `waitForTaskToken` tasks.

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::ExecutionStatus;

use crate::ports::{Started, TaskTokenError, WorkflowError, WorkflowKind, WorkflowRun, Workflows};

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

impl StepFunctions {
    fn state_machine_arn(&self, kind: WorkflowKind) -> &str {
        match kind {
            WorkflowKind::Provisioning => &self.provisioning_arn,
            WorkflowKind::Mounting => &self.mounting_arn,
        }
    }

    /// Whether the execution of `run`, which exists, still runs.
    async fn existing(
        &self,
        state_machine_arn: &str,
        run: &WorkflowRun,
    ) -> Result<Started, WorkflowError> {
        let execution_arn = execution_arn(state_machine_arn, &run.name()).ok_or_else(|| {
            WorkflowError(format!("not a state machine ARN: {state_machine_arn}"))
        })?;
        let described = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|error| {
                WorkflowError(format!(
                    "DescribeExecution {}: {}",
                    run.name(),
                    aws_sdk_sfn::error::DisplayErrorContext(&error)
                ))
            })?;
        Ok(match described.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => Started::Running,
            _ => Started::Ended,
        })
    }
}

/// The ARN of the execution `name` of a state machine: `arn:aws:states:<region>:<account>:
/// stateMachine:<machine>` gives `arn:aws:states:<region>:<account>:execution:<machine>:<name>`.
fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let (prefix, machine) = state_machine_arn.split_once(":stateMachine:")?;
    Some(format!("{prefix}:execution:{machine}:{name}"))
}

#[async_trait]
impl Workflows for StepFunctions {
    async fn start(
        &self,
        run: &WorkflowRun,
        input: serde_json::Value,
    ) -> Result<Started, WorkflowError> {
        let arn = self.state_machine_arn(run.kind);
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
            Ok(_) => Ok(Started::Running),
            // The execution name is fixed by establishment and attempt: it ran already. Step
            // Functions says so both for a running execution started with another input and for
            // one that has ended, and only the second is a run that can never happen again.
            Err(error) if error.code() == Some("ExecutionAlreadyExists") => {
                self.existing(arn, run).await
            }
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
