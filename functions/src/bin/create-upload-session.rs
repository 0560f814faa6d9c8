//! Lambda for `POST /v1/establishments/{rne}/upload-sessions` — see `Endpoint::CreateUploadSession`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::CreateUploadSession).await
}
