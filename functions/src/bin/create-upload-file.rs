//! Lambda for `POST /v1/upload/files` — see `Endpoint::CreateUploadFile`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::CreateUploadFile).await
}
