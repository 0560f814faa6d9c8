//! The hosting agent (`bcdi-hosting agent`, and the sandbox agent of `serve`) against the local
//! server as `serve` wires it — real jobs, leases, workflows and storage — and against a small
//! fake API where a test needs what the real one never hands out (an archive the API's own
//! check would have refused, a download of the wrong size).
//!
//! Every log line of this binary is captured, so that tests can say what never reaches a log.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bcdi_hosting::agent::sandbox::Sandbox;
use bcdi_hosting::agent::{Agent, AgentConfig, Commands, Handled, ShellCommands};
use bcdi_shared::archive::craft::{Archive, Entry};
use bcdi_shared::archive::ArchiveLimits;
use bcdi_shared::domain::{Instant, Secret};
use bcdi_tests::app::fresh_dir;
use bcdi_tests::service::{Keys, LocalServer, PATIENCE};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Logs

/// Everything logged by this test binary, the server's lines and the agent's.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .try_init();
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The local server, as `serve` wires it

/// The whole service on a fresh directory, with leases of `lease` seconds.
async fn start(lease: u64) -> LocalServer {
    logs();
    let keys = Keys::generate();
    let mut config = keys.config();
    config.job_lease = Duration::from_secs(lease);
    LocalServer::start(&fresh_dir("agent-service"), &keys, config).await
}

/// A creation body for `rne` with this licence.
fn licence(rne: &str, griffe: &str, code: &str) -> Value {
    json!({"rne": rne, "griffe": griffe, "code": code, "version": "CL"})
}

// ---------------------------------------------------------------------------------------------
// A fake API: hands out the jobs a test queues, serves archives, records what agents send

#[derive(Default)]
struct Fake {
    jobs: Mutex<VecDeque<Value>>,
    /// (path, body) of every agent call but claims.
    calls: Mutex<Vec<(String, Value)>>,
    files: Mutex<Vec<(String, Vec<u8>)>>,
    /// Created at the first heartbeat, for commands that wait for one.
    heartbeat_marker: Mutex<Option<PathBuf>>,
}

struct FakeApi {
    base: String,
    state: Arc<Fake>,
}

impl FakeApi {
    async fn start() -> Self {
        logs();
        let state = Arc::new(Fake::default());
        let router = axum::Router::new()
            .fallback(fake_handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, state }
    }

    fn serve_file(&self, name: &str, bytes: Vec<u8>) -> String {
        self.state
            .files
            .lock()
            .unwrap()
            .push((name.to_owned(), bytes));
        format!("{}/files/{name}", self.base)
    }

    fn queue(&self, job: Value) {
        self.state.jobs.lock().unwrap().push_back(job);
    }

    /// Queues a mount job for one archive served here, announcing `size` bytes.
    fn queue_mount(&self, id: &str, archive: Vec<u8>, size: u64) {
        let url = self.serve_file(id, archive);
        self.queue(json!({
            "id": format!("0750655E-mount-{id}.lease"),
            "kind": "mount",
            "rne": "0750655E",
            "input": {
                "rne": "0750655E",
                "bases": [{"name": "Principale", "file": "data.zip", "size": size, "url": url}],
            },
            "lease_expires_at": Instant::now().plus_seconds(60).rfc3339(),
        }));
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.state.calls.lock().unwrap().clone()
    }
}

async fn fake_handle(State(state): State<Arc<Fake>>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    if let Some(name) = path.strip_prefix("/files/") {
        let files = state.files.lock().unwrap();
        return match files.iter().find(|(file, _)| file == name) {
            Some((_, bytes)) => bytes.clone().into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if path == "/v1/agent/jobs/claim" {
        return match state.jobs.lock().unwrap().pop_front() {
            Some(job) => json_response(&job),
            None => StatusCode::NO_CONTENT.into_response(),
        };
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if path.ends_with("/heartbeat") {
        if let Some(marker) = state.heartbeat_marker.lock().unwrap().as_ref() {
            let _ = std::fs::write(marker, b"beat");
        }
    }
    state.calls.lock().unwrap().push((path, body));
    json_response(&json!({"lease_expires_at": Instant::now().plus_seconds(60).rfc3339()}))
}

fn json_response(body: &Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Agents

fn agent(api: &str, key: &str, commands: Arc<dyn Commands>, limits: ArchiveLimits) -> Agent {
    let config = AgentConfig {
        api: api.to_owned(),
        operator_key: Secret::from_presented(key),
        work_dir: fresh_dir("agent-work"),
        limits,
        wait_seconds: 5,
        concurrency: 1,
    };
    Agent::new(config, commands).expect("an agent")
}

fn shell(install: Option<&str>, mount: Option<&str>) -> Arc<dyn Commands> {
    Arc::new(ShellCommands {
        install: install.map(str::to_owned),
        mount: mount.map(str::to_owned),
        timeout: Duration::from_secs(60),
    })
}

/// Claims until a job comes, and works on it.
async fn handle_next(agent: &Agent) -> Handled {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match agent.claim_and_handle().await.expect("the API answers") {
            Handled::Idle => assert!(tokio::time::Instant::now() < deadline, "no job came"),
            handled => return handled,
        }
    }
}

fn failed_with(handled: &Handled) -> &str {
    match handled {
        Handled::Reported(Err(failure)) => &failure.reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A base as BCDI's backup writes it: a folder with NOTICES.DAT and other data files.
fn base_archive() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, records) in [
        ("NOTICES.DAT", 40_000),
        ("EXEMPLAI.DAT", 20_000),
        ("PRETS.DAT", 5_000),
    ] {
        zip.start_file(format!("data/{name}"), options).unwrap();
        for record in 0..records {
            let line = format!(
                "{record:08}|Titre {}|Auteur {}|CDI\r\n",
                record % 977,
                record % 131
            );
            zip.write_all(line.as_bytes()).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

// ---------------------------------------------------------------------------------------------
// Against the local server

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_install_job_runs_the_command_with_the_licence_and_its_result_moves_the_school_to_2() {
    // Given an establishment waiting for its installation
    let service = start(60).await;
    let griffe = format!("Collège {}", Secret::generate("griffe").expose());
    service
        .create_with(&licence("0750654D", &griffe, "SECRETCODE42"))
        .await;
    // And an install command that checks what it is given: the licence, and no operator key
    let command = r#"test "$BCDI_RNE" = 0750654D && test "$BCDI_VERSION" = CL \
        && test "$BCDI_AGRICOLE" = false && test -n "$BCDI_GRIFFE" \
        && test "$BCDI_CODE" = SECRETCODE42 && test -z "$OPERATOR_KEY" && test -d "$BCDI_WORK_DIR" \
        && printf '{"host": "bcdi-%s.example.org", "port": 8000}' "$BCDI_RNE""#;
    let agent = agent(
        &service.base,
        &service.operator,
        shell(Some(command), None),
        ArchiveLimits::default(),
    );

    // When the agent takes the job
    let handled = handle_next(&agent).await;

    // Then the command's result is accepted and the establishment is installed
    assert_eq!(handled, Handled::Reported(Ok(())));
    service.wait_for_status("0750654D", "2").await;
    // And neither the licence nor the operator key was logged
    let logs = logged();
    assert!(!logs.contains(&griffe) && !logs.contains("SECRETCODE42"));
    assert!(!logs.contains(&service.operator));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_install_command_fails_the_job_with_its_reason_and_the_school_sees_e1() {
    let service = start(60).await;
    service
        .create_with(&licence("0160010Z", "Lycée Guez de Balzac", "ABCDEFGH"))
        .await;
    let command = r#"echo 'checking the licence'; echo '{"reason": "licence_refused", "detail": "The publisher refused this licence."}'; exit 3"#;
    let agent = agent(
        &service.base,
        &service.operator,
        shell(Some(command), None),
        ArchiveLimits::default(),
    );

    let handled = handle_next(&agent).await;

    assert_eq!(failed_with(&handled), "licence_refused");
    let establishment = service.wait_for_status("0160010Z", "E1").await;
    assert_eq!(
        establishment["error"]["reason"], "licence_refused",
        "{establishment}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_failing_without_a_reason_fails_the_job_with_command_failed() {
    let service = start(60).await;
    service
        .create_with(&licence("0752526N", "Collège", "ABCDEFGH"))
        .await;
    let agent = agent(
        &service.base,
        &service.operator,
        shell(Some("exit 1"), None),
        ArchiveLimits::default(),
    );

    let handled = handle_next(&agent).await;

    assert_eq!(failed_with(&handled), "command_failed");
    let establishment = service.wait_for_status("0752526N", "E1").await;
    assert_eq!(establishment["error"]["reason"], "command_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_killed_mid_job_has_its_job_claimed_again_once_the_lease_lapses() {
    // Given a short lease, and a first agent whose command hangs
    let service = start(2).await;
    service
        .create_with(&licence("0752538B", "Collège", "ABCDEFGH"))
        .await;
    let marker = fresh_dir("agent-marker").join("started");
    let hanging = format!("touch '{}' && exec sleep 600", marker.display());
    let first = Arc::new(agent(
        &service.base,
        &service.operator,
        shell(Some(&hanging), None),
        ArchiveLimits::default(),
    ));
    let running = tokio::spawn({
        let first = Arc::clone(&first);
        async move { first.claim_and_handle().await }
    });
    wait_for_file(&marker).await;

    // When it dies mid-job: no more heartbeats, its command killed with it
    running.abort();
    let _ = running.await;

    // Then, once the lease lapses, a second agent gets the same job and finishes it
    let second = agent(
        &service.base,
        &service.operator,
        shell(
            Some(r#"printf '{"host": "127.0.0.1", "port": 8001}'"#),
            None,
        ),
        ArchiveLimits::default(),
    );
    assert_eq!(handle_next(&second).await, Handled::Reported(Ok(())));
    service.wait_for_status("0752538B", "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_keep_a_job_past_its_lease_while_the_command_works() {
    // Given leases of 2 seconds and a command that takes 5
    let service = start(2).await;
    service
        .create_with(&licence("6200001G", "Collège", "ABCDEFGH"))
        .await;
    let slow = r#"sleep 5; printf '{"host": "127.0.0.1", "port": 8002}'"#;
    let agent = agent(
        &service.base,
        &service.operator,
        shell(Some(slow), None),
        ArchiveLimits::default(),
    );

    // When it runs: without heartbeats the lease would lapse and the result be refused (409)
    let handled = handle_next(&agent).await;

    // Then the result is accepted
    assert_eq!(handled, Handled::Reported(Ok(())));
    service.wait_for_status("6200001G", "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_agent_takes_an_establishment_from_1_to_4_on_a_real_archive() {
    // Given the server and the built-in sandbox commands
    let service = start(60).await;
    let sandbox_dir = fresh_dir("agent-sandbox");
    let sandbox = Arc::new(Sandbox::new(&sandbox_dir));
    let agent = Agent::new(
        AgentConfig {
            api: service.base.clone(),
            operator_key: Secret::from_presented(&service.operator),
            work_dir: sandbox_dir.clone(),
            limits: ArchiveLimits::default(),
            wait_seconds: 5,
            concurrency: 1,
        },
        sandbox,
    )
    .expect("an agent");

    // When an establishment is created, the install done, a base uploaded and the mount done
    service
        .create_with(&licence("7200009X", "Collège", "ABCDEFGH"))
        .await;
    assert_eq!(handle_next(&agent).await, Handled::Reported(Ok(())));
    service.wait_for_status("7200009X", "2").await;
    service
        .upload_and_submit("7200009X", &[("Principale", "data.zip", base_archive())])
        .await;
    assert_eq!(handle_next(&agent).await, Handled::Reported(Ok(())));

    // Then it is ready, with its base installed and a stand-in server that answers
    let establishment = service.wait_for_status("7200009X", "4").await;
    assert_eq!(
        establishment["bases"][0]["state"], "INSTALLED",
        "{establishment}"
    );
    let port = establishment["connection"]["port"]
        .as_u64()
        .expect("a port");
    assert_eq!(establishment["connection"]["host"], "127.0.0.1");
    let notices = sandbox_dir.join("7200009X/bases/Principale/NOTICES.DAT");
    assert!(
        std::fs::metadata(&notices)
            .expect("NOTICES.DAT extracted")
            .len()
            > 1_000_000
    );
    assert!(!sandbox_dir
        .join("7200009X/downloads/Principale.zip")
        .exists());
    let page = reqwest::get(format!("http://127.0.0.1:{port}/client"))
        .await
        .expect("the stand-in server answers")
        .text()
        .await
        .expect("a page");
    assert!(page.contains("7200009X"), "{page}");
}

// ---------------------------------------------------------------------------------------------
// Against the fake API

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_are_sent_while_the_command_works_and_the_result_is_posted() {
    // Given a job whose lease lasts one second, and a command that waits for a heartbeat
    let fake = FakeApi::start().await;
    let marker = fresh_dir("agent-beat").join("beat");
    *fake.state.heartbeat_marker.lock().unwrap() = Some(marker.clone());
    fake.queue(json!({
        "id": "0750655E-install-1.lease",
        "kind": "install",
        "rne": "0750655E",
        "input": {"rne": "0750655E", "griffe": "g", "code": "ABCDEFGH", "version": "SP", "agricole": true},
        "lease_expires_at": Instant::now().plus_seconds(1).rfc3339(),
    }));
    let command = format!(
        r#"while [ ! -f '{}' ]; do sleep 0.05; done; printf '{{"host": "h.example.org", "port": 9000, "more": 1}}'"#,
        marker.display()
    );
    let agent = agent(
        &fake.base,
        "key",
        shell(Some(&command), None),
        ArchiveLimits::default(),
    );

    // When the agent works on it
    let handled = tokio::time::timeout(PATIENCE, handle_next(&agent))
        .await
        .expect("the command saw a heartbeat");

    // Then heartbeats went out, then the result, with only the contract's fields
    assert_eq!(handled, Handled::Reported(Ok(())));
    let calls = fake.calls();
    assert!(
        calls[0].0.ends_with("/0750655E-install-1.lease/heartbeat"),
        "{calls:?}"
    );
    let (path, body) = calls.last().unwrap();
    assert_eq!(path, "/v1/agent/jobs/0750655E-install-1.lease/succeed");
    assert_eq!(
        body,
        &json!({"result": {"host": "h.example.org", "port": 9000}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mount_downloads_checks_and_extracts_then_runs_the_mount_command() {
    let fake = FakeApi::start().await;
    let archive = base_archive();
    fake.queue_mount("good", archive.clone(), archive.len() as u64);
    let command = r#"test -f "$BCDI_BASES_DIR/Principale/NOTICES.DAT" \
        && test -f "$BCDI_BASES_DIR/Principale/PRETS.DAT" \
        && case "$BCDI_BASES_JSON" in *'"name":"Principale"'*) ;; *) exit 9;; esac \
        && printf '{"connection": {"host": "bcdi.example.org", "port": 8000, "client_download_url": "https://example.org/client"}, "bases": [{"name": "Principale", "state": "INSTALLED"}]}'"#;
    let agent = agent(
        &fake.base,
        "key",
        shell(None, Some(command)),
        ArchiveLimits::default(),
    );

    assert_eq!(handle_next(&agent).await, Handled::Reported(Ok(())));

    let (path, body) = fake.calls().pop().unwrap();
    assert!(path.ends_with("/succeed"), "{path}");
    assert_eq!(body["result"]["bases"][0]["state"], "INSTALLED");
    assert_eq!(body["result"]["connection"]["port"], 8000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_of_the_wrong_size_fails_the_mount_with_size_mismatch() {
    let fake = FakeApi::start().await;
    let archive = base_archive();
    fake.queue_mount("short", archive.clone(), archive.len() as u64 + 1);
    let agent = agent(
        &fake.base,
        "key",
        shell(None, Some("exit 0")),
        ArchiveLimits::default(),
    );

    let handled = handle_next(&agent).await;

    assert_eq!(failed_with(&handled), "size_mismatch");
    let (path, body) = fake.calls().pop().unwrap();
    assert!(path.ends_with("/fail"), "{path}");
    assert_eq!(body["reason"], "size_mismatch");
    assert!(
        body["detail"].as_str().unwrap().contains("data.zip"),
        "{body}"
    );
    // The presigned URL is never logged: it is a credential while it lasts.
    assert!(!logged().contains(&format!("{}/files/short", fake.base)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_refused_by_storage_fails_the_mount_with_download_failed() {
    let fake = FakeApi::start().await;
    fake.queue(json!({
        "id": "0750655E-mount-gone.lease",
        "kind": "mount",
        "rne": "0750655E",
        "input": {"rne": "0750655E", "bases": [
            {"name": "Principale", "file": "data.zip", "size": 10, "url": format!("{}/files/none", fake.base)}
        ]},
    }));
    let agent = agent(
        &fake.base,
        "key",
        shell(None, Some("exit 0")),
        ArchiveLimits::default(),
    );
    assert_eq!(failed_with(&handle_next(&agent).await), "download_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rejection_reason_of_the_check_fails_the_mount_with_that_reason() {
    let notices = || Entry::file("NOTICES.DAT", b"notices");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("not_a_zip", b"this is not an archive".repeat(10)),
        (
            "missing_notices_dat",
            Archive::new().with(Entry::file("PRETS.DAT", b"p")).build(),
        ),
        (
            "several_bases",
            Archive::new()
                .with(Entry::file("a/NOTICES.DAT", b"n"))
                .with(Entry::file("b/NOTICES.DAT", b"n"))
                .build(),
        ),
        (
            "unsafe_path",
            Archive::new()
                .with(notices())
                .with(Entry::file("../../evil", b"x"))
                .build(),
        ),
        (
            "link_entry",
            Archive::new()
                .with(notices())
                .with(Entry::file("lien", b"/etc").unix_mode(0o120_777))
                .build(),
        ),
        (
            "encrypted_entry",
            Archive::new().with(notices().flags(1)).build(),
        ),
        (
            "duplicate_entry",
            Archive::new()
                .with(notices())
                .with(Entry::file("notices.dat", b"n"))
                .build(),
        ),
        (
            "suspicious_ratio",
            Archive::new()
                .with(notices())
                .with(Entry::claimed("bombe.dat", 10, 3000))
                .build(),
        ),
        (
            "overlapping_entries",
            Archive::new()
                .with(notices())
                .with(Entry::file("a.dat", &[1; 64]))
                .with(Entry::file("b.dat", &[1; 64]).same_data_as(1))
                .build(),
        ),
        (
            "unsupported_compression",
            Archive::new()
                .with(notices())
                .with(Entry::file("x.dat", b"x").method(14))
                .build(),
        ),
        // Found only while inflating: the data does not match its CRC.
        (
            "corrupt_entry",
            Archive::new()
                .with(Entry::file("NOTICES.DAT", b"n").crc(7))
                .build(),
        ),
    ];
    let mut many = Archive::new().with(notices());
    for index in 0..20 {
        many = many.with(Entry::file(&format!("{index}.dat"), b""));
    }
    cases.push(("too_many_entries", many.build()));
    cases.push((
        "too_large",
        Archive::new()
            .with(notices())
            .with(Entry::file("gros.dat", &[7; 5000]))
            .build(),
    ));
    // Small limits, so that small archives reach them.
    let limits = ArchiveLimits {
        max_entries: 10,
        max_uncompressed_bytes: 4096,
        ratio_min_bytes: 1024,
        ..ArchiveLimits::default()
    };

    let fake = FakeApi::start().await;
    for (index, (_, archive)) in cases.iter().enumerate() {
        fake.queue_mount(
            &format!("case{index}"),
            archive.clone(),
            archive.len() as u64,
        );
    }
    let agent = agent(&fake.base, "key", shell(None, Some("exit 0")), limits);

    for (reason, _) in &cases {
        let handled = handle_next(&agent).await;
        assert_eq!(failed_with(&handled), *reason);
    }
    let failures: Vec<Value> = fake
        .calls()
        .into_iter()
        .filter(|(path, _)| path.ends_with("/fail"))
        .map(|(_, body)| body)
        .collect();
    assert_eq!(failures.len(), cases.len());
    for body in failures {
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("data.zip (Principale): "),
            "{body}"
        );
    }
}

async fn wait_for_file(path: &Path) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
