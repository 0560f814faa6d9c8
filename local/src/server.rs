//! The local HTTP server: every API path goes to the shared handlers, exactly as API Gateway
//! would route it to one Lambda each.
//!
//! Known shortcoming: what hyper refuses before any handler runs (a malformed request line or
//! header, a URI or headers over its limits) gets hyper's bare status with an empty body, not
//! the API's JSON error; on AWS, API Gateway answers those requests itself.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use bcdi_shared::api::{ApiError, App, ErrorCode, RequestId, MAX_BODY_BYTES};
use bytes::Bytes;
use http::HeaderValue;
use tokio::net::TcpListener;

/// Binds `127.0.0.1:port`, saying plainly when the port is taken.
pub async fn bind(port: u16) -> Result<TcpListener, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(address)
        .await
        .map_err(|error| match error.kind() {
            io::ErrorKind::AddrInUse => format!(
                "port {port} on 127.0.0.1 is already in use: stop the program that holds it, \
             or choose another port with PORT={}",
                port.wrapping_add(1)
            ),
            _ => format!("cannot listen on {address}: {error}"),
        })
}

/// Serves `app` on `listener` with `storage` (the embedded S3 server's router, which claims
/// only the bucket's paths) beside it on the same port: path-style URLs at the root, the paths
/// their signatures were computed on. Every other path is the API's. Runs until `shutdown`
/// completes, then finishes the requests under way.
pub async fn serve_with_storage(
    listener: TcpListener,
    app: Arc<App>,
    storage: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = axum::Router::new()
        .fallback(handle)
        .with_state(app)
        .merge(storage);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
) -> http::Response<Body> {
    let request_id = new_request_id();
    let (mut parts, body) = request.into_parts();

    // Read at most one byte more than allowed: a larger body is refused, never buffered whole.
    let response = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(bytes) if bytes.len() <= MAX_BODY_BYTES => {
            parts.extensions.insert(RequestId(request_id.clone()));
            app.handle(http::Request::from_parts(parts, bytes)).await
        }
        Ok(_) => too_large(),
        Err(error) if is_length_limit(&error) => too_large(),
        Err(_) => ApiError::invalid("The request body could not be read.").into_response(),
    };

    let (mut parts, body) = response.into_parts();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("x-request-id", value);
    }
    http::Response::from_parts(parts, Body::from(body))
}

fn too_large() -> http::Response<Bytes> {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("The request body must be at most {MAX_BODY_BYTES} bytes."),
    )
    .into_response()
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// 64 random bits in hex, to find one request's lines in the logs. Not a secret, so a fast
/// thread-local generator serves: the kernel's CSPRNG cost a system call per request.
fn new_request_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests under way");
}
