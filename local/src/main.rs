//! `bcdi-hosting`: the service on a laptop (`serve`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use bcdi_hosting::agent::sandbox::{stopping_agent, SandboxAgent};
use bcdi_hosting::service::{self, LocalService};
use bcdi_hosting::storage::LOCAL_BUCKET;
use bcdi_hosting::{dev_keys, server};
use bcdi_shared::archive::ArchiveLimits;
use bcdi_shared::config::Config;
use bcdi_shared::domain::Digest;
use bcdi_shared::notify::{NotificationSettings, Notifier};
use bcdi_shared::telemetry;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "BCDI hosting service: run it locally")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole service on 127.0.0.1 with embedded storage and workflows.
    Serve {
        /// Port to listen on, on 127.0.0.1 only.
        #[arg(long, env = "PORT", default_value_t = 8080)]
        port: u16,
        /// Where the database and the development keys are kept.
        #[arg(long, env = "DATA_DIR", default_value = "./.data")]
        data_dir: PathBuf,
    },
    /// Runs the hosting agent: claims install and mount jobs from the API (docs/agent.md).
    Agent(bcdi_hosting::agent::cli::AgentArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(telemetry::Format::from_env(telemetry::Format::Text));
    let result = match cli.command {
        Command::Serve { port, data_dir } => serve(port, data_dir).await,
        Command::Agent(args) => bcdi_hosting::agent::cli::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bcdi-hosting: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(port: u16, data_dir: PathBuf) -> Result<(), String> {
    let mut config = Config::from_env().map_err(|error| error.to_string())?;
    create_private_dir(&data_dir)
        .map_err(|error| format!("cannot create DATA_DIR {}: {error}", data_dir.display()))?;
    // Bind before anything else, so that a taken port is the first thing said.
    let listener = server::bind(port).await?;

    let cyber_key = dev_key(&data_dir, "cyber", &mut config.cyber_keys)?;
    let operator_key = dev_key(&data_dir, "operator", &mut config.operator_keys)?;
    // SANDBOX_AGENT=on: the in-process agent has an operator key of its own, never shown.
    let sandbox = SandboxAgent::from_env(&data_dir)?;
    if let Some(sandbox) = &sandbox {
        config.operator_keys.push(sandbox.key_digest());
    }
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let base = format!("http://{address}");
    let archive_limits = ArchiveLimits::from_env().map_err(|error| error.to_string())?;
    let LocalService {
        app,
        store,
        storage,
        ..
    } = service::assemble(&data_dir, &base, config, archive_limits).await?;
    // Webhooks: a worker sends the due notifications every second (skips them when unset).
    let settings = NotificationSettings::from_env().map_err(|error| error.to_string())?;
    let notifier = Notifier::new(store, settings).map_err(|error| error.to_string())?;
    tokio::spawn(notifier.run(std::time::Duration::from_secs(1), 100));

    println!("BCDI hosting is listening on {base}  (Ctrl-C to stop)");
    println!("  data       {}", data_dir.display());
    println!("  API doc    {base}/v1/openapi.json");
    println!("  storage    {base}/{LOCAL_BUCKET}  (S3-compatible, path-style)");
    // Development keys only, printed because nobody else can tell the developer.
    for (name, key) in [("cyber", &cyber_key), ("operator", &operator_key)] {
        if let Some(key) = key {
            println!(
                "  {name:<10} key {}  (kept in {})",
                key.secret.expose(),
                key.path.display()
            );
        }
    }
    if let Some(key) = &cyber_key {
        println!(
            "  try        curl -H \"Authorization: Bearer $(cat {})\" {base}/v1/establishments/0750655E",
            key.path.display()
        );
    }

    let sandbox = match sandbox {
        Some(sandbox) => Some(sandbox.spawn(&base)?),
        None => None,
    };
    if sandbox.is_some() {
        let sandbox_dir = data_dir.join("sandbox");
        println!(
            "  sandbox    agent on: installs and mounts in {}",
            sandbox_dir.display()
        );
    }

    server::serve_with_storage(
        listener,
        Arc::new(app),
        storage.router(),
        stopping_agent(server::shutdown_signal(), sandbox),
    )
    .await
    .map_err(|error| format!("server stopped: {error}"))
}

/// Creates `dir` if missing, readable by this user only: it holds licences and the schools'
/// archives (personal data of pupils). An existing directory is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The development key `name` when no digest is configured for it: kept in `data_dir`.
fn dev_key(
    data_dir: &Path,
    name: &str,
    digests: &mut Vec<Digest>,
) -> Result<Option<dev_keys::DevKey>, String> {
    if !digests.is_empty() {
        return Ok(None);
    }
    let key = dev_keys::load_or_generate(data_dir, name).map_err(|error| {
        format!(
            "cannot keep the {name} key in {}: {error}",
            data_dir.display()
        )
    })?;
    digests.push(key.secret.digest());
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn a_data_dir_it_creates_is_for_its_user_only() {
        use std::os::unix::fs::PermissionsExt;

        let root = std::env::temp_dir().join(format!("bcdi-private-{}", std::process::id()));
        let dir = root.join("data");
        super::create_private_dir(&dir).expect("created");
        let mode = std::fs::metadata(&dir).expect("there").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        super::create_private_dir(&dir).expect("an existing directory is fine");
        let _ = std::fs::remove_dir_all(root);
    }
}
