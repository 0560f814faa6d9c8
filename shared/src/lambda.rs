//! The glue between `lambda_http` and the handlers: each function's `main` is one call to
//! [`run`]. Clients are built once, at init, and shared by every invocation.

pub mod aws;
pub mod metrics;
pub mod notifications;
pub mod on_first_use;
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
use crate::lambda::on_first_use::OnFirstUse;
use crate::ports::{Storage, Workflows};
use crate::telemetry;

/// Serves one endpoint in the Lambda runtime, with the AWS adapters, until the runtime stops.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    run_endpoints(&[endpoint]).await
}

/// Serves several endpoints from one function (e.g. a page and its assets).
pub async fn run_endpoints(endpoints: &[Endpoint]) -> Result<(), lambda_http::Error> {
    telemetry::init(telemetry::Format::from_env(telemetry::Format::Json));
    let app = Arc::new(app_for(Needs::of(endpoints)).await?);
    let endpoints: Arc<[Endpoint]> = endpoints.into();
    lambda_http::run(service_fn(move |event: lambda_http::Request| {
        let app = Arc::clone(&app);
        let endpoints = Arc::clone(&endpoints);
        async move { Ok::<_, Infallible>(handle_endpoints(&app, &endpoints, event).await) }
    }))
    .await
}

/// The application with all its AWS adapters, configured from the environment.
pub async fn app_from_env() -> Result<App, config::ConfigError> {
    app_for(Needs::ALL).await
}

/// The application configured from the environment (every setting is read and checked, as by
/// [`app_from_env`]), with the clients of `needs` built now and the others at their first use.
pub async fn app_for(needs: Needs) -> Result<App, config::ConfigError> {
    let config = Config::from_env()?;
    let aws = aws::sdk_config().await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config::required("TABLE_NAME")?,
    ));
    let provisioning = config::required("PROVISIONING_STATE_MACHINE_ARN")?;
    let mounting = config::required("MOUNTING_STATE_MACHINE_ARN")?;
    let bucket = config::required("BUCKET_NAME")?;
    let workflows: Arc<dyn Workflows> = {
        let aws = aws.clone();
        let build = move || {
            let client = aws_sdk_sfn::Client::new(&aws);
            StepFunctions::new(client, provisioning.clone(), mounting.clone())
        };
        if needs.workflows {
            Arc::new(build())
        } else {
            Arc::new(OnFirstUse::new(build))
        }
    };
    let storage: Arc<dyn Storage> = {
        let build = move || S3Storage::from_aws_config(&aws, bucket.clone());
        if needs.storage {
            Arc::new(build())
        } else {
            Arc::new(OnFirstUse::new(build))
        }
    };
    Ok(App {
        config,
        store: store.clone(),
        workflows,
        jobs: store.clone(),
        uploads: store,
        storage,
    })
}

/// The AWS services besides the table that a function's handlers call: their clients are
/// built at init, the others only if a request ever needs them. Each client built at init
/// costs a few tenths of a millisecond of every cold start (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Step Functions: starting runs, answering task tokens.
    pub workflows: bool,
    /// S3: multipart uploads, presigned URLs, archives.
    pub storage: bool,
}

impl Needs {
    pub const ALL: Needs = Needs {
        workflows: true,
        storage: true,
    };

    /// What the handlers of `endpoints` call.
    pub fn of(endpoints: &[Endpoint]) -> Needs {
        endpoints
            .iter()
            .map(|endpoint| Needs::of_endpoint(*endpoint))
            .fold(Needs::default(), |all, one| Needs {
                workflows: all.workflows || one.workflows,
                storage: all.storage || one.storage,
            })
    }

    /// No wildcard arm: a new endpoint says what it calls. A handler that calls more than its
    /// line says still works; that client is built at its first request.
    fn of_endpoint(endpoint: Endpoint) -> Needs {
        let (workflows, storage) = match endpoint {
            Endpoint::GetEstablishment
            | Endpoint::GetHistory
            | Endpoint::OpenApi
            | Endpoint::UploadPage
            | Endpoint::UploadAsset
            | Endpoint::CreateUploadSession
            | Endpoint::GetUploadSession
            | Endpoint::ListEstablishments => (false, false),
            Endpoint::CreateUploadFile
            | Endpoint::CreatePartUrls
            | Endpoint::ListUploadParts
            | Endpoint::CompleteUploadFile
            | Endpoint::DeleteUploadFile => (false, true),
            Endpoint::CreateEstablishment
            | Endpoint::SubmitUpload
            | Endpoint::HeartbeatJob
            | Endpoint::SucceedJob
            | Endpoint::FailJob
            | Endpoint::RetryEstablishment => (true, false),
            // Claiming heartbeats the task and presigns the archives' URLs.
            Endpoint::ClaimJob => (true, true),
        };
        Needs { workflows, storage }
    }
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
    if let Some(uri) = reencoded_uri(&parts) {
        parts.uri = uri;
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

/// The request's URI with API Gateway's `rawPath` percent-encoded again. HTTP APIs decode the
/// path before they route it and hand it over, and lambda_http builds the URI from it leaving
/// `%` as is; the router decodes once more, so it is given the path re-encoded: decoded once
/// in all, as the local server does. `None` when the event carries no raw path.
fn reencoded_uri(parts: &http::request::Parts) -> Option<http::Uri> {
    let raw = parts.raw_http_path();
    if raw.is_empty() {
        return None;
    }
    let path = crate::api::encode_decoded_path(raw);
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    http::Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_builds_at_init_only_the_clients_its_endpoints_call() {
        let reads = Needs::of(&[Endpoint::GetEstablishment]);
        assert_eq!(reads, Needs::default());
        assert_eq!(
            Needs::of(&[Endpoint::UploadPage, Endpoint::UploadAsset]),
            Needs::default()
        );
        let creation = Needs::of(&[Endpoint::CreateEstablishment]);
        assert!(creation.workflows && !creation.storage);
        let parts = Needs::of(&[Endpoint::CreatePartUrls]);
        assert!(!parts.workflows && parts.storage);
        assert_eq!(Needs::of(&[Endpoint::ClaimJob]), Needs::ALL);
        assert_eq!(Needs::of(&Endpoint::ALL), Needs::ALL);
    }
}
