//! Lambda for `POST /v1/agent/jobs/claim` — see `Endpoint::ClaimJob`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::ClaimJob).await
}
