//! Jobs: the work a workflow hands to the hosting agent (install a server, mount bases), kept
//! with the workflow's task token until an agent claims it, works on it under a lease, and
//! reports its outcome.
//!
//! A job is named by its workflow run (`0750655E-install-2`), so that a step invoked twice
//! stores it once. Each claim gives it a new lease id: the calls of an agent whose lease lapsed
//! and whose job was handed to another agent carry an old lease id and are refused.

use async_trait::async_trait;
use serde_json::Value;

use super::StoreError;
use crate::domain::{Instant, ParseError, Rne};

/// What the agent is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Install,
    Mount,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::Install, JobKind::Mount];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Install => "install",
            JobKind::Mount => "mount",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "install" => Ok(JobKind::Install),
            "mount" => Ok(JobKind::Mount),
            _ => Err(ParseError::new("must be \"install\" or \"mount\"")),
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for an agent.
    Queued,
    /// An agent works on it until its lease expires; then it can be claimed again.
    Leased,
    Succeeded,
    Failed,
    /// Its workflow stopped waiting (a timeout, a failure elsewhere): no agent may finish it.
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        [
            JobState::Queued,
            JobState::Leased,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == input)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// One agent's hold on a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Random, new at each claim.
    pub id: String,
    pub expires_at: Instant,
}

impl Lease {
    /// A lease with a new random id, until `expires_at`.
    pub fn new(expires_at: Instant) -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's CSPRNG is available");
        Self {
            id: hex::encode(bytes),
            expires_at,
        }
    }
}

/// A job as a workflow step creates it.
#[derive(Clone, PartialEq)]
pub struct NewJob {
    /// The job's name, fixed by its workflow run: see [`job_key`].
    pub key: String,
    pub kind: JobKind,
    pub rne: Rne,
    /// What the agent gets, less what is computed at claim time (download URLs). May hold
    /// licence secrets: never logged.
    pub input: Value,
    /// The workflow's task token: given back to the workflow engine, never to the agent.
    pub task_token: String,
    pub created_at: Instant,
}

/// A stored job.
#[derive(Clone, PartialEq)]
pub struct Job {
    pub key: String,
    pub kind: JobKind,
    pub rne: Rne,
    pub input: Value,
    pub task_token: String,
    pub state: JobState,
    /// The current or last lease; `None` until first claimed.
    pub lease: Option<Lease>,
    pub created_at: Instant,
    pub finished_at: Option<Instant>,
}

/// Neither a job's input (licence secrets) nor its task token are printed.
impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("rne", &self.rne)
            .field("state", &self.state)
            .field("lease", &self.lease)
            .field("created_at", &self.created_at)
            .field("finished_at", &self.finished_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewJob")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("rne", &self.rne)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// Whether `lease_id` is the job's live lease at `now`: the only case in which an agent may
    /// heartbeat, succeed or fail it.
    pub fn is_leased_by(&self, lease_id: &str, now: Instant) -> bool {
        self.state == JobState::Leased
            && self
                .lease
                .as_ref()
                .is_some_and(|lease| lease.id == lease_id && lease.expires_at > now)
    }
}

/// The name of the job of one workflow run: `<rne>-<kind>-<attempt>`.
pub fn job_key(rne: &Rne, kind: JobKind, attempt: u32) -> String {
    format!("{rne}-{}-{attempt}", kind.as_str())
}

/// How long a finished job is kept, for the operators' inquiries; then the store forgets it
/// (DynamoDB's TTL on `ttl`, a purge in SQLite).
pub const FINISHED_JOB_RETENTION_SECONDS: u64 = 30 * 24 * 3600;

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores `job`, waiting for an agent. If a job of that key exists with the same task
    /// token, nothing changes (the step ran twice); with another token (the workflow retried
    /// the step), it takes the new token and input and waits for an agent again.
    async fn enqueue(&self, job: &NewJob) -> Result<(), StoreError>;

    async fn get(&self, key: &str) -> Result<Option<Job>, StoreError>;

    /// Leases to the caller the job of one of `kinds` that has waited longest: queued, or
    /// leased under a lease expired at `now`. `None` when there is none.
    async fn claim(
        &self,
        kinds: &[JobKind],
        lease: &Lease,
        now: Instant,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends the lease `lease_id` to `expires_at`, if the job is still leased with it and
    /// the lease is live at `now`; `Conflict` otherwise.
    async fn renew(
        &self,
        key: &str,
        lease_id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> Result<(), StoreError>;

    /// Ends the job leased with `lease_id` as `state` (`Succeeded` or `Failed`); `Conflict` if
    /// it is not leased with it (even expired: the outcome was already delivered).
    async fn finish(
        &self,
        key: &str,
        lease_id: &str,
        state: JobState,
        at: Instant,
    ) -> Result<(), StoreError>;

    /// Cancels the job unless it is finished; an absent or finished job is left as it is.
    async fn cancel(&self, key: &str, at: Instant) -> Result<(), StoreError>;
}
