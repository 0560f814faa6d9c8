//! The outbox of status notifications: every status event the store records is a webhook to
//! deliver, kept with its delivery state next to the event itself, so that an event and its
//! notification are written in the same atomic write and neither exists without the other.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Instant, Rne, StatusEvent};

/// A status event and where its webhook stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub rne: Rne,
    pub event: StatusEvent,
    pub delivery: Delivery,
}

/// The delivery record of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub state: DeliveryState,
    /// Attempts begun so far, counting one that may still be in flight.
    pub attempts: u32,
    /// When the first attempt was sent; `None` before any attempt.
    pub sent_at: Option<Instant>,
    /// When the latest attempt was sent.
    pub last_attempt_at: Option<Instant>,
    /// Why the latest failed attempt failed (`HTTP 500`, `timed out`, …): never a URL or secret.
    pub last_error: Option<String>,
}

impl Delivery {
    /// The record of an event just stored: pending, due at once.
    pub fn new(due_at: Instant) -> Self {
        Self {
            state: DeliveryState::Pending {
                next_attempt_at: due_at,
            },
            attempts: 0,
            sent_at: None,
            last_attempt_at: None,
            last_error: None,
        }
    }

    /// When the receiver acknowledged the webhook, if it did.
    pub fn acknowledged_at(&self) -> Option<Instant> {
        match self.state {
            DeliveryState::Acknowledged { at } => Some(at),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// To be sent (again) from `next_attempt_at` on.
    Pending { next_attempt_at: Instant },
    /// The receiver answered 2xx at `at`.
    Acknowledged { at: Instant },
    /// Every attempt failed until the retry window closed at `at`; nothing more is sent.
    GivenUp { at: Instant },
    /// No webhook was configured when the notification became due; nothing is sent.
    Skipped { at: Instant },
}

impl DeliveryState {
    /// The stored name: `pending`, `acknowledged`, `given_up`, `skipped`.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending { .. } => "pending",
            DeliveryState::Acknowledged { .. } => "acknowledged",
            DeliveryState::GivenUp { .. } => "given_up",
            DeliveryState::Skipped { .. } => "skipped",
        }
    }

    /// The state named `name`, at `at` (the next attempt when pending, the end otherwise).
    pub fn from_name(name: &str, at: Instant) -> Option<Self> {
        match name {
            "pending" => Some(DeliveryState::Pending {
                next_attempt_at: at,
            }),
            "acknowledged" => Some(DeliveryState::Acknowledged { at }),
            "given_up" => Some(DeliveryState::GivenUp { at }),
            "skipped" => Some(DeliveryState::Skipped { at }),
            _ => None,
        }
    }

    /// The instant stored with the state.
    pub fn at(self) -> Instant {
        match self {
            DeliveryState::Pending { next_attempt_at } => next_attempt_at,
            DeliveryState::Acknowledged { at }
            | DeliveryState::GivenUp { at }
            | DeliveryState::Skipped { at } => at,
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Another attempt from this instant on.
    RetryAt(Instant),
    /// No more attempts: the retry window closed; given up at this instant.
    GiveUp(Instant),
}

/// Every method that changes a delivery is conditional, so that several workers (the local
/// worker, or the stream notifier and the sweeper on AWS) may race on one notification: the
/// loser gets `Conflict` and changes nothing.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Pending notifications whose next attempt is due at `now`, soonest due first, `limit` at
    /// most. Served by an index, never by a scan.
    async fn due_notifications(
        &self,
        now: Instant,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError>;

    /// The notifications of the establishment's status events, oldest first. Events stored
    /// before notifications existed have none and are left out.
    async fn notifications(&self, rne: &Rne) -> Result<Vec<Notification>, StoreError>;

    /// Takes notification `seq` of `rne` for one attempt sent at `now`, if it is pending after
    /// exactly `attempts` attempts: counts the attempt, records when it was sent, and holds the
    /// next attempt back until `lease_until`, so that no other worker sends it meanwhile and a
    /// worker that dies mid-attempt delays it only that long. `Conflict` otherwise.
    async fn begin_attempt(
        &self,
        rne: &Rne,
        seq: u32,
        attempts: u32,
        now: Instant,
        lease_until: Instant,
    ) -> Result<(), StoreError>;

    /// Records that attempt number `attempt` failed with `error`, and what happens next.
    /// `Conflict` if the notification is no longer pending or a later attempt began.
    async fn record_failure(
        &self,
        rne: &Rne,
        seq: u32,
        attempt: u32,
        error: &str,
        next: AfterFailure,
    ) -> Result<(), StoreError>;

    /// Records that the receiver acknowledged the webhook at `at`. `Conflict` if the
    /// notification is no longer pending (already acknowledged, given up or skipped).
    async fn acknowledge(&self, rne: &Rne, seq: u32, at: Instant) -> Result<(), StoreError>;

    /// Ends a pending notification without sending it, because no webhook is configured.
    /// `Conflict` if it is no longer pending.
    async fn skip(&self, rne: &Rne, seq: u32, at: Instant) -> Result<(), StoreError>;
}
