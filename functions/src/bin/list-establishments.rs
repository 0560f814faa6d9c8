//! Lambda for `GET /v1/admin/establishments` — see `Endpoint::ListEstablishments`.

use bcdi_shared::api::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::run(Endpoint::ListEstablishments).await
}
