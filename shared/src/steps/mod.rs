//! The steps of the provisioning and mounting workflows: plain async functions of a JSON
//! payload, which Step Functions calls as Lambda functions (`functions/src/bin/step-*.rs`) and
//! the local executor calls in-process. Both run `infra/statemachines/*.asl.json`.
//!
//! Every step is idempotent: Step Functions and the local executor call a step at least once,
//! so a step re-reads the establishment, does what is left for its workflow run (its rne and
//! attempt), and does nothing when that is done already. A step whose run was overtaken by a
//! newer one fails with `Superseded`, which the state machines end on quietly.
//!
//! Errors carry stable names that the state machines' Retry and Catch match (the Lambda
//! `errorType`), never Rust type names: see [`names`].

mod failure;
mod jobs;
mod mounting;
mod provisioning;

pub use failure::is_snake_case;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::archive::ArchiveLimits;
use crate::config::Config;
use crate::domain::{Establishment, Instant, Rne, Transition};
use crate::ports::{EstablishmentStore, JobStore, Storage, StoreError};

/// The error names of the steps, as the state machines match them.
pub mod names {
    /// A dependency failed; the step changed nothing and may be retried.
    pub const UNAVAILABLE: &str = "Unavailable";
    /// A newer run of the workflow took over, or the establishment moved on: nothing to do.
    pub const SUPERSEDED: &str = "Superseded";
    /// The payload is not what the state machine sends: a bug, not retried.
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// An uploaded archive cannot be used; the cause is `{"reason", "detail", "file"}`.
    pub const ARCHIVE_REJECTED: &str = "ArchiveRejected";
    /// The hosting agent reported a failure (SendTaskFailure); the cause is
    /// `{"reason", "detail"}`.
    pub const JOB_FAILED: &str = "JobFailed";
    /// The agent's result is not usable (e.g. no base was mounted); the cause is
    /// `{"reason", "detail"}`.
    pub const RESULT_REJECTED: &str = "ResultRejected";
}

/// A step's failure: `name` for Retry and Catch, `message` for the execution's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct StepError {
    pub name: &'static str,
    pub message: String,
}

impl StepError {
    pub fn new(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(names::UNAVAILABLE, message)
    }

    pub fn superseded(message: impl Into<String>) -> Self {
        Self::new(names::SUPERSEDED, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(names::INVALID_INPUT, message)
    }
}

impl From<StoreError> for StepError {
    fn from(error: StoreError) -> Self {
        StepError::unavailable(error.to_string())
    }
}

/// The steps, named as their Lambda functions (`step-<name>`) and as the placeholders of the
/// state machines (`${<CamelCase>FunctionArn}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    BeginInstall,
    CreateJob,
    MarkInstalled,
    BeginMounting,
    CheckArchives,
    MarkMounted,
    RecordFailure,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::BeginInstall,
        Step::CreateJob,
        Step::MarkInstalled,
        Step::BeginMounting,
        Step::CheckArchives,
        Step::MarkMounted,
        Step::RecordFailure,
    ];

    /// `begin-install`: the local function name, and `step-begin-install` on AWS.
    pub fn name(self) -> &'static str {
        match self {
            Step::BeginInstall => "begin-install",
            Step::CreateJob => "create-job",
            Step::MarkInstalled => "mark-installed",
            Step::BeginMounting => "begin-mounting",
            Step::CheckArchives => "check-archives",
            Step::MarkMounted => "mark-mounted",
            Step::RecordFailure => "record-failure",
        }
    }

    /// `BeginInstallFunctionArn`: the DefinitionSubstitutions key of its ARN.
    pub fn placeholder(self) -> String {
        let camel: String = self
            .name()
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("{camel}FunctionArn")
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == name)
    }
}

/// Everything the steps need, built once per process (per Lambda, or in the local server).
pub struct Steps {
    pub config: Config,
    pub archive_limits: ArchiveLimits,
    pub store: Arc<dyn EstablishmentStore>,
    pub jobs: Arc<dyn JobStore>,
    pub storage: Arc<dyn Storage>,
}

impl Steps {
    /// Runs `step` on `payload`, the JSON the state machine sends it.
    pub async fn run(&self, step: Step, payload: Value) -> Result<Value, StepError> {
        let result = match step {
            Step::BeginInstall => self.begin_install(payload).await,
            Step::CreateJob => self.create_job(payload).await,
            Step::MarkInstalled => self.mark_installed(payload).await,
            Step::BeginMounting => self.begin_mounting(payload).await,
            Step::CheckArchives => self.check_archives(payload).await,
            Step::MarkMounted => self.mark_mounted(payload).await,
            Step::RecordFailure => self.record_failure(payload).await,
        };
        match &result {
            Ok(_) => tracing::info!(step = step.name(), "step done"),
            Err(error) => {
                tracing::info!(step = step.name(), error = error.name, message = %error.message, "step failed")
            }
        }
        result
    }

    /// How long the job's task waits, and how long without a sign of an agent: the values
    /// the state machines read with TimeoutSecondsPath and HeartbeatSecondsPath. The heartbeat
    /// must be shorter than the timeout, both at least a second.
    fn job_timing(&self, timeout: Duration) -> Value {
        let timeout = timeout.as_secs().max(2);
        let heartbeat = self
            .config
            .job_heartbeat_timeout
            .as_secs()
            .clamp(1, timeout - 1);
        serde_json::json!({ "timeout_seconds": timeout, "heartbeat_seconds": heartbeat })
    }

    /// Reads the establishment, asks `decide` what to do, and stores the transition it gives,
    /// deciding again on the fresh record when another writer changed it meanwhile.
    async fn change(
        &self,
        rne: &Rne,
        mut decide: impl FnMut(&Establishment, Instant) -> Result<Decision, StepError>,
    ) -> Result<(), StepError> {
        const MAX_RACES: usize = 10;
        for _ in 0..MAX_RACES {
            let establishment = self
                .store
                .get(rne)
                .await?
                .ok_or_else(|| StepError::superseded("the establishment does not exist"))?;
            match decide(&establishment, Instant::now())? {
                Decision::Done => return Ok(()),
                Decision::Superseded(why) => return Err(StepError::superseded(why)),
                Decision::Apply(transition) => {
                    match self.store.transition(rne, &transition).await {
                        Ok(()) => {
                            tracing::info!(
                                rne = %rne,
                                from = %establishment.status,
                                to = %transition.event.status,
                                "status changed"
                            );
                            return Ok(());
                        }
                        Err(StoreError::Conflict) => continue,
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
        Err(StepError::unavailable(
            "the establishment kept changing while the step ran",
        ))
    }
}

/// What a step does to the establishment it read.
enum Decision {
    /// Its work is there already (a repeated invocation): nothing to store.
    Done,
    Apply(Transition),
    /// Another run or the school moved the establishment on; says how.
    Superseded(String),
}

/// The workflow run a payload is for: `{"rne", "attempt", …}`.
struct Run {
    rne: Rne,
    attempt: u32,
}

impl Run {
    fn parse(payload: &Value) -> Result<Self, StepError> {
        let rne = payload
            .get("rne")
            .and_then(Value::as_str)
            .and_then(|rne| Rne::parse(rne).ok())
            .ok_or_else(|| StepError::invalid("`rne` must be a valid RNE"))?;
        let attempt = payload
            .get("attempt")
            .and_then(Value::as_u64)
            .and_then(|attempt| u32::try_from(attempt).ok())
            .filter(|attempt| *attempt > 0)
            .ok_or_else(|| StepError::invalid("`attempt` must be a positive integer"))?;
        tracing::Span::current().record("rne", rne.as_str());
        Ok(Self { rne, attempt })
    }
}

/// One uploaded archive of a mounting run, as the execution input lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmittedFile {
    pub id: String,
    /// The file name on the school's computer.
    pub name: String,
    /// The base it holds.
    pub base: String,
    pub size: u64,
    #[serde(default)]
    pub esidoc_export: bool,
}

fn files(payload: &Value) -> Result<Vec<SubmittedFile>, StepError> {
    let files = payload
        .get("files")
        .cloned()
        .ok_or_else(|| StepError::invalid("`files` is missing"))?;
    let files: Vec<SubmittedFile> = serde_json::from_value(files)
        .map_err(|error| StepError::invalid(format!("`files` is invalid: {error}")))?;
    if files.is_empty() {
        return Err(StepError::invalid("`files` is empty"));
    }
    Ok(files)
}

fn superseded(establishment: &Establishment) -> Decision {
    Decision::Superseded(format!(
        "the establishment is in status {} (provisioning attempt {}, mounting attempt {})",
        establishment.status, establishment.provisioning_attempt, establishment.mounting_attempt
    ))
}
