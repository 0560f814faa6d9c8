//! Lambda for `POST /v1/upload/files/{id}/part-urls` — see `Endpoint::CreatePartUrls`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::CreatePartUrls).await
}
