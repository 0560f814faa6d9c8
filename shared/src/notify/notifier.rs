//! Delivers the outbox: takes a pending notification for one attempt, sends it, and records
//! the outcome. The same code runs in the local server's worker, the stream notifier Lambda and
//! the sweeper Lambda.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::ConfigError;
use crate::domain::Instant;
use crate::ports::{AfterFailure, DeliveryState, Notification, NotificationStore, StoreError};

use super::backoff::{self, RetryPolicy};
use super::message::Message;
use super::sender::{SendOutcome, WebhookSender};
use super::settings::NotificationSettings;

/// Attempts in flight at once in one round.
const CONCURRENCY: usize = 8;

/// How long an attempt may hold a notification beyond its own timeout before another worker
/// may take it again (a worker that died mid-attempt).
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// What became of one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    /// The attempt failed; the next one is due then.
    Retrying(Instant),
    /// The attempt failed and the retry window is closed.
    GivenUp,
    /// No webhook is configured: ended without sending.
    Skipped,
    /// Another worker took or settled it first: nothing was done here.
    Busy,
}

/// What one round did, to log and to test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Round {
    pub acknowledged: usize,
    pub retrying: usize,
    pub given_up: usize,
    pub skipped: usize,
    pub busy: usize,
    /// Notifications the store failed on; they stay pending and come back later.
    pub errors: usize,
}

impl Round {
    pub fn is_empty(&self) -> bool {
        *self == Round::default()
    }

    fn merge(&mut self, other: Round) {
        self.acknowledged += other.acknowledged;
        self.retrying += other.retrying;
        self.given_up += other.given_up;
        self.skipped += other.skipped;
        self.busy += other.busy;
        self.errors += other.errors;
    }

    /// A task that panicked: what it did is unknown, and its notifications stay pending.
    fn panicked() -> Round {
        tracing::error!("a notification task panicked");
        Round {
            errors: 1,
            ..Round::default()
        }
    }

    /// Counts the result of one [`Notifier::deliver`].
    pub fn add(&mut self, result: Result<Outcome, StoreError>) {
        match result {
            Ok(Outcome::Acknowledged) => self.acknowledged += 1,
            Ok(Outcome::Retrying(_)) => self.retrying += 1,
            Ok(Outcome::GivenUp) => self.given_up += 1,
            Ok(Outcome::Skipped) => self.skipped += 1,
            Ok(Outcome::Busy) => self.busy += 1,
            Err(_) => self.errors += 1,
        }
    }
}

#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn NotificationStore>,
    /// `None`: no webhook configured, notifications are skipped.
    sender: Option<Arc<WebhookSender>>,
    retry: RetryPolicy,
    lease: Duration,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        settings: NotificationSettings,
    ) -> Result<Self, ConfigError> {
        let sender = match settings.webhook {
            Some(target) => Some(Arc::new(WebhookSender::new(target, settings.timeout)?)),
            None => None,
        };
        Ok(Self {
            store,
            sender,
            retry: settings.retry,
            lease: settings.timeout + LEASE_MARGIN,
        })
    }

    /// Whether webhooks are sent at all.
    pub fn is_configured(&self) -> bool {
        self.sender.is_some()
    }

    /// Delivers up to `limit` notifications that are due now: several establishments at a time,
    /// and each establishment's own notifications one after the other, oldest change first, so
    /// that a receiver usually gets them in order (retries can still reorder them).
    pub async fn deliver_due(&self, limit: usize) -> Result<Round, StoreError> {
        let due = self.store.due_notifications(Instant::now(), limit).await?;
        let mut by_establishment: Vec<Vec<Notification>> = Vec::new();
        for notification in due {
            match by_establishment
                .iter_mut()
                .find(|group| group[0].rne == notification.rne)
            {
                Some(group) => group.push(notification),
                None => by_establishment.push(vec![notification]),
            }
        }

        let mut round = Round::default();
        let mut groups = JoinSet::new();
        for mut group in by_establishment {
            group.sort_by_key(|notification| notification.event.seq);
            if groups.len() >= CONCURRENCY {
                if let Some(done) = groups.join_next().await {
                    round.merge(done.unwrap_or_else(|_| Round::panicked()));
                }
            }
            let notifier = self.clone();
            groups.spawn(async move {
                let mut round = Round::default();
                for notification in &group {
                    round.add(notifier.deliver(notification).await);
                }
                round
            });
        }
        while let Some(done) = groups.join_next().await {
            round.merge(done.unwrap_or_else(|_| Round::panicked()));
        }
        Ok(round)
    }

    /// Makes one attempt at `notification` as it was read, unless another worker got there
    /// first. A store error leaves it pending, to be tried again when its lease lapses.
    pub async fn deliver(&self, notification: &Notification) -> Result<Outcome, StoreError> {
        let message = Message::status_changed(&notification.rne, &notification.event);
        let span = tracing::info_span!(
            "notification",
            rne = %notification.rne,
            event_id = %message.id,
            status = %notification.event.status,
        );
        let result = self
            .attempt(notification, &message)
            .instrument(span.clone())
            .await;
        if let Err(error) = &result {
            span.in_scope(|| tracing::warn!(%error, "notification left pending: store failed"));
        }
        result
    }

    async fn attempt(
        &self,
        notification: &Notification,
        message: &Message,
    ) -> Result<Outcome, StoreError> {
        let rne = &notification.rne;
        let seq = notification.event.seq;
        if !matches!(notification.delivery.state, DeliveryState::Pending { .. }) {
            return Ok(Outcome::Busy);
        }

        let Some(sender) = &self.sender else {
            return settled(self.store.skip(rne, seq, Instant::now()).await, || {
                tracing::info!("webhook skipped: WEBHOOK_URL is not set");
                Outcome::Skipped
            });
        };

        let attempts = notification.delivery.attempts;
        let attempt = attempts + 1;
        let now = Instant::now();
        let lease_until = now.plus_seconds(self.lease.as_secs());
        match self
            .store
            .begin_attempt(rne, seq, attempts, now, lease_until)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(Outcome::Busy),
            Err(error) => return Err(error),
        }

        match sender.send(message, now).await {
            SendOutcome::Acknowledged => settled(
                self.store.acknowledge(rne, seq, Instant::now()).await,
                || {
                    tracing::info!(attempt, "webhook acknowledged");
                    Outcome::Acknowledged
                },
            ),
            SendOutcome::Failed(error) => {
                let now = Instant::now();
                let next = match self.retry.next_attempt(
                    notification.event.at,
                    attempt,
                    now,
                    backoff::random(),
                ) {
                    Some(at) => AfterFailure::RetryAt(at),
                    None => AfterFailure::GiveUp(now),
                };
                let stored = self
                    .store
                    .record_failure(rne, seq, attempt, &error, next)
                    .await;
                settled(stored, || match next {
                    AfterFailure::RetryAt(at) => {
                        tracing::warn!(attempt, %error, retry_at = ?at, "webhook attempt failed");
                        Outcome::Retrying(at)
                    }
                    AfterFailure::GiveUp(_) => {
                        tracing::error!(attempt, %error, "webhook given up: retry window closed");
                        Outcome::GivenUp
                    }
                })
            }
        }
    }

    /// The local server's worker: a round every `period`, forever.
    pub async fn run(self, period: Duration, batch: usize) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.deliver_due(batch).await {
                Ok(round) if !round.is_empty() => tracing::debug!(?round, "notification round"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "notification round failed: store"),
            }
        }
    }
}

/// The outcome of a conditional write: `done` when it applied, `Busy` when another worker
/// changed the notification first.
fn settled(
    result: Result<(), StoreError>,
    done: impl FnOnce() -> Outcome,
) -> Result<Outcome, StoreError> {
    match result {
        Ok(()) => Ok(done()),
        Err(StoreError::Conflict) => Ok(Outcome::Busy),
        Err(error) => Err(error),
    }
}
