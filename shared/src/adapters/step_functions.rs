//! Workflows on AWS Step Functions: one state machine per workflow kind.

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;

use crate::ports::{WorkflowError, WorkflowKind, WorkflowRun, Workflows};

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
}
