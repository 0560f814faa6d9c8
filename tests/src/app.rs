//! The service on a random loopback port, as `bcdi-hosting serve` runs it, with doubles for the
//! ports a test needs to watch or break.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bcdi_hosting::server;
use bcdi_hosting::sqlite::SqliteStore;
use bcdi_hosting::storage::EmbeddedStorage;
use bcdi_shared::api::App;
use bcdi_shared::config::Config;
use bcdi_shared::domain::Secret;
use bcdi_shared::ports::{
    EstablishmentStore, Started, Storage, TaskTokenError, UploadStore, WorkflowError, WorkflowRun,
    Workflows,
};
use serde_json::{json, Value};

/// Real codes from public directories (domain.md).
pub const RNES: [&str; 12] = [
    "0750655E", "0750654D", "0160010Z", "0752526N", "0752538B", "6200001G", "6200002H", "7200009X",
    "7200021K", "9710002A", "9710003B", "9740787M",
];

/// Workflows that record every start and can be told to fail.
#[derive(Default)]
pub struct RecordingWorkflows {
    calls: Mutex<Vec<WorkflowRun>>,
    inputs: Mutex<Vec<Value>>,
    fail: AtomicBool,
    /// Names of the runs that have ended: starting one of them again starts nothing.
    ended: Mutex<HashSet<String>>,
}

impl RecordingWorkflows {
    pub fn calls(&self) -> Vec<WorkflowRun> {
        self.calls.lock().unwrap().clone()
    }

    /// The input of every start, in order.
    pub fn inputs(&self) -> Vec<Value> {
        self.inputs.lock().unwrap().clone()
    }

    /// Distinct runs started, as Step Functions would count executions by name.
    pub fn distinct_runs(&self) -> HashSet<String> {
        self.calls().iter().map(WorkflowRun::name).collect()
    }

    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::SeqCst);
    }

    /// Every run started so far ends, e.g. its first step failed for good: as with Step
    /// Functions, its name can never start a run again.
    pub fn end_every_run(&self) {
        let names = self.distinct_runs();
        self.ended.lock().unwrap().extend(names);
    }
}

#[async_trait]
impl Workflows for RecordingWorkflows {
    async fn start(&self, run: &WorkflowRun, input: Value) -> Result<Started, WorkflowError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(WorkflowError("injected failure".into()));
        }
        self.calls.lock().unwrap().push(run.clone());
        self.inputs.lock().unwrap().push(input);
        if self.ended.lock().unwrap().contains(&run.name()) {
            return Ok(Started::Ended);
        }
        Ok(Started::Running)
    }

    // No execution runs here, so no task waits on a token.
    async fn send_task_success(&self, _token: &str, _output: &Value) -> Result<(), TaskTokenError> {
        Err(TaskTokenError::Gone)
    }

    async fn send_task_failure(
        &self,
        _token: &str,
        _error: &str,
        _cause: &str,
    ) -> Result<(), TaskTokenError> {
        Err(TaskTokenError::Gone)
    }

    async fn send_task_heartbeat(&self, _token: &str) -> Result<(), TaskTokenError> {
        Err(TaskTokenError::Gone)
    }
}

/// An `App` with known keys and recording workflows, for tests that call handlers directly.
pub struct Parts {
    pub app: App,
    pub cyber: Secret,
    pub operator: Secret,
    pub workflows: Arc<RecordingWorkflows>,
}

impl Parts {
    /// With uploads kept in an in-memory SQLite store and archives in an embedded storage
    /// server of their own. Must be called within a Tokio runtime.
    pub fn new(store: Arc<dyn EstablishmentStore>) -> Self {
        let storage = EmbeddedStorage::spawn(&fresh_dir("storage")).expect("embedded storage");
        let uploads = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        Self::with(store, uploads, storage.storage())
    }

    pub fn with(
        store: Arc<dyn EstablishmentStore>,
        uploads: Arc<dyn UploadStore>,
        storage: Arc<dyn Storage>,
    ) -> Self {
        let cyber = Secret::generate("test_cyber");
        let operator = Secret::generate("test_operator");
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.cyber_keys = vec![cyber.digest()];
        config.operator_keys = vec![operator.digest()];
        let workflows = Arc::new(RecordingWorkflows::default());
        let app = App {
            config,
            store,
            workflows: workflows.clone(),
            jobs: Arc::new(SqliteStore::in_memory().expect("in-memory SQLite")),
            uploads,
            storage,
        };
        Self {
            app,
            cyber,
            operator,
            workflows,
        }
    }

    pub fn in_memory() -> Self {
        Self::new(Arc::new(
            SqliteStore::in_memory().expect("in-memory SQLite"),
        ))
    }
}

/// A new, empty directory under the system's temporary directory, in one directory per test
/// process (`bcdi-tests/<pid>`). The first call of a process removes those of processes that
/// have ended, so test runs do not pile archives up in the temporary directory.
pub fn fresh_dir(purpose: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let root = std::env::temp_dir().join("bcdi-tests");
    SWEPT.call_once(|| remove_dirs_of_ended_processes(&root));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let dir = root.join(std::process::id().to_string()).join(format!(
        "{purpose}-{nanos}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Removes `root/<pid>` for every pid that no longer runs (Linux: no `/proc/<pid>`).
fn remove_dirs_of_ended_processes(root: &std::path::Path) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let running = std::path::Path::new("/proc").join(pid.to_string()).exists();
        if !running && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub cyber_key: String,
    pub operator_key: String,
    pub workflows: Arc<RecordingWorkflows>,
    pub store: Arc<dyn EstablishmentStore>,
    pub uploads: Arc<dyn UploadStore>,
    /// The embedded storage server, on the service's own port as `serve` runs it.
    pub storage: Arc<dyn Storage>,
}

impl TestApp {
    /// The service with an in-memory SQLite store.
    pub async fn spawn() -> Self {
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        Self::spawn_with(store.clone(), store).await
    }

    /// With `store`, and uploads in an in-memory SQLite store.
    pub async fn spawn_with_store(store: Arc<dyn EstablishmentStore>) -> Self {
        let uploads = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        Self::spawn_with(store, uploads).await
    }

    /// With `store` and `uploads`, and the embedded storage on the service's port.
    pub async fn spawn_with(
        store: Arc<dyn EstablishmentStore>,
        uploads: Arc<dyn UploadStore>,
    ) -> Self {
        let listener = server::bind(0).await.expect("a free loopback port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let storage =
            EmbeddedStorage::open(&fresh_dir("storage"), &base).expect("embedded storage");
        let Parts {
            app,
            cyber,
            operator,
            workflows,
        } = Parts::with(Arc::clone(&store), Arc::clone(&uploads), storage.storage());
        tokio::spawn(server::serve_with_storage(
            listener,
            Arc::new(app),
            storage.router(),
            std::future::pending(),
        ));
        Self {
            base,
            http: reqwest::Client::new(),
            cyber_key: cyber.expose().to_owned(),
            operator_key: operator.expose().to_owned(),
            workflows,
            store,
            uploads,
            storage: storage.storage(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        read(request.send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// Creates an establishment with the cyber key; returns its key.
    pub async fn create(&self, rne: &str) -> String {
        let (status, body) = self
            .post("/v1/establishments", Some(&self.cyber_key), &licence(rne))
            .await;
        assert_eq!(status, 200, "{body}");
        body["key"].as_str().expect("a key").to_owned()
    }
}

/// A valid creation body for `rne`.
pub fn licence(rne: &str) -> Value {
    json!({"rne": rne, "griffe": "Collège Jean Moulin", "code": "ABCDEFGH", "version": "CL"})
}

/// The status code and JSON body (null when empty or not JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("a body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
