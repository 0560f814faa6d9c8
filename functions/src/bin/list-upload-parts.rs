//! Lambda for `GET /v1/upload/files/{id}/parts` — see `Endpoint::ListUploadParts`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::ListUploadParts).await
}
