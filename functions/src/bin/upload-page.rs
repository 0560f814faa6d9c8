//! Lambda for the upload page `GET /v1/upload` and its assets `GET /v1/upload/assets/{file}` —
//! see `Endpoint::UploadPage` and `Endpoint::UploadAsset`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run_endpoints(&[Endpoint::UploadPage, Endpoint::UploadAsset]).await
}
