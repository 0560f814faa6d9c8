//! The mounting workflow's own steps: status `3` with the submitted bases, the check of each
//! archive in storage, then `4` with the agent's connection and per-base states.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};

use super::{files, names, superseded, Decision, Run, StepError, Steps, SubmittedFile};
use crate::archive::{self, ArchiveError, StorageObject};
use crate::domain::{Base, BaseState, Connection, Status};
use crate::ports::uploads::object_key;

impl Steps {
    /// `begin-mounting` `{"rne", "attempt", "files"}`: moves `2`, `E2` or `4` to `3` for this
    /// attempt, with the submitted bases (`UPLOADED`) and a new expected time; nothing if the
    /// attempt is in `3` already (the upload API may have moved it there itself). Returns the
    /// timing of the mount job: `{"timeout_seconds", "heartbeat_seconds"}`.
    pub(super) async fn begin_mounting(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let files = files(&payload)?;
        let eta = self.config.mount_eta.as_secs();
        self.change(&run.rne, |establishment, now| {
            if establishment.mounting_attempt == run.attempt
                && establishment.status == Status::Mounting
            {
                return Ok(Decision::Done);
            }
            if establishment.mounting_attempt < run.attempt
                && establishment.status.accepts_uploads()
            {
                let mut transition = establishment
                    .transition(Status::Mounting, now)
                    .map_err(|error| StepError::superseded(error.to_string()))?;
                transition.next_step_at = Some(now.plus_seconds(eta));
                transition.mounting_attempt = run.attempt;
                transition.bases = files.iter().map(uploaded).collect();
                return Ok(Decision::Apply(transition));
            }
            Ok(superseded(establishment))
        })
        .await?;
        Ok(self.job_timing(self.config.mount_timeout))
    }

    /// `check-archives` `{"rne", "files"}`: checks each archive in storage by ranged reads of
    /// its central directory. The first unusable one fails the step with `ArchiveRejected` and
    /// the cause `{"reason", "detail", "file"}`; storage trouble is `Unavailable`.
    pub(super) async fn check_archives(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let files = files(&payload)?;

        let mut seen = HashSet::new();
        for file in &files {
            if !seen.insert(file.base.to_lowercase()) {
                return Err(rejected(
                    file,
                    "duplicate_base",
                    &format!("Two archives are named as the base \"{}\".", file.base),
                ));
            }
        }

        let mut checked = Vec::new();
        for file in &files {
            let key = object_key(&run.rne, &file.id);
            let source = StorageObject {
                storage: self.storage.as_ref(),
                key: &key,
            };
            match archive::check(&source, &self.archive_limits).await {
                Ok(summary) => {
                    tracing::info!(
                        rne = %run.rne,
                        file = %file.id,
                        entries = summary.entries,
                        uncompressed_bytes = summary.uncompressed_bytes,
                        reads = summary.reads,
                        "archive accepted"
                    );
                    checked.push(json!({
                        "file": file.id,
                        "entries": summary.entries,
                        "uncompressed_bytes": summary.uncompressed_bytes,
                    }));
                }
                Err(ArchiveError::Rejected(rejection)) => {
                    tracing::info!(rne = %run.rne, file = %file.id, reason = rejection.reason(), "archive rejected");
                    return Err(rejected(file, rejection.reason(), rejection.detail()));
                }
                Err(ArchiveError::Unavailable(cause)) => {
                    return Err(StepError::unavailable(format!(
                        "reading the archive {}: {cause}",
                        file.id
                    )))
                }
            }
        }
        Ok(json!({ "checked": checked }))
    }

    /// `mark-mounted` `{"rne", "attempt", "files", "result": {"connection", "bases"}}`: `3` →
    /// `4` with the connection and each base's state. A mount in which no base could be used
    /// fails with `ResultRejected`, which the state machine records as `E2`.
    pub(super) async fn mark_mounted(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let files = files(&payload)?;
        let result = payload
            .get("result")
            .ok_or_else(|| StepError::invalid("`result` is missing"))?;
        let connection = parse_connection(result.get("connection"))?;
        let states = parse_base_states(result.get("bases"))?;

        let bases: Vec<Base> = files
            .iter()
            .map(|file| {
                let mut base = uploaded(file);
                match states.get(&file.base) {
                    Some((state, detail)) => {
                        base.state = *state;
                        base.detail = detail.clone();
                    }
                    None => {
                        base.state = BaseState::Error;
                        base.detail = Some("The hosting agent did not report this base.".into());
                    }
                }
                base
            })
            .collect();
        if !bases.iter().any(|base| base.state == BaseState::Installed) {
            let detail = bases
                .iter()
                .map(|base| {
                    format!(
                        "{}: {}",
                        base.name,
                        base.detail.as_deref().unwrap_or("could not be mounted")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(StepError::new(
                names::RESULT_REJECTED,
                json!({ "reason": "no_base_mounted", "detail": detail, "bases": bases })
                    .to_string(),
            ));
        }

        self.change(&run.rne, |establishment, now| {
            if establishment.mounting_attempt != run.attempt {
                return Ok(superseded(establishment));
            }
            match establishment.status {
                Status::Mounting => {
                    let mut transition = establishment
                        .transition(Status::Ready, now)
                        .map_err(|error| StepError::superseded(error.to_string()))?;
                    transition.connection = Some(connection.clone());
                    transition.bases = bases.clone();
                    Ok(Decision::Apply(transition))
                }
                Status::Ready => Ok(Decision::Done),
                _ => Ok(superseded(establishment)),
            }
        })
        .await?;
        Ok(json!({ "status": Status::Ready.code() }))
    }
}

/// A submitted file as a base that is not mounted yet.
pub(super) fn uploaded(file: &SubmittedFile) -> Base {
    Base {
        id: file.id.clone(),
        name: file.base.clone(),
        state: BaseState::Uploaded,
        size: file.size,
        esidoc_export: file.esidoc_export,
        detail: None,
    }
}

fn rejected(file: &SubmittedFile, reason: &str, detail: &str) -> StepError {
    StepError::new(
        names::ARCHIVE_REJECTED,
        json!({
            "reason": reason,
            "detail": format!("{} ({}): {detail}", file.name, file.base),
            "file": file.id,
        })
        .to_string(),
    )
}

/// The mount result's connection; the agent API validated it, this guards the step itself.
fn parse_connection(value: Option<&Value>) -> Result<Connection, StepError> {
    let value = value.ok_or_else(|| StepError::invalid("`result.connection` is missing"))?;
    let text = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(|| StepError::invalid(format!("`result.connection.{name}` is missing")))
    };
    let port = value
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port > 0)
        .ok_or_else(|| StepError::invalid("`result.connection.port` must be a port number"))?;
    Ok(Connection {
        host: text("host")?,
        port,
        client_download_url: text("client_download_url")?,
    })
}

/// The mount result's `bases`: each base name with its state and detail.
fn parse_base_states(
    value: Option<&Value>,
) -> Result<BTreeMap<String, (BaseState, Option<String>)>, StepError> {
    let items = value
        .and_then(Value::as_array)
        .ok_or_else(|| StepError::invalid("`result.bases` must be an array"))?;
    let mut states = BTreeMap::new();
    for item in items {
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| StepError::invalid("each base needs a `name`"))?;
        let state = item
            .get("state")
            .and_then(Value::as_str)
            .and_then(|state| BaseState::parse(state).ok())
            .filter(|state| *state != BaseState::Uploaded)
            .ok_or_else(|| StepError::invalid("each base's `state` is INSTALLED or ERROR"))?;
        let detail = item
            .get("detail")
            .and_then(Value::as_str)
            .filter(|detail| !detail.is_empty())
            .map(str::to_owned);
        states.insert(name.to_owned(), (state, detail));
    }
    Ok(states)
}
