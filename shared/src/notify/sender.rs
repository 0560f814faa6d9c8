//! Sends one signed webhook over HTTPS (reqwest with rustls) and says whether the receiver
//! acknowledged it: any 2xx answer does; anything else, a redirect included, or no answer in
//! time, is a failure to retry.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};

use crate::config::ConfigError;
use crate::domain::Instant;

use super::message::Message;
use super::settings::WebhookTarget;

/// Connecting takes at most this long, within the attempt's whole timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Failure descriptions are stored and logged: kept short.
const MAX_ERROR_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Acknowledged,
    /// Why not, e.g. `HTTP 500` or `timed out`; never the URL.
    Failed(String),
}

#[derive(Debug)]
pub struct WebhookSender {
    target: WebhookTarget,
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(target: WebhookTarget, timeout: Duration) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            // A redirect is not an acknowledgement, and following one would send the signed
            // body somewhere the configuration did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ConfigError {
                name: "WEBHOOK_URL",
                problem: format!("no HTTP client: {}", error.without_url()),
            })?;
        Ok(Self { target, client })
    }

    /// Signs `message` for the instant `now` (the `webhook-timestamp` of this attempt, which a
    /// receiver compares with its clock) and sends it once.
    pub async fn send(&self, message: &Message, now: Instant) -> SendOutcome {
        let timestamp = now.unix();
        let signature = self
            .target
            .signer
            .signature(&message.id, timestamp, &message.body);
        let result = self
            .client
            .post(self.target.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                USER_AGENT,
                HeaderValue::from_static("bcdi-hosting-webhooks/1"),
            )
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => SendOutcome::Acknowledged,
            Ok(response) => SendOutcome::Failed(format!("HTTP {}", response.status().as_u16())),
            Err(error) => SendOutcome::Failed(describe(error)),
        }
    }
}

/// What went wrong, with the URL taken out (it may carry a token) and the causes appended.
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let mut text = match causes.last() {
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_owned(),
    };
    if text.chars().count() > MAX_ERROR_CHARS {
        text = text.chars().take(MAX_ERROR_CHARS).collect();
    }
    text
}
