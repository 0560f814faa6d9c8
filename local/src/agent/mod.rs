//! The hosting agent (`bcdi-hosting agent`, or in-process in `serve` as the sandbox agent):
//! claims install and mount jobs from the API, keeps each lease alive with heartbeats while it
//! works, and reports the outcome. For a mount it first downloads every archive, checks it with
//! the same rules as the API, and extracts its base safely, then hands the folders to the mount
//! command. The interface of the commands is in `docs/agent.md`.

pub mod cli;
mod client;
mod commands;
mod download;
pub mod extract;
mod jobs;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bcdi_shared::archive::{self, ArchiveError, ArchiveLimits, LocalFile};
use bcdi_shared::domain::Secret;
use serde_json::Value;
use tracing::Instrument;

pub use client::{AgentClient, ClaimedJob, ClientError};
pub use commands::{bases_json, Commands, ShellCommands};
pub use jobs::{BaseToMount, Failure, InstallJob, MountJob, PreparedBase, Sensitive};

/// How long a claim waits for a job on the server (the contract allows up to 25 s).
pub const DEFAULT_WAIT_SECONDS: u64 = 20;

/// The agent's settings.
pub struct AgentConfig {
    /// The API's base URL, e.g. `https://api.example.org`.
    pub api: String,
    pub operator_key: Secret,
    /// Where each establishment gets its folder: `<work dir>/<RNE>/`.
    pub work_dir: PathBuf,
    pub limits: ArchiveLimits,
    pub wait_seconds: u64,
    /// Jobs worked on at once.
    pub concurrency: usize,
}

pub struct Agent {
    client: AgentClient,
    downloads: reqwest::Client,
    commands: Arc<dyn Commands>,
    work_dir: PathBuf,
    limits: ArchiveLimits,
    wait_seconds: u64,
    concurrency: usize,
}

/// What became of one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// No job came within the wait.
    Idle,
    /// A job was done and its outcome accepted: `Ok` for success, the failure otherwise.
    Reported(Result<(), Failure>),
    /// The job was lost on the way (its lease lapsed, or the API refused the outcome).
    Lost,
}

impl Agent {
    pub fn new(config: AgentConfig, commands: Arc<dyn Commands>) -> Result<Self, String> {
        if commands.kinds().is_empty() {
            return Err(
                "no command configured: give --install-command and/or --mount-command".to_owned(),
            );
        }
        Ok(Self {
            client: AgentClient::new(&config.api, &config.operator_key)?,
            downloads: download::client()?,
            commands,
            work_dir: config.work_dir,
            limits: config.limits,
            wait_seconds: config.wait_seconds,
            concurrency: config.concurrency.max(1),
        })
    }

    /// Claims and works on jobs until the API refuses the key (the only error returned).
    pub async fn run(self: Arc<Self>) -> Result<(), String> {
        tracing::info!(
            kinds = ?self.commands.kinds(),
            concurrency = self.concurrency,
            work_dir = %self.work_dir.display(),
            "hosting agent started"
        );
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let agent = Arc::clone(&self);
            workers.spawn(async move { agent.work_forever().await });
        }
        match workers.join_next().await {
            Some(Ok(outcome)) => outcome,
            Some(Err(error)) => Err(format!("an agent worker stopped: {error}")),
            None => Ok(()),
        }
    }

    async fn work_forever(&self) -> Result<(), String> {
        let mut backoff = Backoff::default();
        loop {
            match self.claim_and_handle().await {
                Ok(_) => backoff.reset(),
                Err(ClientError::Refused(status)) => {
                    return Err(format!(
                        "the API refused the operator key (HTTP {status}): check OPERATOR_KEY"
                    ))
                }
                Err(error) => {
                    let delay = backoff.next();
                    tracing::warn!(error = %error, retry_in_s = delay.as_secs_f32(), "claim failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Claims one job (waiting for one up to the configured time) and works on it.
    pub async fn claim_and_handle(&self) -> Result<Handled, ClientError> {
        let kinds = self.commands.kinds();
        match self.client.claim(&kinds, self.wait_seconds).await? {
            None => Ok(Handled::Idle),
            Some(job) => {
                let span =
                    tracing::info_span!("job", rne = %job.rne, kind = %job.kind, job = %job.key());
                Ok(self.handle(job).instrument(span).await)
            }
        }
    }

    /// Works on `job` while heartbeats keep its lease, then reports the outcome.
    async fn handle(&self, job: ClaimedJob) -> Handled {
        tracing::info!("job claimed");
        let started = std::time::Instant::now();
        let interval = heartbeat_interval(job.lease);

        // Heartbeats run beside the work, in this same future: whoever drops it (a lost lease,
        // a shutdown, an abort) stops both, and the command and the download die with it.
        let outcome = tokio::select! {
            outcome = self.execute(&job) => Some(outcome),
            () = heartbeats(&self.client, &job.id, interval) => None,
        };
        let Some(outcome) = outcome else {
            tracing::warn!("job abandoned: its lease was lost");
            return Handled::Lost;
        };
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(result) => match self.report_success(&job, &result).await {
                Reported::Accepted => {
                    tracing::info!(duration_s = seconds, "job succeeded");
                    Handled::Reported(Ok(()))
                }
                Reported::Refused(why) => {
                    let failure = Failure::new(
                        "invalid_result",
                        format!("The API refused the result: {why}"),
                    );
                    self.report_failure(&job, failure, seconds).await
                }
                Reported::Lost => Handled::Lost,
            },
            Err(failure) => self.report_failure(&job, failure, seconds).await,
        }
    }

    async fn report_failure(&self, job: &ClaimedJob, failure: Failure, seconds: f64) -> Handled {
        tracing::warn!(reason = %failure.reason, detail = %failure.detail, duration_s = seconds, "job failed");
        let client = &self.client;
        let outcome = retrying(|| client.fail(&job.id, &failure.reason, &failure.detail)).await;
        match outcome {
            Reported::Accepted => Handled::Reported(Err(failure)),
            _ => Handled::Lost,
        }
    }

    async fn report_success(&self, job: &ClaimedJob, result: &Value) -> Reported {
        let client = &self.client;
        retrying(|| client.succeed(&job.id, result)).await
    }

    async fn execute(&self, job: &ClaimedJob) -> Result<Value, Failure> {
        match job.kind.as_str() {
            "install" => {
                let install = InstallJob::parse(job, &self.work_dir)?;
                create_dir(&install.work_dir)?;
                self.commands.install(&install).await
            }
            "mount" => {
                let mount = MountJob::parse(job, &self.work_dir)?;
                let bases = self.prepare(&mount).await?;
                self.commands.mount(&mount, &bases).await
            }
            other => Err(Failure::new(
                "unsupported_job",
                format!("This agent does not know jobs of kind {other:?}."),
            )),
        }
    }

    /// Downloads, checks and extracts every base of `job` into `<RNE>/incoming/`, then moves
    /// them all into `<RNE>/bases/` at once: a failure leaves the bases mounted before as they
    /// were.
    async fn prepare(&self, job: &MountJob) -> Result<Vec<PreparedBase>, Failure> {
        let downloads = job.work_dir.join("downloads");
        let incoming = job.work_dir.join("incoming");
        let bases_dir = job.work_dir.join("bases");
        for dir in [&downloads, &incoming] {
            remove_dir(dir)?;
            create_dir(dir)?;
        }
        create_dir(&bases_dir)?;

        let outcome = self.prepare_in(job, &downloads, &incoming).await;
        // Archives are personal data: keep them no longer than needed, whatever happened.
        let _ = remove_dir(&downloads);
        let staged = match outcome {
            Ok(staged) => staged,
            Err(failure) => {
                let _ = remove_dir(&incoming);
                return Err(failure);
            }
        };

        let mut prepared = Vec::new();
        for (base, folder) in staged {
            let target = bases_dir.join(&folder);
            remove_dir(&target)?;
            std::fs::rename(incoming.join(&folder), &target).map_err(|error| {
                host_failure(format!(
                    "cannot move a base into {}: {error}",
                    target.display()
                ))
            })?;
            prepared.push(PreparedBase {
                dir: target,
                ..base
            });
        }
        let _ = remove_dir(&incoming);
        Ok(prepared)
    }

    async fn prepare_in(
        &self,
        job: &MountJob,
        downloads: &Path,
        incoming: &Path,
    ) -> Result<Vec<(PreparedBase, String)>, Failure> {
        let folders = folder_names(&job.bases);
        let mut staged = Vec::new();
        for (base, folder) in job.bases.iter().zip(folders) {
            let archive_path = downloads.join(format!("{folder}.zip"));
            tracing::info!(base = %base.name, bytes = base.size, "downloading archive");
            download::download(&self.downloads, &base.url, base.size, &archive_path)
                .await
                .map_err(|error| error.failure(&base.name, &base.file))?;

            let about = |failure: ArchiveError| archive_failure(failure, base);
            let scan = archive::scan(&LocalFile::new(&archive_path), &self.limits)
                .await
                .map_err(about)?;
            let target = incoming.join(&folder);
            let limits = self.limits.clone();
            let (path, scanned) = (archive_path.clone(), scan.clone());
            let extracted = tokio::task::spawn_blocking(move || {
                extract::extract(&path, &scanned, &target, &limits)
            })
            .await
            .map_err(|error| host_failure(format!("the extraction stopped: {error}")))?
            .map_err(about)?;
            let _ = std::fs::remove_file(&archive_path);
            tracing::info!(
                base = %base.name,
                files = extracted.files,
                bytes = extracted.bytes,
                skipped = extracted.skipped,
                "base extracted"
            );
            staged.push((
                PreparedBase {
                    name: base.name.clone(),
                    file: base.file.clone(),
                    size: base.size,
                    dir: incoming.join(&folder),
                    files: extracted.files,
                    uncompressed_bytes: extracted.bytes,
                },
                folder,
            ));
        }
        Ok(staged)
    }
}

/// How an outcome report went.
enum Reported {
    Accepted,
    /// 400: the API says what is wrong with it.
    Refused(String),
    /// 409 or no answer after retries: the job is not ours any more.
    Lost,
}

/// Sends an outcome, retrying network and server trouble for about a minute: the work is done
/// and worth reporting, and the lease has some time left.
async fn retrying<F, Fut>(mut send: F) -> Reported
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let mut backoff = Backoff::default();
    for _ in 0..8 {
        match send().await {
            Ok(()) => return Reported::Accepted,
            Err(ClientError::Invalid(why)) => return Reported::Refused(why),
            Err(ClientError::Gone) => {
                tracing::warn!("the API says the job is no longer ours; outcome dropped");
                return Reported::Lost;
            }
            Err(error) => {
                let delay = backoff.next();
                tracing::warn!(error = %error, retry_in_s = delay.as_secs_f32(), "outcome not sent");
                tokio::time::sleep(delay).await;
            }
        }
    }
    Reported::Lost
}

/// Renews the lease every `interval`; returns when the API says the lease is lost.
async fn heartbeats(client: &AgentClient, id: &str, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        match client.heartbeat(id).await {
            Ok(_) => tracing::debug!("heartbeat sent"),
            Err(ClientError::Gone) | Err(ClientError::Refused(_)) => return,
            // The lease may survive a missed beat; the next one tells.
            Err(error) => tracing::warn!(error = %error, "heartbeat failed"),
        }
    }
}

/// A third of the lease, so that two beats can be missed; within sane bounds.
pub fn heartbeat_interval(lease: Option<Duration>) -> Duration {
    let lease = lease.unwrap_or(Duration::from_secs(30));
    (lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Exponential backoff from half a second to half a minute.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(500) * 2u32.saturating_pow(self.failures.min(6));
        self.failures += 1;
        delay.min(Duration::from_secs(30))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A folder name for each base: its own name made safe for Linux and Windows, unique ignoring
/// case. A base name is the school's free text (`Principale`, `Manuels 2024`).
pub fn folder_names(bases: &[BaseToMount]) -> Vec<String> {
    use bcdi_shared::archive::names::{check_component, fold};
    let mut used = std::collections::HashSet::new();
    bases
        .iter()
        .enumerate()
        .map(|(index, base)| {
            let cleaned: String = base
                .name
                .chars()
                .map(|c| {
                    if c.is_control() || "<>:\"|?*/\\".contains(c) {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            let cleaned = cleaned.trim().trim_end_matches('.').to_owned();
            let mut name = if check_component(&cleaned).is_ok() && !cleaned.is_empty() {
                cleaned
            } else {
                format!("base-{}", index + 1)
            };
            let stem = name.clone();
            let mut counter = 2;
            while !used.insert(fold(&name)) {
                name = format!("{stem}-{counter}");
                counter += 1;
            }
            name
        })
        .collect()
}

fn archive_failure(error: ArchiveError, base: &BaseToMount) -> Failure {
    match error {
        ArchiveError::Rejected(rejection) => Failure::new(
            rejection.reason(),
            format!("{} ({}): {}", base.file, base.name, rejection.detail()),
        ),
        ArchiveError::Unavailable(why) => host_failure(format!(
            "{} ({}) could not be read or written on the host: {why}",
            base.file, base.name
        )),
    }
}

fn host_failure(detail: String) -> Failure {
    Failure::new("agent_storage_failed", detail)
}

fn create_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|error| host_failure(format!("cannot create {}: {error}", dir.display())))
}

fn remove_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(host_failure(format!(
            "cannot remove {}: {error}",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str) -> BaseToMount {
        BaseToMount {
            name: name.to_owned(),
            file: "data.zip".to_owned(),
            size: 1,
            url: Sensitive::new("http://x"),
        }
    }

    #[test]
    fn base_folders_are_safe_and_unique_ignoring_case() {
        let bases = [
            base("Principale"),
            base("principale"),
            base(".."),
            base("a/b:c"),
            base("CON"),
            base("Manuels 2024"),
        ];
        assert_eq!(
            folder_names(&bases),
            [
                "Principale",
                "principale-2",
                "base-3",
                "a_b_c",
                "base-5",
                "Manuels 2024"
            ]
        );
    }

    #[test]
    fn heartbeats_come_three_times_a_lease() {
        assert_eq!(
            heartbeat_interval(Some(Duration::from_secs(60))),
            Duration::from_secs(20)
        );
        assert_eq!(
            heartbeat_interval(Some(Duration::ZERO)),
            Duration::from_millis(100)
        );
        assert_eq!(heartbeat_interval(None), Duration::from_secs(10));
    }
}
