//! Lambda for `POST /v1/agent/jobs/{id}/heartbeat` — see `Endpoint::HeartbeatJob`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::HeartbeatJob).await
}
