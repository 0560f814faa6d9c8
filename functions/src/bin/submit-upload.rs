//! Lambda for `POST /v1/upload/submit` — see `Endpoint::SubmitUpload`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::SubmitUpload).await
}
