//! The service assembled on one data directory, as `bcdi-hosting serve` runs it: the SQLite
//! store, the embedded S3 storage answering on the API's own origin, and the state machines
//! in-process. The tests that run the whole service use this very function.

use std::path::Path;
use std::sync::Arc;

use bcdi_shared::api::App;
use bcdi_shared::archive::ArchiveLimits;
use bcdi_shared::config::Config;
use bcdi_shared::steps::Steps;

use crate::sqlite::SqliteStore;
use crate::storage::EmbeddedStorage;
use crate::workflows::LocalWorkflows;

pub struct LocalService {
    pub app: App,
    pub store: Arc<SqliteStore>,
    /// Its `router()` answers the bucket's paths (`/bcdi-bases/…`) on the API's port.
    pub storage: EmbeddedStorage,
    pub workflows: Arc<LocalWorkflows>,
}

/// Opens everything under `data_dir` for a server reachable at `base`; executions left
/// running by a previous start resume.
pub async fn assemble(
    data_dir: &Path,
    base: &str,
    config: Config,
    archive_limits: ArchiveLimits,
) -> Result<LocalService, String> {
    let store = SqliteStore::open(&data_dir.join("bcdi.sqlite3")).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    let storage =
        EmbeddedStorage::open(&data_dir.join("storage"), base).map_err(|e| e.to_string())?;
    let steps = Steps {
        config: config.clone(),
        archive_limits,
        store: store.clone(),
        jobs: store.clone(),
        storage: storage.storage(),
    };
    let workflows = LocalWorkflows::open(&data_dir.join("workflows.sqlite3"), Arc::new(steps))
        .await
        .map_err(|error| format!("cannot open the workflows: {error}"))?;
    let workflows = Arc::new(workflows);
    let app = App {
        config,
        store: store.clone(),
        workflows: workflows.clone(),
        jobs: store.clone(),
        uploads: store.clone(),
        storage: storage.storage(),
    };
    Ok(LocalService {
        app,
        store,
        storage,
        workflows,
    })
}
