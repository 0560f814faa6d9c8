//! Lambda for `` — see `Endpoint::GetHistory`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::GetHistory).await
}
