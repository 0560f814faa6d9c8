//! Ports that fail on command, for the fault-injection tests. Each wrapper counts the calls made
//! through it, per dependency as deployed (the table, the bucket, the workflow engine), and, once
//! armed, fails the n-th call of its dependency and every later one with that port's
//! "unavailable" error: a dependency that goes down in the middle of a request and stays down
//! until it is healed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bcdi_shared::domain::{Digest, Establishment, Instant, Rne, Status, StatusEvent, Transition};
use bcdi_shared::ports::{
    EstablishmentStore, FileState, Job, JobKind, JobState, JobStore, Lease, NewJob, Page, Started,
    Storage, StorageError, StoreError, StoredPart, TaskTokenError, UploadFile, UploadSession,
    UploadStore, WorkflowError, WorkflowKind, WorkflowRun, Workflows,
};
use serde_json::Value;

/// A dependency of the service, as deployed: one DynamoDB table holds establishments, upload
/// sessions and jobs, so they fail together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// DynamoDB (SQLite locally): `EstablishmentStore`, `UploadStore`, `JobStore`.
    Table,
    /// S3 (the embedded S3 server locally): `Storage`.
    Bucket,
    /// Step Functions (the local executor): `Workflows`.
    Workflows,
}

impl Dependency {
    pub const ALL: [Dependency; 3] = [Dependency::Table, Dependency::Bucket, Dependency::Workflows];
}

/// The switchboard: counts calls per dependency, and fails them from the armed one on.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    calls: BTreeMap<Dependency, usize>,
    /// Calls made, in order, for messages: `Table.get`, `Bucket.complete_multipart`…
    trace: Vec<String>,
    /// Each armed dependency, with the call from which it fails.
    armed: BTreeMap<Dependency, usize>,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// From now on, `dependency` fails its `from_call`-th call (counting from 0, from the last
    /// [`Self::reset`]) and every later one. Several dependencies may be armed at once.
    pub fn arm(&self, dependency: Dependency, from_call: usize) {
        self.state
            .lock()
            .unwrap()
            .armed
            .insert(dependency, from_call);
    }

    /// Every dependency answers again.
    pub fn heal(&self) {
        self.state.lock().unwrap().armed.clear();
    }

    /// Forgets the calls counted so far (not the armed fault).
    pub fn reset(&self) {
        let mut state = self.state.lock().unwrap();
        state.calls.clear();
        state.trace.clear();
    }

    /// Calls per dependency since the last reset.
    pub fn calls(&self, dependency: Dependency) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(&dependency)
            .copied()
            .unwrap_or(0)
    }

    /// The calls since the last reset, in order.
    pub fn trace(&self) -> Vec<String> {
        self.state.lock().unwrap().trace.clone()
    }

    /// Counts a call; whether it must fail.
    fn fails(&self, dependency: Dependency, method: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        let count = state.calls.entry(dependency).or_default();
        let index = *count;
        *count += 1;
        let fails = state
            .armed
            .get(&dependency)
            .is_some_and(|from| index >= *from);
        state.trace.push(format!(
            "{dependency:?}.{method}{}",
            if fails { " (failed)" } else { "" }
        ));
        fails
    }

    fn store(&self, method: &str) -> Result<(), StoreError> {
        if self.fails(Dependency::Table, method) {
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        Ok(())
    }

    fn storage(&self, method: &str) -> Result<(), StorageError> {
        if self.fails(Dependency::Bucket, method) {
            return Err(StorageError::Unavailable("injected fault".into()));
        }
        Ok(())
    }
}

/// The table's ports, failing on command: wraps an establishment store, an upload store and a
/// job store (one implementation may be all three).
pub struct FaultyTable {
    pub faults: Arc<Faults>,
    pub establishments: Arc<dyn EstablishmentStore>,
    pub uploads: Arc<dyn UploadStore>,
    pub jobs: Arc<dyn JobStore>,
}

#[async_trait]
impl EstablishmentStore for FaultyTable {
    async fn get(&self, rne: &Rne) -> Result<Option<Establishment>, StoreError> {
        self.faults.store("get")?;
        self.establishments.get(rne).await
    }

    async fn find_by_key(&self, key: &Digest) -> Result<Option<Rne>, StoreError> {
        self.faults.store("find_by_key")?;
        self.establishments.find_by_key(key).await
    }

    async fn create(&self, establishment: &Establishment) -> Result<(), StoreError> {
        self.faults.store("create")?;
        self.establishments.create(establishment).await
    }

    async fn replace_key(
        &self,
        rne: &Rne,
        previous: &Digest,
        next: &Digest,
    ) -> Result<(), StoreError> {
        self.faults.store("replace_key")?;
        self.establishments.replace_key(rne, previous, next).await
    }

    async fn delete_unstarted(&self, rne: &Rne, key: &Digest) -> Result<(), StoreError> {
        self.faults.store("delete_unstarted")?;
        self.establishments.delete_unstarted(rne, key).await
    }

    async fn history(&self, rne: &Rne) -> Result<Vec<StatusEvent>, StoreError> {
        self.faults.store("history")?;
        self.establishments.history(rne).await
    }

    async fn transition(&self, rne: &Rne, transition: &Transition) -> Result<(), StoreError> {
        self.faults.store("transition")?;
        self.establishments.transition(rne, transition).await
    }

    async fn set_next_step_at(
        &self,
        rne: &Rne,
        status: Status,
        at: Instant,
    ) -> Result<(), StoreError> {
        self.faults.store("set_next_step_at")?;
        self.establishments.set_next_step_at(rne, status, at).await
    }

    async fn retried_attempt(&self, rne: &Rne, kind: WorkflowKind) -> Result<u32, StoreError> {
        self.faults.store("retried_attempt")?;
        self.establishments.retried_attempt(rne, kind).await
    }

    async fn accept_retry(
        &self,
        seen: &Establishment,
        kind: WorkflowKind,
        retried: u32,
        next: u32,
    ) -> Result<(), StoreError> {
        self.faults.store("accept_retry")?;
        self.establishments
            .accept_retry(seen, kind, retried, next)
            .await
    }

    async fn list_by_status(
        &self,
        status: Status,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.faults.store("list_by_status")?;
        self.establishments
            .list_by_status(status, cursor, limit)
            .await
    }
}

#[async_trait]
impl UploadStore for FaultyTable {
    async fn create_session(
        &self,
        token: &Digest,
        session: &UploadSession,
    ) -> Result<(), StoreError> {
        self.faults.store("create_session")?;
        self.uploads.create_session(token, session).await
    }

    async fn find_session(&self, token: &Digest) -> Result<Option<UploadSession>, StoreError> {
        self.faults.store("find_session")?;
        self.uploads.find_session(token).await
    }

    async fn files(&self, rne: &Rne) -> Result<Vec<UploadFile>, StoreError> {
        self.faults.store("files")?;
        self.uploads.files(rne).await
    }

    async fn file(&self, rne: &Rne, id: &str) -> Result<Option<UploadFile>, StoreError> {
        self.faults.store("file")?;
        self.uploads.file(rne, id).await
    }

    async fn add_file(&self, file: &UploadFile, max_files: usize) -> Result<(), StoreError> {
        self.faults.store("add_file")?;
        self.uploads.add_file(file, max_files).await
    }

    async fn replace_file(&self, old: &UploadFile, new: &UploadFile) -> Result<(), StoreError> {
        self.faults.store("replace_file")?;
        self.uploads.replace_file(old, new).await
    }

    async fn complete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.faults.store("complete_file")?;
        self.uploads.complete_file(rne, id).await
    }

    async fn reopen_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.faults.store("reopen_file")?;
        self.uploads.reopen_file(rne, id).await
    }

    async fn delete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.faults.store("delete_file")?;
        self.uploads.delete_file(rne, id).await
    }

    async fn delete_file_in(
        &self,
        rne: &Rne,
        id: &str,
        state: FileState,
    ) -> Result<(), StoreError> {
        self.faults.store("delete_file")?;
        self.uploads.delete_file_in(rne, id, state).await
    }
}

#[async_trait]
impl JobStore for FaultyTable {
    async fn enqueue(&self, job: &NewJob) -> Result<(), StoreError> {
        self.faults.store("enqueue")?;
        self.jobs.enqueue(job).await
    }

    async fn get(&self, key: &str) -> Result<Option<Job>, StoreError> {
        self.faults.store("job")?;
        self.jobs.get(key).await
    }

    async fn claim(
        &self,
        kinds: &[JobKind],
        lease: &Lease,
        now: Instant,
    ) -> Result<Option<Job>, StoreError> {
        self.faults.store("claim")?;
        self.jobs.claim(kinds, lease, now).await
    }

    async fn renew(
        &self,
        key: &str,
        lease_id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> Result<(), StoreError> {
        self.faults.store("renew")?;
        self.jobs.renew(key, lease_id, now, expires_at).await
    }

    async fn finish(
        &self,
        key: &str,
        lease_id: &str,
        state: JobState,
        at: Instant,
    ) -> Result<(), StoreError> {
        self.faults.store("finish")?;
        self.jobs.finish(key, lease_id, state, at).await
    }

    async fn cancel(&self, key: &str, at: Instant) -> Result<(), StoreError> {
        self.faults.store("cancel")?;
        self.jobs.cancel(key, at).await
    }
}

/// Storage failing on command.
pub struct FaultyStorage {
    pub faults: Arc<Faults>,
    pub inner: Arc<dyn Storage>,
}

#[async_trait]
impl Storage for FaultyStorage {
    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        self.faults.storage("create_multipart")?;
        self.inner.create_multipart(key).await
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        expires: Duration,
    ) -> Result<String, StorageError> {
        self.faults.storage("presign_part")?;
        self.inner.presign_part(key, upload_id, part, expires).await
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, StorageError> {
        self.faults.storage("list_parts")?;
        self.inner.list_parts(key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError> {
        self.faults.storage("complete_multipart")?;
        self.inner.complete_multipart(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.faults.storage("abort_multipart")?;
        self.inner.abort_multipart(key, upload_id).await
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, StorageError> {
        self.faults.storage("presign_get")?;
        self.inner.presign_get(key, expires).await
    }

    async fn size(&self, key: &str) -> Result<u64, StorageError> {
        self.faults.storage("size")?;
        self.inner.size(key).await
    }

    async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        self.faults.storage("read_range")?;
        self.inner.read_range(key, start, len).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.faults.storage("delete")?;
        self.inner.delete(key).await
    }
}

/// The workflow engine failing on command.
pub struct FaultyWorkflows {
    pub faults: Arc<Faults>,
    pub inner: Arc<dyn Workflows>,
}

#[async_trait]
impl Workflows for FaultyWorkflows {
    async fn start(&self, run: &WorkflowRun, input: Value) -> Result<Started, WorkflowError> {
        if self.faults.fails(Dependency::Workflows, "start") {
            return Err(WorkflowError("injected fault".into()));
        }
        self.inner.start(run, input).await
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), TaskTokenError> {
        if self
            .faults
            .fails(Dependency::Workflows, "send_task_success")
        {
            return Err(TaskTokenError::Unavailable("injected fault".into()));
        }
        self.inner.send_task_success(token, output).await
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TaskTokenError> {
        if self
            .faults
            .fails(Dependency::Workflows, "send_task_failure")
        {
            return Err(TaskTokenError::Unavailable("injected fault".into()));
        }
        self.inner.send_task_failure(token, error, cause).await
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        if self
            .faults
            .fails(Dependency::Workflows, "send_task_heartbeat")
        {
            return Err(TaskTokenError::Unavailable("injected fault".into()));
        }
        self.inner.send_task_heartbeat(token).await
    }
}

/// A workflow engine double: it records the runs started (by name, as Step Functions counts
/// executions) and the outcomes sent to task tokens. A token is live from [`Engine::wait_on`]
/// until an outcome is sent to it; any other token is gone, as a timed-out task's.
#[derive(Default)]
pub struct Engine {
    runs: Mutex<BTreeSet<String>>,
    live: Mutex<BTreeSet<String>>,
    outcomes: Mutex<Vec<String>>,
}

impl Engine {
    /// A task now waits on `token`.
    pub fn wait_on(&self, token: &str) {
        self.live.lock().unwrap().insert(token.to_owned());
    }

    /// The names of the runs started, sorted.
    pub fn runs(&self) -> Vec<String> {
        self.runs.lock().unwrap().iter().cloned().collect()
    }

    /// The outcomes sent, in order: `<token>: success <output>`, `<token>: failure <error>`.
    pub fn outcomes(&self) -> Vec<String> {
        self.outcomes.lock().unwrap().clone()
    }

    fn settle(&self, token: &str, outcome: String) -> Result<(), TaskTokenError> {
        if !self.live.lock().unwrap().remove(token) {
            return Err(TaskTokenError::Gone);
        }
        self.outcomes
            .lock()
            .unwrap()
            .push(format!("{token}: {outcome}"));
        Ok(())
    }
}

#[async_trait]
impl Workflows for Engine {
    async fn start(&self, run: &WorkflowRun, _input: Value) -> Result<Started, WorkflowError> {
        self.runs.lock().unwrap().insert(run.name());
        Ok(Started::Running)
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), TaskTokenError> {
        self.settle(token, format!("success {output}"))
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TaskTokenError> {
        self.settle(token, format!("failure {error} {cause}"))
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        if self.live.lock().unwrap().contains(token) {
            Ok(())
        } else {
            Err(TaskTokenError::Gone)
        }
    }
}
