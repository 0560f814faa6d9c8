//! The workflow step `create-job`, called by Step Functions.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::steps::run_step(bcdi_shared::steps::Step::CreateJob).await
}
