//! The glue between `lambda_http` and the handlers: each function's `main` is one call to
//! [`run`]. Clients are built once, at init, and shared by every invocation.

pub mod aws;
pub mod metrics;
pub mod notifications;
pub mod steps;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{service_fn, Body, RequestExt};

use crate::adapters::dynamodb::DynamoDbStore;
use crate::adapters::s3::S3Storage;
use crate::adapters::step_functions::StepFunctions;
use crate::api::{App, Endpoint, RequestId};
use crate::config::{self, Config};
use crate::telemetry;

/// Serves one endpoint in the Lambda runtime, with the AWS adapters, until the runtime stops.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    run_endpoints(&[endpoint]).await
}

/// Serves several endpoints from one function (e.g. a page and its assets).
pub async fn run_endpoints(endpoints: &[Endpoint]) -> Result<(), lambda_http::Error> {
    telemetry::init(telemetry::Format::from_env(telemetry::Format::Json));
    let app = Arc::new(app_from_env().await?);
    let endpoints: Arc<[Endpoint]> = endpoints.into();
    lambda_http::run(service_fn(move |event: lambda_http::Request| {
        let app = Arc::clone(&app);
        let endpoints = Arc::clone(&endpoints);
        async move { Ok::<_, Infallible>(handle_endpoints(&app, &endpoints, event).await) }
    }))
    .await
}

/// The application with its AWS adapters, configured from the environment.
pub async fn app_from_env() -> Result<App, config::ConfigError> {
    let config = Config::from_env()?;
    let aws = aws::sdk_config().await;
    let store = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config::required("TABLE_NAME")?,
    );
    let workflows = StepFunctions::new(
        aws_sdk_sfn::Client::new(&aws),
        config::required("PROVISIONING_STATE_MACHINE_ARN")?,
        config::required("MOUNTING_STATE_MACHINE_ARN")?,
    );
    let storage = S3Storage::from_aws_config(&aws, config::required("BUCKET_NAME")?);
    let store = Arc::new(store);
    Ok(App {
        config,
        store: store.clone(),
        workflows: Arc::new(workflows),
        jobs: store.clone(),
        uploads: store,
        storage: Arc::new(storage),
    })
}

/// One invocation: the API Gateway event in, the handler's response out.
pub async fn handle(
    app: &App,
    endpoint: Endpoint,
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    handle_endpoints(app, &[endpoint], event).await
}

/// One invocation of a function that serves `endpoints`.
pub async fn handle_endpoints(
    app: &App,
    endpoints: &[Endpoint],
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    let request_id = event
        .lambda_context_ref()
        .map(|context| context.request_id.clone());
    let (mut parts, body) = event.into_parts();
    if let Some(id) = request_id {
        parts.extensions.insert(RequestId(id));
    }
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let response = app
        .handle_endpoints(endpoints, http::Request::from_parts(parts, body))
        .await;
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(error) => Body::Binary(error.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}
