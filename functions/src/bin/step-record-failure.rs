//! The workflow step `record-failure`, called by Step Functions.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::steps::run_step(bcdi_shared::steps::Step::RecordFailure).await
}
