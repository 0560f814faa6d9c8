//! Lambda for `POST /v1/admin/establishments/{rne}/retry` — see `Endpoint::RetryEstablishment`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::RetryEstablishment).await
}
