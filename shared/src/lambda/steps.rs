//! The glue between `lambda_runtime` and the workflow steps: each `step-*` function's `main` is
//! one call to [`run_step`]. The step's error name becomes the Lambda `errorType`, which the
//! state machines' Retry and Catch match.

use std::sync::Arc;

use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent};
use lambda_http::service_fn;
use serde_json::Value;
use tracing::Instrument;

use crate::adapters::dynamodb::DynamoDbStore;
use crate::adapters::s3::S3Storage;
use crate::archive::ArchiveLimits;
use crate::config::{self, Config};
use crate::steps::{Step, StepError, Steps};
use crate::telemetry;

/// Runs `step` in the Lambda runtime, with the AWS adapters, until the runtime stops.
pub async fn run_step(step: Step) -> Result<(), lambda_runtime::Error> {
    telemetry::init(telemetry::Format::from_env(telemetry::Format::Json));
    let steps = Arc::new(steps_from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let steps = Arc::clone(&steps);
        async move {
            let span = tracing::info_span!(
                "step",
                step = step.name(),
                request_id = %event.context.request_id,
                rne = tracing::field::Empty,
            );
            steps
                .run(step, event.payload)
                .instrument(span)
                .await
                .map_err(diagnostic)
        }
    }))
    .await
}

/// The steps with their AWS adapters, configured from the environment.
pub async fn steps_from_env() -> Result<Steps, config::ConfigError> {
    let config = Config::from_env()?;
    let archive_limits = ArchiveLimits::from_env()?;
    let aws = crate::lambda::aws::sdk_config().await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config::required("TABLE_NAME")?,
    ));
    let storage = S3Storage::from_aws_config(&aws, config::required("BUCKET_NAME")?);
    Ok(Steps {
        config,
        archive_limits,
        store: store.clone(),
        jobs: store,
        storage: Arc::new(storage),
    })
}

/// The Lambda error of a step: a stable name, never a Rust type name.
pub fn diagnostic(error: StepError) -> Diagnostic {
    Diagnostic {
        error_type: error.name.to_owned(),
        error_message: error.message,
    }
}
