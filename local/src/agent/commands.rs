//! What the agent runs for a job: the operator's own commands through a documented interface
//! (`docs/agent.md`): environment variables in, one JSON document on standard output, the exit
//! code for success or failure.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use super::jobs::{Failure, InstallJob, MountJob, PreparedBase};

/// Does the work of each job kind, once the agent has prepared it.
#[async_trait]
pub trait Commands: Send + Sync {
    /// The job kinds this agent claims.
    fn kinds(&self) -> Vec<&'static str>;

    /// Installs a BCDI server; `{"host", "port"}`.
    async fn install(&self, job: &InstallJob) -> Result<Value, Failure>;

    /// Mounts bases already downloaded, checked and extracted; `{"connection", "bases"}`.
    async fn mount(&self, job: &MountJob, bases: &[PreparedBase]) -> Result<Value, Failure>;
}

/// Standard output beyond this is not read: a result is a small JSON document.
const MAX_STDOUT_BYTES: u64 = 1024 * 1024;

/// Details longer than this are cut (the API accepts 2000 characters).
const MAX_DETAIL_CHARS: usize = 1500;

/// Variables of the agent's own environment a command must not inherit.
const WITHHELD: [&str; 1] = ["OPERATOR_KEY"];

/// Shell commands configured by the operator.
#[derive(Debug, Clone)]
pub struct ShellCommands {
    pub install: Option<String>,
    pub mount: Option<String>,
    /// A command still running after this is killed and its job fails.
    pub timeout: Duration,
}

#[async_trait]
impl Commands for ShellCommands {
    fn kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.install.is_some() {
            kinds.push("install");
        }
        if self.mount.is_some() {
            kinds.push("mount");
        }
        kinds
    }

    async fn install(&self, job: &InstallJob) -> Result<Value, Failure> {
        let command = self
            .install
            .as_deref()
            .ok_or_else(|| Failure::new("unsupported_job", "This agent does not install."))?;
        let env = vec![
            ("BCDI_JOB_ID", job.id.clone()),
            ("BCDI_JOB_KIND", "install".to_owned()),
            ("BCDI_RNE", job.rne.to_string()),
            ("BCDI_VERSION", job.version.clone()),
            ("BCDI_AGRICOLE", job.agricole.to_string()),
            ("BCDI_GRIFFE", job.griffe.expose().to_owned()),
            ("BCDI_CODE", job.code.expose().to_owned()),
            ("BCDI_WORK_DIR", job.work_dir.display().to_string()),
        ];
        let output = run("install", command, &env, self.timeout).await?;
        install_result(&output)
    }

    async fn mount(&self, job: &MountJob, bases: &[PreparedBase]) -> Result<Value, Failure> {
        let command = self
            .mount
            .as_deref()
            .ok_or_else(|| Failure::new("unsupported_job", "This agent does not mount."))?;
        let env = vec![
            ("BCDI_JOB_ID", job.id.clone()),
            ("BCDI_JOB_KIND", "mount".to_owned()),
            ("BCDI_RNE", job.rne.to_string()),
            ("BCDI_WORK_DIR", job.work_dir.display().to_string()),
            (
                "BCDI_BASES_DIR",
                job.work_dir.join("bases").display().to_string(),
            ),
            ("BCDI_BASES_JSON", bases_json(bases).to_string()),
        ];
        let output = run("mount", command, &env, self.timeout).await?;
        mount_result(&output)
    }
}

/// `BCDI_BASES_JSON`: what the mount command gets to know about each base.
pub fn bases_json(bases: &[PreparedBase]) -> Value {
    Value::Array(
        bases
            .iter()
            .map(|base| {
                json!({
                    "name": base.name,
                    "file": base.file,
                    "size": base.size,
                    "dir": base.dir.display().to_string(),
                    "files": base.files,
                    "uncompressed_bytes": base.uncompressed_bytes,
                })
            })
            .collect(),
    )
}

/// Runs `command` with a shell, `env` added to the agent's environment (less its key), and
/// returns its standard output if it exits with 0.
async fn run(
    kind: &str,
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<Value, Failure> {
    let mut process = shell(command);
    for name in WITHHELD {
        process.env_remove(name);
    }
    process
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // The operator's own diagnostics go where the agent's go.
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = process.spawn().map_err(|error| {
        Failure::new(
            "command_failed",
            format!("The {kind} command could not be started: {error}."),
        )
    })?;
    let stdout = child.stdout.take();

    let finished = tokio::time::timeout(timeout, async {
        let mut output = Vec::new();
        if let Some(stdout) = stdout {
            // Read while the command runs, so that it never blocks on a full pipe.
            let mut limited = stdout.take(MAX_STDOUT_BYTES);
            let _ = limited.read_to_end(&mut output).await;
        }
        let status = child.wait().await;
        (status, output)
    })
    .await;
    let (status, output) = match finished {
        Ok(finished) => finished,
        Err(_) => {
            // `kill_on_drop` ends it when `child` goes; say so now rather than later.
            return Err(Failure::new(
                "command_timeout",
                format!(
                    "The {kind} command did not finish within {} seconds and was stopped.",
                    timeout.as_secs()
                ),
            ));
        }
    };
    let status = status.map_err(|error| {
        Failure::new(
            "command_failed",
            format!("The {kind} command could not be waited for: {error}."),
        )
    })?;
    let document = last_json_document(&output);
    if status.success() {
        return document.ok_or_else(|| {
            Failure::new(
                "bad_command_output",
                format!("The {kind} command succeeded but printed no JSON object."),
            )
        });
    }
    // A command that explains its failure is believed; otherwise the exit code is all we know.
    let reported = document.as_ref().and_then(|document| {
        let reason = document.get("reason")?.as_str()?;
        is_snake_case(reason).then(|| {
            let detail = document.get("detail").and_then(Value::as_str).unwrap_or("");
            Failure::new(reason, truncate(detail))
        })
    });
    Err(reported.unwrap_or_else(|| {
        let code = status
            .code()
            .map_or_else(|| "a signal".to_owned(), |code| format!("status {code}"));
        Failure::new(
            "command_failed",
            format!("The {kind} command exited with {code}."),
        )
    }))
}

#[cfg(unix)]
fn shell(command: &str) -> tokio::process::Command {
    let mut process = tokio::process::Command::new("/bin/sh");
    process.arg("-c").arg(command);
    process
}

#[cfg(not(unix))]
fn shell(command: &str) -> tokio::process::Command {
    let mut process = tokio::process::Command::new("cmd");
    process.arg("/C").arg(command);
    process
}

/// The output as one JSON object, or else its last line that is one: commands often print
/// progress before their result.
fn last_json_document(output: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(output);
    let whole = serde_json::from_str::<Value>(text.trim()).ok();
    whole.filter(Value::is_object).or_else(|| {
        text.lines()
            .rev()
            .filter(|line| !line.trim().is_empty())
            .find_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
            .filter(Value::is_object)
    })
}

fn is_snake_case(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn truncate(detail: &str) -> String {
    detail.chars().take(MAX_DETAIL_CHARS).collect()
}

fn bad_output(kind: &str, problem: &str) -> Failure {
    Failure::new(
        "bad_command_output",
        format!("The {kind} command's result {problem}."),
    )
}

/// `{"host", "port"}` from an install command's output, nothing else.
pub fn install_result(output: &Value) -> Result<Value, Failure> {
    let host = output
        .get("host")
        .and_then(Value::as_str)
        .filter(|host| !host.is_empty())
        .ok_or_else(|| bad_output("install", "has no \"host\""))?;
    let port =
        port(output.get("port")).ok_or_else(|| bad_output("install", "has no valid \"port\""))?;
    Ok(json!({ "host": host, "port": port }))
}

/// `{"connection": {"host", "port", "client_download_url"}, "bases": [{"name", "state",
/// "detail"}]}` from a mount command's output, nothing else.
pub fn mount_result(output: &Value) -> Result<Value, Failure> {
    let connection = output
        .get("connection")
        .ok_or_else(|| bad_output("mount", "has no \"connection\""))?;
    let host = connection
        .get("host")
        .and_then(Value::as_str)
        .filter(|host| !host.is_empty())
        .ok_or_else(|| bad_output("mount", "has no \"connection.host\""))?;
    let port = port(connection.get("port"))
        .ok_or_else(|| bad_output("mount", "has no valid \"connection.port\""))?;
    let url = connection
        .get("client_download_url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_output("mount", "has no \"connection.client_download_url\""))?;
    let bases = output
        .get("bases")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_output("mount", "has no \"bases\" array"))?;
    let bases = bases
        .iter()
        .map(|base| {
            let name = base.get("name").and_then(Value::as_str);
            let state = base.get("state").and_then(Value::as_str);
            match (name, state) {
                (Some(name), Some(state @ ("INSTALLED" | "ERROR"))) => {
                    let detail = base.get("detail").and_then(Value::as_str).map(truncate);
                    Ok(json!({ "name": name, "state": state, "detail": detail }))
                }
                _ => Err(bad_output(
                    "mount",
                    "has a base without a name or with a state other than INSTALLED or ERROR",
                )),
            }
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(json!({
        "connection": { "host": host, "port": port, "client_download_url": url },
        "bases": bases,
    }))
}

fn port(value: Option<&Value>) -> Option<u16> {
    value
        .and_then(Value::as_u64)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_the_whole_output_or_its_last_json_line() {
        assert_eq!(
            last_json_document(b"{\"host\": \"h\",\n \"port\": 1}\n"),
            Some(json!({"host": "h", "port": 1}))
        );
        assert_eq!(
            last_json_document(b"installing...\n{\"host\":\"h\",\"port\":1}\n\n"),
            Some(json!({"host": "h", "port": 1}))
        );
        assert_eq!(last_json_document(b"done\n"), None);
        assert_eq!(last_json_document(b"[1, 2]"), None);
    }

    #[test]
    fn results_keep_only_the_contract_fields() {
        let install = install_result(&json!({"host": "h", "port": 8000, "extra": 1})).unwrap();
        assert_eq!(install, json!({"host": "h", "port": 8000}));
        assert!(install_result(&json!({"host": "h", "port": 70000})).is_err());
        let mount = mount_result(&json!({
            "connection": {"host": "h", "port": 1, "client_download_url": "https://x/c"},
            "bases": [{"name": "Principale", "state": "INSTALLED", "note": "x"}],
        }))
        .unwrap();
        assert_eq!(
            mount["bases"],
            json!([{"name": "Principale", "state": "INSTALLED", "detail": null}])
        );
        assert!(mount_result(&json!({"connection": {}, "bases": []})).is_err());
    }
}
