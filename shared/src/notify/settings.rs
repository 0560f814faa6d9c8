//! The webhook settings, read from the environment like the rest of the configuration:
//! `WEBHOOK_URL` and `WEBHOOK_SECRET` (both or neither), and the retry tuning.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;

use super::backoff::RetryPolicy;
use super::signature::Signer;

/// Where webhooks go and how they are signed. `Debug` shows only the host: a URL may carry a
/// token in its path or query, and the secret never prints.
pub struct WebhookTarget {
    pub url: reqwest::Url,
    pub signer: Signer,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("host", &self.url.host_str().unwrap_or_default())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct NotificationSettings {
    /// `None` when `WEBHOOK_URL` and `WEBHOOK_SECRET` are unset: no webhooks are sent.
    pub webhook: Option<WebhookTarget>,
    pub retry: RetryPolicy,
    /// How long one attempt may take, connection included (`WEBHOOK_TIMEOUT_SECONDS`).
    pub timeout: Duration,
}

impl NotificationSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(crate::config::var)
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    /// Error messages never quote the URL or the secret.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let webhook = match (set("WEBHOOK_URL"), set("WEBHOOK_SECRET")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(problem("WEBHOOK_SECRET", "must be set with WEBHOOK_URL"))
            }
            (None, Some(_)) => {
                return Err(problem("WEBHOOK_URL", "must be set with WEBHOOK_SECRET"))
            }
            (Some(url), Some(secret)) => Some(WebhookTarget {
                url: parse_url(&url)?,
                signer: Signer::parse(&secret)
                    .map_err(|error| problem("WEBHOOK_SECRET", &error.to_string()))?,
            }),
        };

        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            first_delay: seconds(&lookup, "WEBHOOK_RETRY_FIRST_SECONDS", defaults.first_delay)?,
            max_delay: seconds(&lookup, "WEBHOOK_RETRY_MAX_SECONDS", defaults.max_delay)?,
            give_up_after: seconds(&lookup, "WEBHOOK_GIVE_UP_SECONDS", defaults.give_up_after)?,
        };
        if retry.max_delay < retry.first_delay {
            return Err(problem(
                "WEBHOOK_RETRY_MAX_SECONDS",
                "must not be less than WEBHOOK_RETRY_FIRST_SECONDS",
            ));
        }
        let timeout = seconds(&lookup, "WEBHOOK_TIMEOUT_SECONDS", Duration::from_secs(10))?;
        if timeout.is_zero() {
            return Err(problem("WEBHOOK_TIMEOUT_SECONDS", "must be at least 1"));
        }
        Ok(Self {
            webhook,
            retry,
            timeout,
        })
    }
}

fn parse_url(input: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(input.trim())
        .map_err(|_| problem("WEBHOOK_URL", "must be an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(problem(
            "WEBHOOK_URL",
            "must be an http or https URL with a host",
        ));
    }
    Ok(url)
}

/// A duration in whole seconds, at most a year: the rule of every `*_SECONDS` setting.
fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    crate::config::seconds(lookup, name, default.as_secs())
}

fn problem(name: &'static str, problem: &str) -> ConfigError {
    ConfigError {
        name,
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn settings(vars: &[(&str, &str)]) -> Result<NotificationSettings, ConfigError> {
        NotificationSettings::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn unset_means_no_webhooks_with_the_default_policy() {
        let settings = settings(&[]).unwrap();
        assert!(settings.webhook.is_none());
        assert_eq!(settings.retry, RetryPolicy::default());
        assert_eq!(settings.timeout, Duration::from_secs(10));
    }

    #[test]
    fn url_and_secret_go_together() {
        let url = "https://cyber.example.org/hooks/bcdi";
        assert_eq!(
            settings(&[("WEBHOOK_URL", url)]).unwrap_err().name,
            "WEBHOOK_SECRET"
        );
        assert_eq!(
            settings(&[("WEBHOOK_SECRET", SECRET)]).unwrap_err().name,
            "WEBHOOK_URL"
        );
        let both = settings(&[("WEBHOOK_URL", url), ("WEBHOOK_SECRET", SECRET)]).unwrap();
        assert_eq!(both.webhook.unwrap().url.as_str(), url);
    }

    #[test]
    fn bad_values_are_named_without_being_quoted() {
        let url = "ftp://cyber.example.org/?token=hunter2";
        let error = settings(&[("WEBHOOK_URL", url), ("WEBHOOK_SECRET", SECRET)]).unwrap_err();
        assert_eq!(error.name, "WEBHOOK_URL");
        assert!(!error.to_string().contains("hunter2"));

        let secret = "whsec_hunter2";
        let url = "https://cyber.example.org/hooks";
        let error = settings(&[("WEBHOOK_URL", url), ("WEBHOOK_SECRET", secret)]).unwrap_err();
        assert_eq!(error.name, "WEBHOOK_SECRET");
        assert!(!error.to_string().contains("hunter2"));

        let error = settings(&[("WEBHOOK_RETRY_FIRST_SECONDS", "soon")]).unwrap_err();
        assert_eq!(error.name, "WEBHOOK_RETRY_FIRST_SECONDS");
        let error = settings(&[
            ("WEBHOOK_RETRY_FIRST_SECONDS", "60"),
            ("WEBHOOK_RETRY_MAX_SECONDS", "5"),
        ])
        .unwrap_err();
        assert_eq!(error.name, "WEBHOOK_RETRY_MAX_SECONDS");
        assert_eq!(
            settings(&[("WEBHOOK_TIMEOUT_SECONDS", "0")])
                .unwrap_err()
                .name,
            "WEBHOOK_TIMEOUT_SECONDS"
        );
    }

    #[test]
    fn debug_output_shows_the_host_only() {
        let url = "https://cyber.example.org/hooks?token=hunter2";
        let settings = settings(&[("WEBHOOK_URL", url), ("WEBHOOK_SECRET", SECRET)]).unwrap();
        let printed = format!("{settings:?}");
        assert!(printed.contains("cyber.example.org"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("MfKQ9r8"), "{printed}");
    }
}
