//! What a webhook carries: its id, stable across retries so that the receiver can drop
//! duplicates, and its JSON body, the Standard Webhooks payload shape (`type`, `timestamp`,
//! `data`). `docs/webhooks.md` documents both for integrators.

use serde::Serialize;

use crate::domain::{Rne, Status, StatusEvent};

/// The `type` of every webhook this service sends.
pub const STATUS_CHANGED: &str = "establishment.status_changed";

/// One webhook, ready to be signed and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `webhook-id` header.
    pub id: String,
    /// The exact bytes sent and signed.
    pub body: Vec<u8>,
}

impl Message {
    /// The webhook of `event` of establishment `rne`: the same bytes at every attempt.
    pub fn status_changed(rne: &Rne, event: &StatusEvent) -> Self {
        let payload = Payload {
            kind: STATUS_CHANGED,
            timestamp: event.at.rfc3339(),
            data: Data {
                rne: rne.as_str(),
                status: event.status,
                previous_status: event.previous,
                timestamp: event.at.unix(),
                at: event.at.rfc3339(),
                seq: event.seq,
            },
        };
        Self {
            id: event_id(rne, event),
            // Serialising plain strings and numbers cannot fail.
            body: serde_json::to_vec(&payload).unwrap_or_default(),
        }
    }
}

/// `evt_<rne>_<seq>_<unix seconds of the change>`: one id per status event, kept by every
/// retry. The instant makes it unique even if an establishment whose creation was undone is
/// created again (its history then restarts at seq 1).
pub fn event_id(rne: &Rne, event: &StatusEvent) -> String {
    format!("evt_{rne}_{}_{}", event.seq, event.at.unix())
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// When the event happened (RFC 3339), as the Standard Webhooks payload shape has it.
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    rne: &'a str,
    status: Status,
    previous_status: Option<Status>,
    /// The instant of the change in Unix seconds, as in the history's events.
    timestamp: i64,
    at: String,
    /// The event's rank in the establishment's history: a receiver can tell a late retry of an
    /// older change from the latest one.
    seq: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Instant;
    use crate::notify::WebhookSecret;

    #[test]
    fn the_body_names_the_change_in_both_time_forms() {
        let rne = Rne::parse("0750655E").unwrap();
        let event = StatusEvent {
            seq: 2,
            status: Status::AwaitingBases,
            previous: Some(Status::Installing),
            at: Instant::from_unix(1764770400),
        };
        let message = Message::status_changed(&rne, &event);
        assert_eq!(message.id, "evt_0750655E_2_1764770400");
        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "establishment.status_changed",
                "timestamp": "2025-12-03T14:00:00Z",
                "data": {
                    "rne": "0750655E",
                    "status": "2",
                    "previous_status": "1",
                    "timestamp": 1764770400,
                    "at": "2025-12-03T14:00:00Z",
                    "seq": 2
                }
            })
        );
    }

    #[test]
    fn the_example_of_the_integration_guide_is_what_is_sent() {
        // docs/webhooks.md shows this request; a receiver may test its verification with it.
        let rne = Rne::parse("0750655E").unwrap();
        let event = StatusEvent {
            seq: 2,
            status: Status::AwaitingBases,
            previous: Some(Status::Installing),
            at: Instant::from_unix(1764770400),
        };
        let message = Message::status_changed(&rne, &event);
        let body = r#"{"type":"establishment.status_changed","timestamp":"2025-12-03T14:00:00Z","data":{"rne":"0750655E","status":"2","previous_status":"1","timestamp":1764770400,"at":"2025-12-03T14:00:00Z","seq":2}}"#;
        assert_eq!(String::from_utf8(message.body.clone()).unwrap(), body);
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(&message.id, 1764770403, &message.body),
            "v1,wpLhXO9VKY3hkjAklri1RwNKDAL9SXKKz7xBgAZNfIc="
        );
        let guide = include_str!("../../../docs/webhooks.md");
        assert!(guide.contains(body));
        assert!(
            guide.contains("webhook-signature: v1,wpLhXO9VKY3hkjAklri1RwNKDAL9SXKKz7xBgAZNfIc=")
        );
    }

    #[test]
    fn the_first_event_has_no_previous_status_and_each_event_its_own_id() {
        let rne = Rne::parse("0750655E").unwrap();
        let first = StatusEvent {
            seq: 1,
            status: Status::Installing,
            previous: None,
            at: Instant::from_unix(1764763200),
        };
        let message = Message::status_changed(&rne, &first);
        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(body["data"]["previous_status"], serde_json::Value::Null);
        assert_eq!(message, Message::status_changed(&rne, &first));

        let second = StatusEvent {
            seq: 2,
            status: Status::InstallFailed,
            previous: Some(Status::Installing),
            at: first.at,
        };
        assert_ne!(Message::status_changed(&rne, &second).id, message.id);
    }
}
