//! Configuration from the environment, read the same way in Lambda and in the local server.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::Digest;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

/// The settings of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CYBER_KEY_SHA256`: the Cyberlibrairie's key digests (two during a rotation).
    pub cyber_keys: Vec<Digest>,
    /// `OPERATOR_KEY_SHA256`: the operators' and hosting agent's key digests.
    pub operator_keys: Vec<Digest>,
    /// `ALLOWED_FRAME_ORIGINS`: origins that may frame the upload page.
    pub allowed_frame_origins: Vec<String>,
    /// `STORAGE_ORIGIN`: the origin of the presigned part URLs (the bucket's endpoint), which the
    /// upload page may send to; unset when storage is served on the API's own origin (locally).
    pub storage_origin: Option<String>,
    /// `INSTALL_ETA_SECONDS`: how long an installation is expected to take.
    pub install_eta: Duration,
    /// `MOUNT_ETA_SECONDS`: how long checking and mounting bases is expected to take.
    pub mount_eta: Duration,
    /// `INSTALL_TIMEOUT_SECONDS`: an installation not done by then ends in `E1`.
    pub install_timeout: Duration,
    /// `MOUNT_TIMEOUT_SECONDS`: a mounting not done by then ends in `E2`.
    pub mount_timeout: Duration,
    /// `JOB_HEARTBEAT_TIMEOUT_SECONDS`: a job no agent claimed or heartbeated for this long
    /// fails its step as a timeout.
    pub job_heartbeat_timeout: Duration,
    /// `JOB_LEASE_SECONDS`: how long a claim or a heartbeat holds a job for its agent.
    pub job_lease: Duration,
    /// `UPLOAD_*` and `PUBLIC_BASE_URL`: limits and lifetimes of uploads.
    pub uploads: crate::api::UploadSettings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(var)
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cyber_keys = digests(&lookup, "CYBER_KEY_SHA256")?;
        let operator_keys = digests(&lookup, "OPERATOR_KEY_SHA256")?;
        if operator_keys.iter().any(|key| cyber_keys.contains(key)) {
            // The cyber check comes first: the operators would be locked out, silently.
            return Err(ConfigError {
                name: "OPERATOR_KEY_SHA256",
                problem: "repeats a digest of CYBER_KEY_SHA256: each party needs its own key"
                    .to_owned(),
            });
        }
        Ok(Self {
            cyber_keys,
            operator_keys,
            allowed_frame_origins: list(&lookup, "ALLOWED_FRAME_ORIGINS"),
            storage_origin: list(&lookup, "STORAGE_ORIGIN").into_iter().next(),
            install_eta: seconds(&lookup, "INSTALL_ETA_SECONDS", 2 * 3600)?,
            mount_eta: seconds(&lookup, "MOUNT_ETA_SECONDS", 3600)?,
            install_timeout: seconds(&lookup, "INSTALL_TIMEOUT_SECONDS", 4 * 3600)?,
            mount_timeout: seconds(&lookup, "MOUNT_TIMEOUT_SECONDS", 4 * 3600)?,
            job_heartbeat_timeout: seconds(&lookup, "JOB_HEARTBEAT_TIMEOUT_SECONDS", 1800)?,
            job_lease: seconds(&lookup, "JOB_LEASE_SECONDS", 60)?,
            uploads: crate::api::UploadSettings::from_lookup(&lookup)?,
        })
    }
}

/// One variable of the process environment. Code that runs in Lambda reads the environment
/// only through this function: it notes each name, so that `tests/infra.rs` can start every
/// function with the environment `template.yaml` gives it and check that the template sets
/// exactly the variables the function reads.
pub fn var(name: &str) -> Option<String> {
    if let Ok(mut names) = NAMES_READ.lock() {
        names.insert(name.to_owned());
    }
    std::env::var(name).ok()
}

/// The names [`var`] was asked for since the last call, which forgets them.
pub fn take_names_read() -> BTreeSet<String> {
    NAMES_READ
        .lock()
        .map(|mut names| std::mem::take(&mut *names))
        .unwrap_or_default()
}

static NAMES_READ: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A required variable, for adapters that cannot work without it (a table name, an ARN).
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name)
        .filter(|value| !value.trim().is_empty())
        .ok_or(ConfigError {
            name,
            problem: "must be set".to_owned(),
        })
}

fn list(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Vec<String> {
    lookup(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn digests(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Vec<Digest>, ConfigError> {
    let items = list(lookup, name);
    if items.len() > 2 {
        return Err(ConfigError {
            name,
            problem: "holds at most two digests (the current key and the next one)".to_owned(),
        });
    }
    items
        .iter()
        .map(|item| {
            Digest::parse_hex(item).map_err(|error| ConfigError {
                name,
                problem: format!("entry {error}"),
            })
        })
        .collect()
}

/// The longest duration a setting may give: a year, as long as a Step Functions execution may
/// run. Beyond it, an estimate would print as a date past what the API's timestamps can say.
const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// A duration setting in whole seconds, at most [`MAX_SECONDS`]; `default` when unset.
pub(crate) fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    let Some(value) = lookup(name) else {
        return Ok(Duration::from_secs(default));
    };
    match value.trim().parse::<u64>() {
        Ok(seconds) if seconds <= MAX_SECONDS => Ok(Duration::from_secs(seconds)),
        Ok(_) => Err(ConfigError {
            name,
            problem: format!("must be at most a year ({MAX_SECONDS} seconds), not {value:?}"),
        }),
        Err(_) => Err(ConfigError {
            name,
            problem: format!("must be a whole number of seconds, not {value:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn two_digests_are_accepted_for_a_rotation() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let both = format!("{a}, {b}");
        let config = config(&[("CYBER_KEY_SHA256", &both)]).unwrap();
        assert_eq!(config.cyber_keys.len(), 2);
        assert!(config.operator_keys.is_empty());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = config(&[("OPERATOR_KEY_SHA256", "not-hex")]).unwrap_err();
        assert_eq!(error.name, "OPERATOR_KEY_SHA256");
        let error = config(&[("MOUNT_ETA_SECONDS", "ten")]).unwrap_err();
        assert_eq!(error.name, "MOUNT_ETA_SECONDS");
        let three = ["a".repeat(64), "b".repeat(64), "c".repeat(64)].join(",");
        assert!(config(&[("CYBER_KEY_SHA256", &three)]).is_err());
    }

    #[test]
    fn durations_past_a_year_are_refused() {
        let error = config(&[("INSTALL_ETA_SECONDS", "9999999999999")]).unwrap_err();
        assert_eq!(error.name, "INSTALL_ETA_SECONDS");
        assert!(config(&[("MOUNT_TIMEOUT_SECONDS", "31536000")]).is_ok());
        assert!(config(&[("MOUNT_TIMEOUT_SECONDS", "31536001")]).is_err());
    }

    #[test]
    fn one_digest_for_both_parties_is_refused() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let rotation = format!("{a},{b}");
        let error =
            config(&[("CYBER_KEY_SHA256", &rotation), ("OPERATOR_KEY_SHA256", &b)]).unwrap_err();
        assert_eq!(error.name, "OPERATOR_KEY_SHA256");
        assert!(config(&[("CYBER_KEY_SHA256", &a), ("OPERATOR_KEY_SHA256", &b)]).is_ok());
    }

    #[test]
    fn defaults_apply_when_unset() {
        let config = config(&[]).unwrap();
        assert_eq!(config.install_eta, Duration::from_secs(7200));
        assert!(config.allowed_frame_origins.is_empty());
    }
}
