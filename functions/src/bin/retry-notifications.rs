//! Scheduled Lambda (every minute): sends the webhooks that are due, retries included — see
//! `bcdi_shared::lambda::notifications`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::notifications::run_sweeper().await
}
