//! `record-failure`: where both state machines go when a step fails for good. It stores `E1`
//! or `E2` with a stable reason and an English detail, and cancels the run's job so that no
//! agent works on, or reports, a task nobody waits for any more.

use serde_json::{json, Value};

use super::{names, superseded, Decision, Run, StepError, Steps};
use crate::domain::{Base, BaseState, Failure, Instant, Status};
use crate::ports::jobs::job_key;
use crate::ports::JobKind;

/// Step Functions' names for a task that ran past TimeoutSeconds or HeartbeatSeconds.
const TIMEOUT: &str = "States.Timeout";
const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";

/// A `detail` longer than this is cut: it is shown to operators, not a log.
const MAX_DETAIL_CHARS: usize = 1000;

impl Steps {
    /// `record-failure` `{"workflow": "provisioning" | "mounting", "rne", "attempt",
    /// "error": {"Error", "Cause"}}`: `1` → `E1` or `3` → `E2` for this attempt; nothing when
    /// the establishment is past it already.
    pub(super) async fn record_failure(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let (kind, from, to) = match payload.get("workflow").and_then(Value::as_str) {
            Some("provisioning") => (JobKind::Install, Status::Installing, Status::InstallFailed),
            Some("mounting") => (JobKind::Mount, Status::Mounting, Status::MountFailed),
            _ => return Err(StepError::invalid("`workflow` is provisioning or mounting")),
        };
        let error = payload.get("error").unwrap_or(&Value::Null);
        let name = error.get("Error").and_then(Value::as_str).unwrap_or("");
        let cause = error.get("Cause").and_then(Value::as_str).unwrap_or("");
        let explained = explain(kind, name, cause, self.timeout(kind));

        self.jobs
            .cancel(&job_key(&run.rne, kind, run.attempt), Instant::now())
            .await?;

        let outcome = self
            .change(&run.rne, |establishment, now| {
                let attempt = match kind {
                    JobKind::Install => establishment.provisioning_attempt,
                    JobKind::Mount => establishment.mounting_attempt,
                };
                if attempt != run.attempt {
                    return Ok(superseded(establishment));
                }
                if establishment.status == to {
                    return Ok(Decision::Done);
                }
                if establishment.status != from {
                    return Ok(superseded(establishment));
                }
                let mut transition = establishment
                    .transition(to, now)
                    .map_err(|error| StepError::superseded(error.to_string()))?;
                transition.failure = Some(explained.failure.clone());
                if let Some(bases) = explained.bases(&establishment.bases) {
                    transition.bases = bases;
                }
                Ok(Decision::Apply(transition))
            })
            .await;
        match outcome {
            Ok(()) => {
                tracing::info!(rne = %run.rne, to = %to, reason = %explained.failure.reason, "failure recorded");
            }
            // Nothing to record: the run was overtaken, its failure no longer matters.
            Err(error) if error.name == names::SUPERSEDED => {}
            Err(error) => return Err(error),
        }
        Ok(json!({ "reason": explained.failure.reason }))
    }

    fn timeout(&self, kind: JobKind) -> u64 {
        match kind {
            JobKind::Install => self.config.install_timeout.as_secs(),
            JobKind::Mount => self.config.mount_timeout.as_secs(),
        }
    }
}

/// A failure as stored, and what it says about the bases.
struct Explained {
    failure: Failure,
    /// The archive at fault, for an `ArchiveRejected`.
    file: Option<String>,
    /// Every base's state as the agent reported it, for a `ResultRejected`.
    reported: Option<Vec<Base>>,
}

impl Explained {
    /// The bases with the failure written into them, if it concerns them.
    fn bases(&self, current: &[Base]) -> Option<Vec<Base>> {
        if let Some(reported) = &self.reported {
            return Some(reported.clone());
        }
        let file = self.file.as_ref()?;
        Some(
            current
                .iter()
                .cloned()
                .map(|mut base| {
                    if &base.id == file {
                        base.state = BaseState::Error;
                        base.detail = Some(self.failure.detail.clone());
                    }
                    base
                })
                .collect(),
        )
    }
}

/// The reason and detail of a step's error, by its name.
fn explain(kind: JobKind, name: &str, cause: &str, timeout: u64) -> Explained {
    let what = match kind {
        JobKind::Install => "installation",
        JobKind::Mount => "mounting",
    };
    let structured: Option<Value> = serde_json::from_str(cause).ok();
    let field = |name: &str| {
        structured
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let plain = |reason: &str, detail: String| Explained {
        failure: Failure {
            reason: reason.to_owned(),
            detail: cut(&detail),
        },
        file: None,
        reported: None,
    };
    match name {
        TIMEOUT => plain(
            &format!("{}_timeout", kind.as_str()),
            format!("The {what} did not finish within {timeout} seconds."),
        ),
        HEARTBEAT_TIMEOUT => plain(
            &format!("{}_timeout", kind.as_str()),
            format!("No hosting agent worked on the {what} for too long."),
        ),
        names::JOB_FAILED | names::ARCHIVE_REJECTED | names::RESULT_REJECTED => {
            let reason = field("reason")
                .filter(|reason| is_snake_case(reason))
                .unwrap_or_else(|| format!("{}_failed", kind.as_str()));
            let detail = field("detail").unwrap_or_default();
            let reported = structured
                .as_ref()
                .and_then(|value| value.get("bases"))
                .and_then(|bases| serde_json::from_value(bases.clone()).ok());
            Explained {
                failure: Failure {
                    reason,
                    detail: cut(&detail),
                },
                file: field("file"),
                reported,
            }
        }
        _ => plain(
            &format!("{}_error", kind.as_str()),
            format!("The {what} stopped on an internal error ({name}): {cause}"),
        ),
    }
}

/// The agent API accepts only such reasons; this guards against anything else.
pub fn is_snake_case(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_name_the_workflow() {
        let explained = explain(JobKind::Install, TIMEOUT, "", 60);
        assert_eq!(explained.failure.reason, "install_timeout");
        let explained = explain(JobKind::Mount, HEARTBEAT_TIMEOUT, "", 60);
        assert_eq!(explained.failure.reason, "mount_timeout");
    }

    #[test]
    fn agent_reasons_are_kept_and_bad_ones_replaced() {
        let cause = json!({"reason": "disk_full", "detail": "No space left."}).to_string();
        let explained = explain(JobKind::Install, names::JOB_FAILED, &cause, 60);
        assert_eq!(explained.failure.reason, "disk_full");
        assert_eq!(explained.failure.detail, "No space left.");
        let cause = json!({"reason": "Not Snake", "detail": "x"}).to_string();
        let explained = explain(JobKind::Mount, names::JOB_FAILED, &cause, 60);
        assert_eq!(explained.failure.reason, "mount_failed");
    }

    #[test]
    fn a_rejected_archive_marks_its_base() {
        let cause = json!({"reason": "missing_notices_dat", "detail": "data.zip: no NOTICES.DAT", "file": "f2"})
            .to_string();
        let explained = explain(JobKind::Mount, names::ARCHIVE_REJECTED, &cause, 60);
        let base = |id: &str| Base {
            id: id.to_owned(),
            name: id.to_owned(),
            state: BaseState::Uploaded,
            size: 1,
            esidoc_export: false,
            detail: None,
        };
        let bases = explained.bases(&[base("f1"), base("f2")]).expect("bases");
        assert_eq!(bases[0].state, BaseState::Uploaded);
        assert_eq!(bases[1].state, BaseState::Error);
        assert_eq!(bases[1].detail.as_deref(), Some("data.zip: no NOTICES.DAT"));
    }
}
