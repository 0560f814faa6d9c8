//! The HTTP handlers. They take an `http::Request` with its whole body and give an
//! `http::Response`: the Lambda glue and the local server only convert to and from these.

mod admin;
mod agent;
mod auth;
mod body;
mod error;
mod establishments;
mod messages;
#[cfg(test)]
mod openapi_tests;
mod page;
mod router;
mod uploads;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use tracing::Instrument;

pub use auth::Caller;
pub use body::MAX_BODY_BYTES;
pub use error::{ApiError, ErrorCode};
pub use router::{encode_decoded_path, match_route, Endpoint};
pub use uploads::{UploadSettings, UPLOAD_TOKEN_PREFIX};

use crate::config::Config;
use crate::ports::{EstablishmentStore, JobStore, Storage, UploadStore, Workflows};

pub type Request = http::Request<Bytes>;
pub type Response = http::Response<Bytes>;

/// The request id of the platform (API Gateway, Lambda) or of the local server, set as a
/// request extension by whoever received the request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The OpenAPI document of this API, served as is.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Everything a handler needs, built once per process.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn EstablishmentStore>,
    pub workflows: Arc<dyn Workflows>,
    /// Upload sessions and the archives uploaded through them.
    pub uploads: Arc<dyn UploadStore>,
    /// Where the archives are uploaded to, straight from the browser.
    pub storage: Arc<dyn Storage>,
    /// The hosting agent's jobs, with the workflows' task tokens.
    pub jobs: Arc<dyn JobStore>,
}

impl App {
    /// Answers any endpoint: the local server's entry point.
    pub async fn handle(&self, request: Request) -> Response {
        self.handle_only(None, request).await
    }

    /// Answers `endpoint` only, as one Lambda function does; other paths get 404.
    pub async fn handle_endpoint(&self, endpoint: Endpoint, request: Request) -> Response {
        self.handle_only(Some(&[endpoint]), request).await
    }

    /// Answers `endpoints` only, for a Lambda function that serves several routes.
    pub async fn handle_endpoints(&self, endpoints: &[Endpoint], request: Request) -> Response {
        self.handle_only(Some(endpoints), request).await
    }

    async fn handle_only(&self, only: Option<&[Endpoint]>, request: Request) -> Response {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %request.method(),
            endpoint = tracing::field::Empty,
            rne = tracing::field::Empty,
        );
        async move {
            let started = std::time::Instant::now();
            let response = match self.dispatch(only, &request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            };
            tracing::info!(
                status = response.status().as_u16(),
                // Whole microseconds, so that the figure prints as 3.429, not 3.4292540000000002.
                duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
                "request handled"
            );
            response
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        only: Option<&[Endpoint]>,
        request: &Request,
    ) -> Result<Response, ApiError> {
        let path = request.uri().path();
        let matched = router::match_route(request.method(), path)?;
        if only.is_some_and(|only| !only.contains(&matched.endpoint)) {
            return Err(ApiError::not_found("such path"));
        }
        tracing::Span::current().record("endpoint", matched.endpoint.name());
        let param = |index: usize| matched.params.get(index).map_or("", AsRef::as_ref);

        match matched.endpoint {
            Endpoint::OpenApi => Ok(with_type(
                Response::new(Bytes::from_static(OPENAPI_JSON.as_bytes())),
                "application/json; charset=utf-8",
            )),
            Endpoint::GetEstablishment => self.get_establishment(request, param(0)).await,
            Endpoint::CreateEstablishment => self.create_establishment(request).await,
            Endpoint::GetHistory => self.get_history(request, param(0)).await,
            Endpoint::UploadPage => Ok(self.upload_page()),
            Endpoint::UploadAsset => self.upload_asset(param(0)),
            Endpoint::CreateUploadSession => self.create_upload_session(request, param(0)).await,
            Endpoint::GetUploadSession => self.get_upload_session(request).await,
            Endpoint::CreateUploadFile => self.create_upload_file(request).await,
            Endpoint::CreatePartUrls => self.create_part_urls(request, param(0)).await,
            Endpoint::ListUploadParts => self.list_upload_parts(request, param(0)).await,
            Endpoint::CompleteUploadFile => self.complete_upload_file(request, param(0)).await,
            Endpoint::DeleteUploadFile => self.delete_upload_file(request, param(0)).await,
            Endpoint::SubmitUpload => self.submit_upload(request).await,
            Endpoint::ClaimJob => self.claim_job(request).await,
            Endpoint::HeartbeatJob => self.heartbeat_job(request, param(0)).await,
            Endpoint::SucceedJob => self.succeed_job(request, param(0)).await,
            Endpoint::FailJob => self.fail_job(request, param(0)).await,
            Endpoint::ListEstablishments => self.list_establishments(request).await,
            Endpoint::RetryEstablishment => self.retry_establishment(request, param(0)).await,
        }
    }
}

/// A JSON response with the contract's content type; never cached, as bodies may hold keys.
/// `body` is written straight out: a typed view need not become a `serde_json::Value` first.
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let body = match serde_json::to_vec(body) {
        Ok(body) => body,
        // Only a map whose keys are not strings fails, and no response holds one.
        Err(error) => return ApiError::unavailable(&error).into_response(),
    };
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_type(response, "application/json; charset=utf-8")
}

fn with_type(mut response: Response, content_type: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
