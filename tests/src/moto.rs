//! The moto server that stands in for DynamoDB in tests. `scripts/test` starts it on a free
//! loopback port and exports `MOTO_ENDPOINT`; a test that needs it fails, never skips, without it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::http::HttpRequest;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, HttpClient, Region, SharedHttpClient,
};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use bcdi_shared::adapters::dynamodb::{create_table, DynamoDbStore};
use bcdi_shared::ports::EstablishmentStore;
use tokio::sync::Mutex;

/// moto's URL, e.g. `http://127.0.0.1:5055`.
pub fn endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint.trim().to_owned(),
        _ => panic!(
            "MOTO_ENDPOINT is not set: these tests need a moto server. Run them through \
             `scripts/test`, or start `moto_server -H 127.0.0.1 -p 5055` and set \
             MOTO_ENDPOINT=http://127.0.0.1:5055"
        ),
    }
}

/// A DynamoDB client for moto, with static test credentials (moto accepts any), that sends
/// one request at a time.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-3".to_owned());
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(one_request_at_a_time())
        .region(Region::new(region))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .endpoint_url(endpoint())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// moto runs each request on a thread of its own, and its `TransactWriteItems` is not isolated:
/// it deep-copies the table while other threads write to it (a 500) and, when a transaction is
/// cancelled, restores that copy over writes made meanwhile. DynamoDB runs transactions
/// serializably, so one request at a time, across all tests of this process, is the faithful
/// stand-in. Tasks still interleave between requests, which is what the race tests need.
fn one_request_at_a_time() -> SharedHttpClient {
    static TURN: Mutex<()> = Mutex::const_new(());

    #[derive(Debug)]
    struct OneAtATime(SharedHttpConnector);

    impl HttpConnector for OneAtATime {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let inner = self.0.clone();
            HttpConnectorFuture::new(async move {
                // Held until moto's response headers arrive: moto has finished the work by then.
                let _turn = TURN.lock().await;
                inner.call(request).await
            })
        }
    }

    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(OneAtATime(inner.http_connector(settings, components)))
    })
}

/// A table name no other test of this run, or of an earlier run on the same server, uses.
pub fn unique_table_name(purpose: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "{purpose}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on a new, empty table of its own, so that tests can run in parallel.
pub async fn dynamodb_store() -> Arc<dyn EstablishmentStore> {
    let client = dynamodb_client().await;
    let table = unique_table_name("establishments");
    create_table(&client, &table)
        .await
        .unwrap_or_else(|error| panic!("creating table {table} on moto: {error}"));
    Arc::new(DynamoDbStore::new(client, table))
}
