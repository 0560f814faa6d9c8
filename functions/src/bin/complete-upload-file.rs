//! Lambda for `POST /v1/upload/files/{id}/complete` — see `Endpoint::CompleteUploadFile`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::CompleteUploadFile).await
}
