//! `bcdi-hosting agent --api URL`: the hosting agent as a command, for the machine where BCDI
//! servers run. The operator key comes from `OPERATOR_KEY` only (never an argument: arguments
//! show in process lists, and clap would print an env value in `--help`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bcdi_shared::archive::ArchiveLimits;
use bcdi_shared::domain::Secret;

use super::{Agent, AgentConfig, ShellCommands, DEFAULT_WAIT_SECONDS};

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The API's base URL, e.g. https://api.example.org.
    #[arg(long, env = "AGENT_API")]
    pub api: String,
    /// Shell command that installs a BCDI server (see docs/agent.md).
    #[arg(long, env = "AGENT_INSTALL_COMMAND")]
    pub install_command: Option<String>,
    /// Shell command that mounts extracted bases (see docs/agent.md).
    #[arg(long, env = "AGENT_MOUNT_COMMAND")]
    pub mount_command: Option<String>,
    /// Where each establishment gets its folder, `<work dir>/<RNE>/`.
    #[arg(long, env = "AGENT_WORK_DIR", default_value = "./agent-work")]
    pub work_dir: PathBuf,
    /// A command still running after this many seconds is stopped and its job fails.
    #[arg(long, env = "AGENT_COMMAND_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub command_timeout: u64,
    /// Jobs worked on at once.
    #[arg(long, env = "AGENT_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
}

/// Runs the agent until Ctrl-C, SIGTERM, or the API refusing the key.
pub async fn run(args: AgentArgs) -> Result<(), String> {
    let key = std::env::var("OPERATOR_KEY")
        .ok()
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .ok_or("OPERATOR_KEY must hold the operator key")?;
    let commands = ShellCommands {
        install: args
            .install_command
            .filter(|command| !command.trim().is_empty()),
        mount: args
            .mount_command
            .filter(|command| !command.trim().is_empty()),
        timeout: Duration::from_secs(args.command_timeout.max(1)),
    };
    std::fs::create_dir_all(&args.work_dir).map_err(|error| {
        format!(
            "cannot create the work dir {}: {error}",
            args.work_dir.display()
        )
    })?;
    let config = AgentConfig {
        api: args.api,
        operator_key: Secret::from_presented(&key),
        work_dir: args.work_dir,
        limits: ArchiveLimits::from_env().map_err(|error| error.to_string())?,
        wait_seconds: DEFAULT_WAIT_SECONDS,
        concurrency: args.concurrency,
    };
    let agent = Arc::new(Agent::new(config, Arc::new(commands))?);
    tokio::select! {
        outcome = agent.run() => outcome,
        () = crate::server::shutdown_signal() => Ok(()),
    }
}
