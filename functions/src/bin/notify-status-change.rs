//! Lambda on the table's DynamoDB stream: sends each new status event's webhook at once — see
//! `bcdi_shared::lambda::notifications`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bcdi_shared::lambda::notifications::run_stream_notifier().await
}
