//! The two Lambdas of the webhooks. `notify-status-change` reads the table's DynamoDB stream
//! and sends each new status event's webhook at once; `retry-notifications`, run every minute
//! by a schedule, sends whatever is due: retries, and anything the first one could not do; it
//! also publishes, every minute, how many establishments are in E1 and E2 (`metrics`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};

use crate::adapters::dynamodb::notifications::notification_from_item;
use crate::adapters::dynamodb::DynamoDbStore;
use crate::config::{self, ConfigError};
use crate::lambda::metrics;
use crate::notify::{NotificationSettings, Notifier, Round};
use crate::ports::EstablishmentStore;
use crate::telemetry;

/// A DynamoDB stream event, as Lambda delivers it.
pub use aws_lambda_events::event::dynamodb::Event as StreamEvent;

/// How many due notifications one sweep sends at most: at 8 at a time and a 10 s timeout, a
/// sweep of unreachable receivers ends in under 3 minutes, within the function's timeout.
pub const SWEEP_BATCH: usize = 100;

/// The notifier on the table `TABLE_NAME`, with the webhook settings of the environment.
pub async fn notifier_from_env() -> Result<Notifier, ConfigError> {
    Ok(notifier_and_store_from_env().await?.0)
}

async fn notifier_and_store_from_env() -> Result<(Notifier, Arc<DynamoDbStore>), ConfigError> {
    let settings = NotificationSettings::from_env()?;
    let aws = crate::lambda::aws::sdk_config().await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config::required("TABLE_NAME")?,
    ));
    Ok((Notifier::new(store.clone(), settings)?, store))
}

/// What the scheduled sweeper needs: the notifier, and the store and CloudWatch namespace
/// (`METRICS_NAMESPACE`) of the E1/E2 gauges.
#[derive(Clone)]
pub struct Sweeper {
    pub notifier: Notifier,
    pub establishments: Arc<dyn EstablishmentStore>,
    pub metrics_namespace: String,
}

impl Sweeper {
    /// One scheduled run: sends what is due, then writes the E1/E2 gauges' line to `out` (even
    /// when the sweep failed: they come from another query). The sweep's result is the run's.
    pub async fn run_once(&self, out: &mut (dyn Write + Send)) -> Result<Round, Diagnostic> {
        let round = sweep(&self.notifier).await;
        metrics::publish_failed_counts(&*self.establishments, &self.metrics_namespace, out).await;
        round
    }
}

/// The sweeper, configured from the environment.
pub async fn sweeper_from_env() -> Result<Sweeper, ConfigError> {
    let (notifier, store) = notifier_and_store_from_env().await?;
    Ok(Sweeper {
        notifier,
        establishments: store,
        metrics_namespace: config::required("METRICS_NAMESPACE")?,
    })
}

/// The stream notifier, until the runtime stops.
pub async fn run_stream_notifier() -> Result<(), lambda_runtime::Error> {
    telemetry::init(telemetry::Format::from_env(telemetry::Format::Json));
    let notifier = notifier_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| {
        let notifier = notifier.clone();
        async move { Ok::<_, Infallible>(handle_stream(&notifier, event.payload).await) }
    }))
    .await
}

/// The scheduled sweeper, until the runtime stops: each run is [`Sweeper::run_once`], its
/// gauges written to standard output.
pub async fn run_sweeper() -> Result<(), lambda_runtime::Error> {
    telemetry::init(telemetry::Format::from_env(telemetry::Format::Json));
    let sweeper = sweeper_from_env().await?;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let sweeper = sweeper.clone();
        async move { sweeper.run_once(&mut std::io::stdout()).await }
    }))
    .await
}

/// Sends the webhook of every new status event of `event`, one after the other (the stream
/// keeps an establishment's events in order). It never fails the batch: a record it could not
/// handle is still pending in the table, and the sweeper sends it.
pub async fn handle_stream(notifier: &Notifier, event: StreamEvent) -> Round {
    let mut round = Round::default();
    for record in event.records {
        // Only an insert is a new event; later changes of an event item are its own delivery.
        if record.event_name != "INSERT" {
            continue;
        }
        match notification_from_item(&item_from_image(&record.change.new_image)) {
            Ok(Some(notification)) => round.add(notifier.deliver(&notification).await),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "stream record left to the sweeper: unreadable");
                round.errors += 1;
            }
        }
    }
    round
}

/// One sweep: sends what is due. A store failure fails the invocation with a stable error
/// type; the next scheduled run tries again.
pub async fn sweep(notifier: &Notifier) -> Result<Round, Diagnostic> {
    let round = notifier
        .deliver_due(SWEEP_BATCH)
        .await
        .map_err(|error| Diagnostic {
            error_type: "NotificationStoreUnavailable".to_owned(),
            error_message: error.to_string(),
        })?;
    if !round.is_empty() {
        tracing::info!(?round, "notifications swept");
    }
    Ok(round)
}

/// A stream image as the SDK's item type, so that one reader serves the table and the stream.
/// Binary, set, list and map attributes do not occur on event items and are left out.
fn item_from_image(image: &serde_dynamo::Item) -> HashMap<String, AttributeValue> {
    image
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                serde_dynamo::AttributeValue::S(text) => AttributeValue::S(text.clone()),
                serde_dynamo::AttributeValue::N(number) => AttributeValue::N(number.clone()),
                serde_dynamo::AttributeValue::Bool(flag) => AttributeValue::Bool(*flag),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}
