//! Lambda for `GET /v1/upload/session` — see `Endpoint::GetUploadSession`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::GetUploadSession).await
}
