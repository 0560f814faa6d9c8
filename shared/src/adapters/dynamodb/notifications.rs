//! `NotificationStore` on the table: the outbox is the status event items themselves
//! (`pk` = `EST#<rne>`, `sk` = `EVENT#<seq>`), written with their delivery attributes in the
//! same transaction as the change of status.
//!
//! | attribute | meaning |
//! |---|---|
//! | `notify_state` | `pending`, `acknowledged`, `given_up` or `skipped` |
//! | `notify_at` | pending: when the next attempt is due; otherwise when it ended |
//! | `notify_attempts` | attempts begun |
//! | `notify_sent_at`, `notify_last_at` | when the first and the latest attempt were sent |
//! | `notify_error` | why the latest failed attempt failed |
//! | `gsi1pk` = `NOTIFY#PENDING`, `gsi1sk` = `<notify_at, 12 digits>#<rne>#<seq, 10 digits>` | only while pending |
//!
//! The last row makes the sparse `by_status` index list pending notifications soonest due
//! first, with no index of their own; both attributes go when a notification ends. All pending
//! notifications share one index partition: status changes are rare (a few per school and
//! year), far below a partition's throughput.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    conditional, event_from, event_sk, n, number, optional_number, optional_string, record_pk, s,
    string, unavailable, DynamoDbStore, Item, BY_STATUS_INDEX,
};
use crate::domain::{Instant, Rne, StatusEvent};
use crate::ports::{
    AfterFailure, Delivery, DeliveryState, Notification, NotificationStore, StoreError,
};

/// The index partition of pending notifications.
pub const PENDING_PARTITION: &str = "NOTIFY#PENDING";

/// The delivery attributes of a status event item as `create` and `transition` write it:
/// pending, due at the instant of the change.
pub(super) fn pending_attributes(rne: &Rne, event: &StatusEvent) -> [(String, AttributeValue); 5] {
    [
        ("notify_state".to_owned(), s("pending")),
        ("notify_at".to_owned(), n(event.at.unix())),
        ("notify_attempts".to_owned(), n(0)),
        ("gsi1pk".to_owned(), s(PENDING_PARTITION)),
        ("gsi1sk".to_owned(), s(due_key(event.at, rne, event.seq))),
    ]
}

fn due_key(at: Instant, rne: &Rne, seq: u32) -> String {
    format!("{:012}#{rne}#{seq:010}", at.unix())
}

/// The notification of a status event item, from the table or from a stream record's image;
/// `None` for items that are not status events or carry no delivery attributes.
pub fn notification_from_item(item: &Item) -> Result<Option<Notification>, StoreError> {
    let is_event = optional_string(item, "sk")?.is_some_and(|sk| sk.starts_with("EVENT#"));
    let Some(state) = optional_string(item, "notify_state")?.filter(|_| is_event) else {
        return Ok(None);
    };
    let rne = string(item, "pk")?
        .strip_prefix("EST#")
        .and_then(|rne| Rne::parse(rne).ok())
        .ok_or_else(|| super::corrupt("an event's partition key is invalid"))?;
    let at = Instant::from_unix(number(item, "notify_at")?);
    let state = DeliveryState::from_name(state, at)
        .ok_or_else(|| super::corrupt("`notify_state` is invalid"))?;
    Ok(Some(Notification {
        rne,
        event: event_from(item)?,
        delivery: Delivery {
            state,
            attempts: number(item, "notify_attempts")?,
            sent_at: optional_number(item, "notify_sent_at")?.map(Instant::from_unix),
            last_attempt_at: optional_number(item, "notify_last_at")?.map(Instant::from_unix),
            last_error: optional_string(item, "notify_error")?.map(str::to_owned),
        },
    }))
}

impl DynamoDbStore {
    /// An update of the event item `seq` of `rne`, sent by [`Self::conditional`].
    fn update_event(&self, rne: &Rne, seq: u32) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_pk(rne)))
            .key("sk", s(event_sk(seq)))
            .expression_attribute_values(":pending", s("pending"))
    }

    /// Ends a pending notification in `state` and takes it out of the index.
    async fn end(
        &self,
        operation: &str,
        update: UpdateItemFluentBuilder,
        state: DeliveryState,
        extra_set: &str,
    ) -> Result<(), StoreError> {
        let update = update
            .update_expression(format!(
                "SET notify_state = :state, notify_at = :at{extra_set} REMOVE gsi1pk, gsi1sk"
            ))
            .expression_attribute_values(":state", s(state.name()))
            .expression_attribute_values(":at", n(state.at().unix()));
        conditional(operation, update).await
    }
}

#[async_trait]
impl NotificationStore for DynamoDbStore {
    async fn due_notifications(
        &self,
        now: Instant,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        // Every key of a notification due at `now` or before sorts below the next second.
        let bound = format!("{:012}", now.unix().saturating_add(1));
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk < :bound")
            .expression_attribute_values(":pk", s(PENDING_PARTITION))
            .expression_attribute_values(":bound", s(bound))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|error| unavailable("Query due notifications", &error, &[]))?;
        // The index is eventually consistent: an item may show a state it has just left. The
        // conditional writes that follow sort that out.
        Ok(output
            .items()
            .iter()
            .map(notification_from_item)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .filter(|notification| {
                matches!(notification.delivery.state, DeliveryState::Pending { .. })
            })
            .collect())
    }

    async fn notifications(&self, rne: &Rne) -> Result<Vec<Notification>, StoreError> {
        let items = self.query_events(rne).await?;
        let mut notifications = Vec::with_capacity(items.len());
        for item in &items {
            notifications.extend(notification_from_item(item)?);
        }
        Ok(notifications)
    }

    async fn begin_attempt(
        &self,
        rne: &Rne,
        seq: u32,
        attempts: u32,
        now: Instant,
        lease_until: Instant,
    ) -> Result<(), StoreError> {
        let update = self
            .update_event(rne, seq)
            .update_expression(
                "SET notify_attempts = :next, notify_last_at = :now, \
                 notify_sent_at = if_not_exists(notify_sent_at, :now), \
                 notify_at = :lease, gsi1sk = :due",
            )
            .condition_expression("notify_state = :pending AND notify_attempts = :attempts")
            .expression_attribute_values(":attempts", n(attempts))
            .expression_attribute_values(":next", n(attempts.saturating_add(1)))
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":lease", n(lease_until.unix()))
            .expression_attribute_values(":due", s(due_key(lease_until, rne, seq)));
        conditional("UpdateItem begin_attempt", update).await
    }

    async fn record_failure(
        &self,
        rne: &Rne,
        seq: u32,
        attempt: u32,
        error: &str,
        next: AfterFailure,
    ) -> Result<(), StoreError> {
        let update = self
            .update_event(rne, seq)
            .condition_expression("notify_state = :pending AND notify_attempts = :attempt")
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":error", s(error));
        match next {
            AfterFailure::RetryAt(at) => {
                let update = update
                    .update_expression("SET notify_error = :error, notify_at = :at, gsi1sk = :due")
                    .expression_attribute_values(":at", n(at.unix()))
                    .expression_attribute_values(":due", s(due_key(at, rne, seq)));
                conditional("UpdateItem record_failure", update).await
            }
            AfterFailure::GiveUp(at) => {
                let state = DeliveryState::GivenUp { at };
                self.end(
                    "UpdateItem give_up",
                    update,
                    state,
                    ", notify_error = :error",
                )
                .await
            }
        }
    }

    async fn acknowledge(&self, rne: &Rne, seq: u32, at: Instant) -> Result<(), StoreError> {
        let update = self
            .update_event(rne, seq)
            .condition_expression("notify_state = :pending");
        let state = DeliveryState::Acknowledged { at };
        self.end("UpdateItem acknowledge", update, state, "").await
    }

    async fn skip(&self, rne: &Rne, seq: u32, at: Instant) -> Result<(), StoreError> {
        let update = self
            .update_event(rne, seq)
            .condition_expression("notify_state = :pending");
        let state = DeliveryState::Skipped { at };
        self.end("UpdateItem skip", update, state, "").await
    }
}
