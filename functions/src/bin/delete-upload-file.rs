//! Lambda for `DELETE /v1/upload/files/{id}` — see `Endpoint::DeleteUploadFile`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::DeleteUploadFile).await
}
