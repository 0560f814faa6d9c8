//! Establishments in one DynamoDB table, single-table design with string keys `pk` and `sk`:
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | establishment | `EST#<rne>` | `EST` | every field, `gsi1pk` = `STATUS#<code>`, `gsi1sk` = `<status_changed_at, 12 digits>#<rne>`; `provisioning_retried` / `mounting_retried`, the last attempt given to an operator's retry (absent: none) |
//! | key lookup | `KEY#<hex digest>` | `KEY` | `rne` |
//! | status event | `EST#<rne>` | `EVENT#<seq, 10 digits>` | `status`, `previous` (optional), `at`; its webhook's delivery (`notifications.rs`) |
//!
//! The global secondary index `by_status` (`gsi1pk`, `gsi1sk`) lists establishments by status,
//! oldest change first, for the operators. Every write that touches more than one item is one
//! `TransactWriteItems` with conditions, so a key and its lookup entry never disagree.

mod counts;
mod jobs;
pub mod notifications;
mod uploads;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::domain::{
    Base, Connection, Digest, Establishment, Failure, Griffe, Instant, LicenceCode, Rne, Status,
    StatusEvent, Transition, Version,
};
use crate::ports::{EstablishmentStore, Page, StoreError, WorkflowKind};

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

    async fn query_events(&self, rne: &Rne) -> Result<Vec<Item>, StoreError> {
        self.query_prefix(record_pk(rne), "EVENT#", "events").await
    }

    /// The item at `pk` / `sk`, read consistently; `what` names it in errors.
    pub(super) async fn get_item(
        &self,
        pk: String,
        sk: impl Into<String>,
        what: &str,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|error| unavailable(&format!("GetItem {what}"), &error, &[]))?;
        Ok(output.item)
    }

    /// Every item of the partition `pk` whose sort key starts with `prefix`, in sort key
    /// order, read consistently page after page; `what` names them in errors.
    pub(super) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| unavailable(&format!("Query {what}"), &error, &[]))?;
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
        let item = self
            .get_item(record_pk(rne), "EST", "establishment")
            .await?;
        item.as_ref().map(establishment_from).transpose()
    }

    async fn find_by_key(&self, key: &Digest) -> Result<Option<Rne>, StoreError> {
        let Some(item) = self.get_item(key_pk(key), "KEY", "key").await? else {
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

    async fn transition(&self, rne: &Rne, transition: &Transition) -> Result<(), StoreError> {
        let event = &transition.event;
        let (gsi1pk, gsi1sk) = status_index_key(event.status, event.at, rne);
        let mut set = vec![
            "#status = :status",
            "status_changed_at = :at",
            "event_seq = :seq",
            "bases = :bases",
            "provisioning_attempt = :provisioning",
            "mounting_attempt = :mounting",
            "gsi1pk = :gsi1pk",
            "gsi1sk = :gsi1sk",
        ];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(record_pk(rne)))
            .key("sk", s("EST"))
            .condition_expression("event_seq = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", n(transition.expected_seq))
            .expression_attribute_values(":status", s(event.status.code()))
            .expression_attribute_values(":at", n(event.at.unix()))
            .expression_attribute_values(":seq", n(event.seq))
            .expression_attribute_values(":bases", s(bases_json(&transition.bases)))
            .expression_attribute_values(":provisioning", n(transition.provisioning_attempt))
            .expression_attribute_values(":mounting", n(transition.mounting_attempt))
            .expression_attribute_values(":gsi1pk", s(gsi1pk))
            .expression_attribute_values(":gsi1sk", s(gsi1sk));
        match transition.next_step_at {
            Some(at) => {
                set.push("next_step_at = :next");
                update = update.expression_attribute_values(":next", n(at.unix()));
            }
            None => remove.push("next_step_at"),
        }
        match &transition.failure {
            Some(failure) => {
                set.extend(["failure_reason = :reason", "failure_detail = :detail"]);
                update = update
                    .expression_attribute_values(":reason", s(&failure.reason))
                    .expression_attribute_values(":detail", s(&failure.detail));
            }
            None => remove.extend(["failure_reason", "failure_detail"]),
        }
        match &transition.connection {
            Some(connection) => {
                set.extend([
                    "connection_host = :host",
                    "connection_port = :port",
                    "connection_client_download_url = :client",
                ]);
                update = update
                    .expression_attribute_values(":host", s(&connection.host))
                    .expression_attribute_values(":port", n(connection.port))
                    .expression_attribute_values(":client", s(&connection.client_download_url));
            }
            None => remove.extend([
                "connection_host",
                "connection_port",
                "connection_client_download_url",
            ]),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(request_error)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            put_if_absent(&self.table, event_item(rne, event))?,
        ];
        match self.transact("transition", items, &[]).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition { .. }) | Err(Cancelled::Conflict) => {
                Err(StoreError::Conflict)
            }
            Err(Cancelled::Other(error)) => Err(error),
        }
    }

    async fn set_next_step_at(
        &self,
        rne: &Rne,
        status: Status,
        at: Instant,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_pk(rne)))
            .key("sk", s("EST"))
            .update_expression("SET next_step_at = :at")
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":at", n(at.unix()))
            .expression_attribute_values(":status", s(status.code()));
        conditional("UpdateItem next_step_at", update).await
    }

    async fn count_by_status(&self, status: Status) -> Result<u64, StoreError> {
        self.count_in_status(status).await
    }

    async fn retried_attempt(&self, rne: &Rne, kind: WorkflowKind) -> Result<u32, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(record_pk(rne)))
            .key("sk", s("EST"))
            .projection_expression("#retried")
            .expression_attribute_names("#retried", retried_attribute(kind))
            .send()
            .await
            .map_err(|error| unavailable("GetItem retried attempt", &error, &[]))?;
        match output.item {
            Some(item) => Ok(optional_number(&item, retried_attribute(kind))?.unwrap_or(0)),
            None => Ok(0),
        }
    }

    async fn accept_retry(
        &self,
        seen: &Establishment,
        kind: WorkflowKind,
        retried: u32,
        next: u32,
    ) -> Result<(), StoreError> {
        // An establishment never retried has no counter yet: 0 stands for its absence.
        let counter_condition = if retried == 0 {
            "(attribute_not_exists(#retried) OR #retried = :retried)"
        } else {
            "#retried = :retried"
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_pk(&seen.rne)))
            .key("sk", s("EST"))
            .update_expression("SET #retried = :next")
            .condition_expression(format!("event_seq = :seq AND {counter_condition}"))
            .expression_attribute_names("#retried", retried_attribute(kind))
            .expression_attribute_values(":seq", n(seen.event_seq))
            .expression_attribute_values(":retried", n(retried))
            .expression_attribute_values(":next", n(next));
        conditional("UpdateItem retried attempt", update).await
    }

    async fn list_by_status(
        &self,
        status: Status,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let gsi1pk = format!("STATUS#{}", status.code());
        let start = match cursor {
            None => None,
            Some(cursor) => {
                let gsi1sk = decode_cursor(cursor)?;
                let rne = gsi1sk
                    .split_once('#')
                    .and_then(|(_, rne)| Rne::parse(rne).ok())
                    .ok_or(StoreError::InvalidCursor)?;
                Some(HashMap::from([
                    ("gsi1pk".to_owned(), s(&gsi1pk)),
                    ("gsi1sk".to_owned(), s(gsi1sk)),
                    ("pk".to_owned(), s(record_pk(&rne))),
                    ("sk".to_owned(), s("EST")),
                ]))
            }
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(gsi1pk))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| unavailable("Query by_status", &error, &[]))?;
        let items = output
            .items()
            .iter()
            .map(establishment_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match output.last_evaluated_key {
            Some(key) if !key.is_empty() => Some(URL_SAFE_NO_PAD.encode(string(&key, "gsi1sk")?)),
            _ => None,
        };
        Ok(Page { items, next })
    }
}

fn decode_cursor(cursor: &str) -> Result<String, StoreError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(StoreError::InvalidCursor)
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

/// Sends `update`; a condition that does not hold (or a missing item) is `Conflict`.
pub(super) async fn conditional(
    operation: &str,
    update: UpdateItemFluentBuilder,
) -> Result<(), StoreError> {
    match update.send().await {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Err(StoreError::Conflict)
        }
        Err(error) => Err(unavailable(operation, &error, &[])),
    }
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

/// The establishment's attribute holding the last attempt of `kind` given to an operator's
/// retry.
fn retried_attribute(kind: WorkflowKind) -> &'static str {
    match kind {
        WorkflowKind::Provisioning => "provisioning_retried",
        WorkflowKind::Mounting => "mounting_retried",
    }
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
        ("mounting_attempt".to_owned(), n(e.mounting_attempt)),
        ("event_seq".to_owned(), n(e.event_seq)),
        ("bases".to_owned(), s(bases_json(&e.bases))),
    ]);
    let (gsi1pk, gsi1sk) = status_index_key(e.status, e.status_changed_at, &e.rne);
    item.insert("gsi1pk".to_owned(), s(gsi1pk));
    item.insert("gsi1sk".to_owned(), s(gsi1sk));
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

fn bases_json(bases: &[Base]) -> String {
    serde_json::to_string(bases).unwrap_or_else(|_| "[]".to_owned())
}

fn status_index_key(status: Status, changed_at: Instant, rne: &Rne) -> (String, String) {
    (
        format!("STATUS#{}", status.code()),
        format!("{:012}#{rne}", changed_at.unix()),
    )
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
    // Every status event is a webhook to deliver: the outbox entry is written with it.
    item.extend(notifications::pending_attributes(rne, event));
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
        mounting_attempt: number(item, "mounting_attempt")?,
        failure,
        connection,
        bases: serde_json::from_str(string(item, "bases")?)
            .map_err(|_| corrupt("`bases` is invalid"))?,
        event_seq: number(item, "event_seq")?,
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
