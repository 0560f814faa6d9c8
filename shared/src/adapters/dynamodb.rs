//! Establishments in one DynamoDB table, single-table design with string keys `pk` and `sk`:
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | establishment | `EST#<rne>` | `EST` | every field, `gsi1pk` = `STATUS#<code>`, `gsi1sk` = `<status_changed_at, 12 digits>#<rne>` |
//! | key lookup | `KEY#<hex digest>` | `KEY` | `rne` |
//! | status event | `EST#<rne>` | `EVENT#<seq, 10 digits>` | `status`, `previous` (optional), `at` |
//!
//! The global secondary index `by_status` (`gsi1pk`, `gsi1sk`) lists establishments by status,
//! oldest change first, for the operators. Every write that touches more than one item is one
//! `TransactWriteItems` with conditions, so a key and its lookup entry never disagree.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};

use crate::domain::establishment::{Connection, Failure};
use crate::domain::{
    Digest, Establishment, Griffe, Instant, LicenceCode, Rne, Status, StatusEvent, Version,
};
use crate::ports::{EstablishmentStore, StoreError};

/// The index over `gsi1pk` / `gsi1sk` that lists establishments by status.
pub const BY_STATUS_INDEX: &str = "by_status";

/// Items a `TransactWriteItems` may hold, less the record and the key lookup entry.
const MAX_EVENTS_IN_ONE_DELETION: usize = 98;

pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    async fn transact(
        &self,
        operation: &str,
        items: Vec<TransactWriteItem>,
        secrets: &[&str],
    ) -> Result<(), Cancelled> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(cancellation(operation, &error, secrets)),
        }
    }

    async fn event_keys(&self, rne: &Rne) -> Result<Vec<String>, StoreError> {
        let items = self.query_events(rne).await?;
        items
            .iter()
            .map(|item| string(item, "sk").map(str::to_owned))
            .collect()
    }

    async fn query_events(
        &self,
        rne: &Rne,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(record_pk(rne)))
                .expression_attribute_values(":prefix", s("EVENT#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| unavailable("Query events", &error, &[]))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

/// Creates the table the store expects, for tests and the local tooling, and waits until it
/// can be used. `template.yaml` must define the very same table: keys `pk`/`sk` (strings),
/// on-demand billing, and the `by_status` index on `gsi1pk`/`gsi1sk` projecting all attributes.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|error| StoreError::Unavailable(format!("table definition: {error}")))
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|error| StoreError::Unavailable(format!("table definition: {error}")))
    };
    let by_status = GlobalSecondaryIndex::builder()
        .index_name(BY_STATUS_INDEX)
        .key_schema(key("gsi1pk", KeyType::Hash)?)
        .key_schema(key("gsi1sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|error| StoreError::Unavailable(format!("table definition: {error}")))?;

    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .attribute_definitions(attribute("gsi1pk")?)
        .attribute_definitions(attribute("gsi1sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(by_status)
        .send()
        .await
        .map_err(|error| unavailable("CreateTable", &error, &[]))?;

    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(120))
        .await
        .map_err(|error| unavailable("waiting for the table", &error, &[]))?;
    Ok(())
}

#[async_trait]
impl EstablishmentStore for DynamoDbStore {
    async fn get(&self, rne: &Rne) -> Result<Option<Establishment>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(record_pk(rne)))
            .key("sk", s("EST"))
            .send()
            .await
            .map_err(|error| unavailable("GetItem establishment", &error, &[]))?;
        output.item.as_ref().map(establishment_from).transpose()
    }

    async fn find_by_key(&self, key: &Digest) -> Result<Option<Rne>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(key_pk(key)))
            .key("sk", s("KEY"))
            .send()
            .await
            .map_err(|error| unavailable("GetItem key", &error, &[]))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let rne = Rne::parse(string(&item, "rne")?)
            .map_err(|_| corrupt("a key lookup entry has an invalid rne"))?;
        Ok(Some(rne))
    }

    async fn create(&self, establishment: &Establishment) -> Result<(), StoreError> {
        let rne = &establishment.rne;
        let items = vec![
            put_if_absent(&self.table, establishment_item(establishment))?,
            put_if_absent(&self.table, key_item(&establishment.key_digest, rne))?,
            put_if_absent(&self.table, event_item(rne, &establishment.first_event()))?,
        ];
        let secrets = [establishment.griffe.expose(), establishment.code.expose()];
        match self.transact("create", items, &secrets).await {
            Ok(()) => Ok(()),
            // The record's own condition failed: the RNE exists.
            Err(Cancelled::Condition { first: true }) => Err(StoreError::AlreadyExists),
            Err(Cancelled::Condition { first: false }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn replace_key(
        &self,
        rne: &Rne,
        previous: &Digest,
        next: &Digest,
    ) -> Result<(), StoreError> {
        if previous == next {
            // One transaction may not touch the lookup entry twice; nothing would change anyway.
            return match self.get(rne).await? {
                Some(stored) if stored.key_digest == *previous => Ok(()),
                _ => Err(StoreError::Conflict),
            };
        }
        let record = Update::builder()
            .table_name(&self.table)
            .key("pk", s(record_pk(rne)))
            .key("sk", s("EST"))
            .update_expression("SET key_digest = :next")
            .condition_expression("attribute_exists(pk) AND key_digest = :previous")
            .expression_attribute_values(":next", s(next.to_hex()))
            .expression_attribute_values(":previous", s(previous.to_hex()))
            .build()
            .map_err(request_error)?;
        let old_lookup = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(key_pk(previous)))
            .key("sk", s("KEY"))
            .condition_expression("rne = :rne")
            .expression_attribute_values(":rne", s(rne.as_str()))
            .build()
            .map_err(request_error)?;
        let items = vec![
            TransactWriteItem::builder().update(record).build(),
            TransactWriteItem::builder().delete(old_lookup).build(),
            put_if_absent(&self.table, key_item(next, rne))?,
        ];
        match self.transact("replace_key", items, &[]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition { .. }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn delete_unstarted(&self, rne: &Rne, key: &Digest) -> Result<(), StoreError> {
        let events = self.event_keys(rne).await?;
        if events.len() > MAX_EVENTS_IN_ONE_DELETION {
            // An establishment with that many status changes was started long ago.
            return Err(StoreError::Conflict);
        }

        let record = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(record_pk(rne)))
            .key("sk", s("EST"))
            .condition_expression("attribute_not_exists(pk) OR key_digest = :key")
            .expression_attribute_values(":key", s(key.to_hex()))
            .build()
            .map_err(request_error)?;
        let lookup = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(key_pk(key)))
            .key("sk", s("KEY"))
            .condition_expression("attribute_not_exists(pk) OR rne = :rne")
            .expression_attribute_values(":rne", s(rne.as_str()))
            .build()
            .map_err(request_error)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(record).build(),
            TransactWriteItem::builder().delete(lookup).build(),
        ];
        for sk in events {
            let event = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(record_pk(rne)))
                .key("sk", s(sk))
                .build()
                .map_err(request_error)?;
            items.push(TransactWriteItem::builder().delete(event).build());
        }

        match self.transact("delete_unstarted", items, &[]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition { .. }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn history(&self, rne: &Rne) -> Result<Vec<StatusEvent>, StoreError> {
        // The sort key orders events by their zero-padded sequence number: oldest first.
        self.query_events(rne)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }
}

/// Why a transaction did not happen.
enum Cancelled {
    /// A condition did not hold; `first` when it was the first item's.
    Condition {
        first: bool,
    },
    /// Another transaction was writing one of the items at the same time.
    Conflict,
    Other(StoreError),
}

fn cancellation(
    operation: &str,
    error: &SdkError<TransactWriteItemsError>,
    secrets: &[&str],
) -> Cancelled {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None"))
            .collect();
        if let Some(index) = codes
            .iter()
            .position(|code| *code == "ConditionalCheckFailed")
        {
            return Cancelled::Condition { first: index == 0 };
        }
        if codes.contains(&"TransactionConflict") {
            return Cancelled::Conflict;
        }
    }
    Cancelled::Other(unavailable(operation, error, secrets))
}

/// The message of an SDK error, with any of `secrets` it might echo blotted out.
fn unavailable<E>(operation: &str, error: &E, secrets: &[&str]) -> StoreError
where
    E: std::error::Error,
{
    let mut message = format!("DynamoDB {operation}: {}", DisplayErrorContext(error));
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        message = message.replace(secret, "<redacted>");
    }
    StoreError::Unavailable(message)
}

fn request_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB request: {error}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB item unreadable: {what}"))
}

fn record_pk(rne: &Rne) -> String {
    format!("EST#{rne}")
}

fn key_pk(digest: &Digest) -> String {
    format!("KEY#{}", digest.to_hex())
}

fn event_sk(seq: u32) -> String {
    format!("EVENT#{seq:010}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn put_if_absent(
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(request_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn establishment_item(establishment: &Establishment) -> HashMap<String, AttributeValue> {
    let e = establishment;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(record_pk(&e.rne))),
        ("sk".to_owned(), s("EST")),
        ("rne".to_owned(), s(e.rne.as_str())),
        ("griffe".to_owned(), s(e.griffe.expose())),
        ("code".to_owned(), s(e.code.expose())),
        ("version".to_owned(), s(e.version.as_str())),
        ("agricole".to_owned(), AttributeValue::Bool(e.agricole)),
        ("key_digest".to_owned(), s(e.key_digest.to_hex())),
        ("status".to_owned(), s(e.status.code())),
        ("created_at".to_owned(), n(e.created_at.unix())),
        (
            "status_changed_at".to_owned(),
            n(e.status_changed_at.unix()),
        ),
        ("provisioning_attempt".to_owned(), n(e.provisioning_attempt)),
        (
            "gsi1pk".to_owned(),
            s(format!("STATUS#{}", e.status.code())),
        ),
        (
            "gsi1sk".to_owned(),
            s(format!("{:012}#{}", e.status_changed_at.unix(), e.rne)),
        ),
    ]);
    if let Some(next_step_at) = e.next_step_at {
        item.insert("next_step_at".to_owned(), n(next_step_at.unix()));
    }
    if let Some(failure) = &e.failure {
        item.insert("failure_reason".to_owned(), s(&failure.reason));
        item.insert("failure_detail".to_owned(), s(&failure.detail));
    }
    if let Some(connection) = &e.connection {
        item.insert("connection_host".to_owned(), s(&connection.host));
        item.insert("connection_port".to_owned(), n(connection.port));
        item.insert(
            "connection_client_download_url".to_owned(),
            s(&connection.client_download_url),
        );
    }
    item
}

fn key_item(digest: &Digest, rne: &Rne) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(key_pk(digest))),
        ("sk".to_owned(), s("KEY")),
        ("rne".to_owned(), s(rne.as_str())),
    ])
}

fn event_item(rne: &Rne, event: &StatusEvent) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(record_pk(rne))),
        ("sk".to_owned(), s(event_sk(event.seq))),
        ("status".to_owned(), s(event.status.code())),
        ("at".to_owned(), n(event.at.unix())),
    ]);
    if let Some(previous) = event.previous {
        item.insert("previous".to_owned(), s(previous.code()));
    }
    item
}

type Item = HashMap<String, AttributeValue>;

// Readers of stored items. Their errors name the attribute, never its value: a griffe or a
// licence code must not reach a log through an error message.

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    optional_string(item, name)?.ok_or_else(|| corrupt(&format!("`{name}` is missing")))
}

fn optional_string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value)),
        Some(_) => Err(corrupt(&format!("`{name}` is not a string"))),
    }
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    optional_number(item, name)?.ok_or_else(|| corrupt(&format!("`{name}` is missing")))
}

fn optional_number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| corrupt(&format!("`{name}` is out of range"))),
        Some(_) => Err(corrupt(&format!("`{name}` is not a number"))),
    }
}

fn parsed<T, E>(
    item: &Item,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    parse(string(item, name)?).map_err(|_| corrupt(&format!("`{name}` is invalid")))
}

fn establishment_from(item: &Item) -> Result<Establishment, StoreError> {
    let failure = match (
        optional_string(item, "failure_reason")?,
        optional_string(item, "failure_detail")?,
    ) {
        (Some(reason), Some(detail)) => Some(Failure {
            reason: reason.to_owned(),
            detail: detail.to_owned(),
        }),
        (None, None) => None,
        _ => return Err(corrupt("the failure is incomplete")),
    };
    let connection = match optional_string(item, "connection_host")? {
        Some(host) => Some(Connection {
            host: host.to_owned(),
            port: number(item, "connection_port")?,
            client_download_url: string(item, "connection_client_download_url")?.to_owned(),
        }),
        None => None,
    };
    let agricole = match item.get("agricole") {
        Some(AttributeValue::Bool(value)) => *value,
        _ => return Err(corrupt("`agricole` is not a boolean")),
    };

    Ok(Establishment {
        rne: parsed(item, "rne", Rne::parse)?,
        griffe: parsed(item, "griffe", Griffe::parse)?,
        code: parsed(item, "code", LicenceCode::parse)?,
        version: parsed(item, "version", Version::parse)?,
        agricole,
        key_digest: parsed(item, "key_digest", Digest::parse_hex)?,
        status: parsed(item, "status", Status::parse)?,
        created_at: Instant::from_unix(number(item, "created_at")?),
        status_changed_at: Instant::from_unix(number(item, "status_changed_at")?),
        next_step_at: optional_number(item, "next_step_at")?.map(Instant::from_unix),
        provisioning_attempt: number(item, "provisioning_attempt")?,
        failure,
        connection,
    })
}

fn event_from(item: &Item) -> Result<StatusEvent, StoreError> {
    let seq = string(item, "sk")?
        .strip_prefix("EVENT#")
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| corrupt("an event's sort key is invalid"))?;
    let previous = optional_string(item, "previous")?
        .map(|code| Status::parse(code).map_err(|_| corrupt("`previous` is invalid")))
        .transpose()?;
    Ok(StatusEvent {
        seq,
        status: parsed(item, "status", Status::parse)?,
        previous,
        at: Instant::from_unix(number(item, "at")?),
    })
}
