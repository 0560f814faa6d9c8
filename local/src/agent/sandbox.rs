//! The sandbox agent of `bcdi-hosting serve` (`SANDBOX_AGENT=on`, the default): the same agent,
//! in-process, with built-in commands instead of the operator's. An install prepares
//! `DATA_DIR/sandbox/<RNE>/` and starts a small TCP listener on `127.0.0.1` standing for the
//! BCDI server; a mount checks that each extracted base has its `NOTICES.DAT` and reports that
//! listener. So a laptop goes from `1` to `4` on real archives in seconds, with no shell.
//!
//! The listener answers every connection with a short HTTP page (so a browser or `curl` shows
//! something); it is also what `client_download_url` points at: there is no BCDI client to
//! download on a laptop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bcdi_shared::archive::{ArchiveLimits, NOTICES_DAT};
use bcdi_shared::domain::{Digest, Secret};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Agent, AgentConfig, Commands, Failure, InstallJob, MountJob, PreparedBase};

/// The built-in commands, working in `root` (`DATA_DIR/sandbox`).
pub struct Sandbox {
    root: PathBuf,
    servers: Mutex<HashMap<String, Server>>,
}

struct Server {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            servers: Mutex::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts again the servers of establishments installed before a restart, on their port
    /// when it is still free.
    pub async fn restore(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let rne = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("server.json").is_file() {
                if let Err(error) = self.server(&rne).await {
                    tracing::warn!(rne = %rne, error = %error, "sandbox server not restored");
                }
            }
        }
    }

    /// The port of `rne`'s stand-in server, started if it is not running.
    async fn server(&self, rne: &str) -> Result<u16, String> {
        if let Some(server) = self.lock().get(rne) {
            if !server.task.is_finished() {
                return Ok(server.port);
            }
        }
        let recorded = read_port(&self.root.join(rne).join("server.json"));
        let listener = match recorded {
            Some(port) => match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
                Ok(listener) => listener,
                Err(_) => bind_any().await?,
            },
            None => bind_any().await?,
        };
        let port = listener
            .local_addr()
            .map_err(|error| format!("no local address: {error}"))?
            .port();
        let task = tokio::spawn(answer(listener, rne.to_owned()));
        let previous = self.lock().insert(rne.to_owned(), Server { port, task });
        if let Some(previous) = previous {
            previous.task.abort();
        }
        tracing::info!(rne = %rne, port, "sandbox BCDI server listening");
        Ok(port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Server>> {
        // A panic while holding the map leaves it usable: it only maps names to ports.
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for server in self.lock().values() {
            server.task.abort();
        }
    }
}

async fn bind_any() -> Result<TcpListener, String> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|error| format!("cannot listen on 127.0.0.1: {error}"))
}

fn read_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    u16::try_from(value.get("port")?.as_u64()?).ok()
}

/// Answers every connection with a one-page HTTP response naming the establishment.
async fn answer(listener: TcpListener, rne: String) {
    let page = format!(
        "Serveur BCDI de démonstration (bac à sable) de l'établissement {rne}.\n\
         Aucun client BCDI n'est fourni par le serveur local.\n"
    );
    let response: Arc<[u8]> = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{page}",
        page.len()
    )
    .into_bytes()
    .into();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let response = Arc::clone(&response);
        tokio::spawn(async move {
            let mut request = [0u8; 4096];
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut request))
                    .await;
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        });
    }
}

fn failure(detail: String) -> Failure {
    Failure::new("sandbox_failed", detail)
}

fn write_json(path: &Path, value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text)
        .map_err(|error| failure(format!("cannot write {}: {error}", path.display())))
}

#[async_trait]
impl Commands for Sandbox {
    fn kinds(&self) -> Vec<&'static str> {
        vec!["install", "mount"]
    }

    async fn install(&self, job: &InstallJob) -> Result<Value, Failure> {
        let dir = &job.work_dir;
        std::fs::create_dir_all(dir.join("bases"))
            .map_err(|error| failure(format!("cannot create {}: {error}", dir.display())))?;
        let port = self.server(job.rne.as_str()).await.map_err(failure)?;
        // What a real install would configure; never the licence itself.
        write_json(
            &dir.join("server.json"),
            &json!({
                "rne": job.rne,
                "version": job.version,
                "agricole": job.agricole,
                "host": "127.0.0.1",
                "port": port,
                "installed_at": jiff::Timestamp::now().to_string(),
            }),
        )?;
        Ok(json!({ "host": "127.0.0.1", "port": port }))
    }

    async fn mount(&self, job: &MountJob, bases: &[PreparedBase]) -> Result<Value, Failure> {
        let port = self.server(job.rne.as_str()).await.map_err(failure)?;
        let states: Vec<Value> = bases
            .iter()
            .map(|base| {
                // The agent extracted the folder holding NOTICES.DAT: it must be at the top.
                let has_notices = std::fs::read_dir(&base.dir)
                    .map(|entries| {
                        entries.flatten().any(|entry| {
                            entry
                                .file_name()
                                .to_string_lossy()
                                .eq_ignore_ascii_case(NOTICES_DAT)
                                && entry.path().is_file()
                        })
                    })
                    .unwrap_or(false);
                if has_notices {
                    json!({ "name": base.name, "state": "INSTALLED", "detail": null })
                } else {
                    json!({
                        "name": base.name,
                        "state": "ERROR",
                        "detail": "NOTICES.DAT is missing from the extracted base.",
                    })
                }
            })
            .collect();
        write_json(
            &job.work_dir.join("mounted.json"),
            &json!({
                "bases": super::bases_json(bases),
                "states": states,
                "mounted_at": jiff::Timestamp::now().to_string(),
            }),
        )?;
        Ok(json!({
            "connection": {
                "host": "127.0.0.1",
                "port": port,
                "client_download_url": format!("http://127.0.0.1:{port}/client"),
            },
            "bases": states,
        }))
    }
}

/// `SANDBOX_AGENT`: `on` (the default) or `off`.
pub fn enabled_from_env() -> Result<bool, String> {
    match std::env::var("SANDBOX_AGENT") {
        Err(_) => Ok(true),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" | "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(format!("SANDBOX_AGENT must be on or off, not {value:?}")),
        },
    }
}

/// The in-process agent of `serve`, before it is started. It has a key of its own, made for
/// this process and never shown: the server accepts it as an operator key through its digest,
/// whether the operator key is a development key or a configured digest.
pub struct SandboxAgent {
    key: Secret,
    data_dir: PathBuf,
}

impl SandboxAgent {
    /// The sandbox agent when `SANDBOX_AGENT` is on.
    pub fn from_env(data_dir: &Path) -> Result<Option<Self>, String> {
        Ok(enabled_from_env()?.then(|| Self {
            key: Secret::generate("bcdi_sandbox_agent"),
            data_dir: data_dir.to_owned(),
        }))
    }

    /// The digest to add to the configured operator keys.
    pub fn key_digest(&self) -> Digest {
        self.key.digest()
    }

    /// Starts it against `api` (the local server, listening already).
    pub fn spawn(self, api: &str) -> Result<tokio::task::JoinHandle<()>, String> {
        let sandbox = Arc::new(Sandbox::new(self.data_dir.join("sandbox")));
        let config = AgentConfig {
            api: api.to_owned(),
            operator_key: self.key,
            work_dir: sandbox.root().to_owned(),
            limits: ArchiveLimits::from_env().map_err(|error| error.to_string())?,
            wait_seconds: super::DEFAULT_WAIT_SECONDS,
            concurrency: 2,
        };
        let agent = Arc::new(Agent::new(config, sandbox.clone())?);
        Ok(tokio::spawn(async move {
            sandbox.restore().await;
            if let Err(error) = agent.run().await {
                tracing::error!(error = %error, "sandbox agent stopped");
            }
        }))
    }
}

/// `signal`, which also stops the sandbox agent: its long-polling claim would otherwise hold
/// the server's graceful shutdown for up to its whole wait.
pub async fn stopping_agent(
    signal: impl std::future::Future<Output = ()>,
    agent: Option<tokio::task::JoinHandle<()>>,
) {
    signal.await;
    if let Some(agent) = agent {
        agent.abort();
    }
}
