//! Lambda for `POST /v1/agent/jobs/{id}/succeed` — see `Endpoint::SucceedJob`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::SucceedJob).await
}
