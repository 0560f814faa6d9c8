//! The whole service as `bcdi-hosting serve` assembles it (SQLite, the embedded storage, the
//! local ASL executor running `infra/statemachines/*.asl.json`), on a loopback port and a data
//! directory that outlives it, driven over HTTP as the Cyberlibrairie, a school's upload page
//! and the hosting agent drive it.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bcdi_hosting::server;
use bcdi_hosting::service::{self, LocalService};
use bcdi_hosting::sqlite::SqliteStore;
use bcdi_hosting::workflows::LocalWorkflows;
use bcdi_shared::archive::ArchiveLimits;
use bcdi_shared::config::Config;
use bcdi_shared::domain::Secret;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{licence, read};

/// How long a test waits for something that should happen within seconds.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The keys of one service's life, kept across its restarts as `serve` keeps its dev keys.
pub struct Keys {
    pub cyber: String,
    pub operator: String,
}

impl Keys {
    pub fn generate() -> Self {
        Self {
            cyber: Secret::generate("test_cyber").expose().to_owned(),
            operator: Secret::generate("test_operator").expose().to_owned(),
        }
    }

    /// The defaults of every setting, with these keys' digests configured.
    pub fn config(&self) -> Config {
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.cyber_keys = vec![Secret::from_presented(&self.cyber).digest()];
        config.operator_keys = vec![Secret::from_presented(&self.operator).digest()];
        config
    }
}

/// The local server, running until [`LocalServer::stop`] or until it is dropped.
pub struct LocalServer {
    pub base: String,
    pub http: reqwest::Client,
    pub cyber: String,
    pub operator: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    workflows: Weak<LocalWorkflows>,
    /// Holds the lock of `bcdi.sqlite3` while anything (a request, an aborted execution's task)
    /// still holds it: the next start on the same directory waits for it, as a new process
    /// would for the old one's exit.
    store: Weak<SqliteStore>,
}

impl LocalServer {
    /// Starts the service on `dir` with `config` (see [`Keys::config`]); executions left
    /// running by a previous start on `dir` resume.
    pub async fn start(dir: &Path, keys: &Keys, config: Config) -> Self {
        let listener = server::bind(0).await.expect("a free loopback port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let LocalService {
            app,
            store,
            storage,
            workflows,
        } = service::assemble(dir, &base, config, ArchiveLimits::default())
            .await
            .expect("the service assembles");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_with_storage(
            listener,
            Arc::new(app),
            storage.router(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            base,
            http: reqwest::Client::new(),
            cyber: keys.cyber.clone(),
            operator: keys.operator.clone(),
            shutdown: Some(shutdown),
            task,
            workflows: Arc::downgrade(&workflows),
            store: Arc::downgrade(&store),
        }
    }

    /// Stops the server as Ctrl-C does, and waits until its executor and its store are gone, as
    /// the process would be: every execution stops where it was, with its progress in
    /// `workflows.sqlite3`, and the store's lock is free for the next start.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        drop(self.http);
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.workflows.upgrade().is_some() || self.store.upgrade().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the executor or the store outlived its server"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The workflows of the running service, for a test that starts an execution itself.
    pub fn workflows(&self) -> Arc<LocalWorkflows> {
        self.workflows.upgrade().expect("the service runs")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    /// Creates `rne` with the test licence, as the Cyberlibrairie does.
    pub async fn create(&self, rne: &str) {
        self.create_with(&licence(rne)).await;
    }

    /// Creates an establishment from `body`, a valid creation body.
    pub async fn create_with(&self, body: &Value) {
        let (status, body) = self.post("/v1/establishments", &self.cyber, body).await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn establishment(&self, rne: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/establishments/{rne}"), &self.cyber)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the establishment is in `status`, and returns it.
    pub async fn wait_for_status(&self, rne: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let establishment = self.establishment(rne).await;
            if establishment["status"] == status {
                return establishment;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{rne} never reached status {status}: {establishment}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The statuses of the establishment's history, oldest first.
    pub async fn history(&self, rne: &str) -> Vec<String> {
        let (status, body) = self
            .get(&format!("/v1/establishments/{rne}/history"), &self.cyber)
            .await;
        assert_eq!(status, 200, "{body}");
        body["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| event["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Claims a job of `kind` as an agent does, waiting up to `wait` seconds.
    pub async fn claim(&self, kind: &str, wait: u64) -> Option<Value> {
        let (status, body) = self
            .post(
                "/v1/agent/jobs/claim",
                &self.operator,
                &json!({"kinds": [kind], "wait_seconds": wait}),
            )
            .await;
        match status {
            200 => Some(body),
            204 => None,
            other => panic!("claim answered {other}: {body}"),
        }
    }

    /// Claims, polling until a job of `kind` comes (the workflow creates it shortly).
    pub async fn claim_soon(&self, kind: &str) -> Value {
        for _ in 0..6 {
            if let Some(job) = self.claim(kind, 10).await {
                return job;
            }
        }
        panic!("no {kind} job came");
    }

    /// Calls `action` (`heartbeat`, `succeed`, `fail`) on a claimed job, as its agent.
    pub async fn job_call(&self, job: &Value, action: &str, body: &Value) -> (u16, Value) {
        let id = job["id"].as_str().expect("a job id");
        self.post(
            &format!("/v1/agent/jobs/{id}/{action}"),
            &self.operator,
            body,
        )
        .await
    }

    /// Uploads `archives` (base name, file name, bytes) through the upload API as the upload
    /// page does, and submits them: the mounting workflow starts.
    pub async fn upload_and_submit(&self, rne: &str, archives: &[(&str, &str, Vec<u8>)]) {
        let (status, session) = self
            .post(
                &format!("/v1/establishments/{rne}/upload-sessions"),
                &self.cyber,
                &json!({}),
            )
            .await;
        assert_eq!(status, 201, "{session}");
        let token = session["url"]
            .as_str()
            .and_then(|url| url.split_once("#token="))
            .map(|(_, token)| token.to_owned())
            .expect("a token in the URL's fragment");

        // The school replaces what it sent before: the mounting takes every complete archive.
        let (status, listed) = self.get("/v1/upload/session", &token).await;
        assert_eq!(status, 200, "{listed}");
        for file in listed["files"].as_array().into_iter().flatten() {
            let id = file["id"].as_str().expect("a file id");
            let response = self
                .http
                .delete(self.url(&format!("/v1/upload/files/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("request sent");
            assert_eq!(response.status().as_u16(), 204);
        }

        for (base, name, bytes) in archives {
            self.upload(&token, base, name, bytes).await;
        }
        let (status, body) = self.post("/v1/upload/submit", &token, &json!({})).await;
        assert_eq!(status, 202, "{body}");
    }

    /// One archive through presigned parts, completed.
    async fn upload(&self, token: &str, base: &str, name: &str, bytes: &[u8]) {
        let (status, file) = self
            .post(
                "/v1/upload/files",
                token,
                &json!({"name": name, "base": base, "size": bytes.len()}),
            )
            .await;
        assert_eq!(status, 201, "{file}");
        let id = file["id"].as_str().expect("a file id");
        let part_size = file["part_size"].as_u64().expect("a part size") as usize;
        let chunks: Vec<&[u8]> = bytes.chunks(part_size).collect();
        let numbers: Vec<usize> = (1..=chunks.len()).collect();
        let (status, urls) = self
            .post(
                &format!("/v1/upload/files/{id}/part-urls"),
                token,
                &json!({ "parts": numbers }),
            )
            .await;
        assert_eq!(status, 200, "{urls}");
        let mut parts = Vec::new();
        for (chunk, url) in chunks.iter().zip(urls["urls"].as_array().expect("urls")) {
            let response = self
                .http
                .put(url["url"].as_str().expect("a part URL"))
                .body(chunk.to_vec())
                .send()
                .await
                .expect("part sent");
            assert!(response.status().is_success(), "{}", response.status());
            let etag = response.headers()["etag"]
                .to_str()
                .expect("an ETag")
                .to_owned();
            parts.push(json!({"part": url["part"], "etag": etag}));
        }
        let (status, body) = self
            .post(
                &format!("/v1/upload/files/{id}/complete"),
                token,
                &json!({ "parts": parts }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}
