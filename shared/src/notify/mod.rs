//! Status notifications: every status change is sent to the Cyberlibrairie as a signed webhook
//! (Standard Webhooks), retried with backoff until acknowledged. The outbox is the store's
//! status events themselves (`ports::NotificationStore`); this module signs, sends and
//! schedules. `docs/webhooks.md` is the integrator's side of it.

pub mod backoff;
pub mod message;
mod notifier;
pub mod sender;
pub mod settings;
pub mod signature;

pub use backoff::RetryPolicy;
pub use message::{event_id, Message, STATUS_CHANGED};
pub use notifier::{Notifier, Outcome, Round};
pub use sender::{SendOutcome, WebhookSender};
pub use settings::{NotificationSettings, WebhookTarget};
pub use signature::{Signer, WebhookSecret};
