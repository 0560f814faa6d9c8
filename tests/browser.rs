//! The upload page in headless Chromium, as a school uses it: framed by a page of another
//! loopback origin (the Cyberlibrairie's stand-in), against `bcdi-hosting serve` with its
//! embedded storage and sandbox agent. Chromium and chromedriver are Debian's (`scripts/test`
//! installs them); each test starts its own server, driver and browser.

// Each test runs on a runtime of its own: holding `SERIAL` across awaits blocks the other
// tests' threads, which is what it is for.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const MIB: u64 = 1024 * 1024;
/// The smallest part size the service allows (S3's), so that a file of a few parts stays small.
const PART_SIZE: u64 = 5 * MIB;
const RNE: &str = "0750655E";

/// One browser test at a time: each runs a server, a driver and a browser, and the machine has
/// two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Scratch directories and processes, removed and stopped even when a test fails

struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> Self {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).expect("random bytes");
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("bcdi-browser-{label}-{suffix}"));
        std::fs::create_dir_all(&path).expect("a scratch directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child started in its own process group, so that stopping it also stops what it started
/// (chromedriver's Chromium, the server's agent).
struct Group {
    child: Child,
}

impl Group {
    fn spawn(command: &mut Command) -> Self {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        Self { child }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The group's id is the child's pid (process_group(0)); only that group is signalled.
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(50));
        }
        kill("-KILL");
        let _ = self.child.wait();
    }
}

fn free_port(ip: [u8; 4]) -> u16 {
    StdListener::bind(SocketAddr::from((ip, 0)))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    bcdi_shared::domain::Secret::from_presented(text)
        .digest()
        .to_hex()
}

// ---------------------------------------------------------------------------------------------
// `bcdi-hosting serve`

/// Builds the `bcdi-hosting` binary once per test run (a no-op when it is up to date) and gives
/// its path, next to this test's own executable.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "bcdi-hosting", "--bin", "bcdi-hosting"])
            .current_dir(&workspace);
        // Without the variables `cargo test` set for this test (this package's name, version,
        // manifest...): build scripts that read them (ring's) would be dirty, and the whole
        // SDK rebuilt once here and once more by the next plain `cargo build` (scripts/test's
        // schemathesis step).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
                || name == "CARGO_TARGET_TMPDIR"
                || name == "OUT_DIR"
            {
                build.env_remove(&*name);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build -p bcdi-hosting failed");
        let exe = std::env::current_exe().expect("the test's path");
        // <target>/debug/deps/browser-<hash> → <target>/debug/bcdi-hosting
        let debug = exe
            .parent()
            .and_then(Path::parent)
            .expect("the profile directory");
        debug.join("bcdi-hosting")
    })
}

struct Server {
    base: String,
    cyber_key: String,
    operator_key: String,
    http: reqwest::Client,
    _process: Group,
    _data: ScratchDir,
}

impl Server {
    async fn start(allowed_frame_origins: &str) -> Self {
        Self::start_with(allowed_frame_origins, &[]).await
    }

    /// The server with more environment variables (e.g. `SANDBOX_AGENT=off`).
    async fn start_with(allowed_frame_origins: &str, env: &[(&str, &str)]) -> Self {
        let binary = server_binary();
        let data = ScratchDir::new("data");
        let port = free_port([127, 0, 0, 1]);
        let cyber_key = random_key();
        let operator_key = random_key();
        let log = std::fs::File::create(data.path().join("server.log")).expect("a log file");
        let process = Group::spawn(
            Command::new(binary)
                .arg("serve")
                .env("PORT", port.to_string())
                .env("DATA_DIR", data.path())
                .env("CYBER_KEY_SHA256", sha256_hex(&cyber_key))
                .env("OPERATOR_KEY_SHA256", sha256_hex(&operator_key))
                .env("ALLOWED_FRAME_ORIGINS", allowed_frame_origins)
                .env("UPLOAD_PART_SIZE", PART_SIZE.to_string())
                .env("NO_COLOR", "1")
                .envs(env.iter().copied())
                .env_remove("STORAGE_ORIGIN")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("a log file"))
                .stderr(log),
        );
        let server = Self {
            base: format!("http://127.0.0.1:{port}"),
            cyber_key,
            operator_key,
            http: reqwest::Client::new(),
            _process: process,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = server.http.get(server.url("/v1/openapi.json")).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "bcdi-hosting serve did not answer within 60 s; its log:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._data.path().join("server.log")).unwrap_or_default()
    }

    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn establishment(&self, rne: &str) -> Value {
        let (status, body) = self
            .call(
                "GET",
                &format!("/v1/establishments/{rne}"),
                &self.cyber_key,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Creates the establishment and waits until the sandbox agent has installed its server
    /// (status 2), as a school would wait before uploading.
    async fn installed_establishment(&self, rne: &str) {
        let licence = json!({"rne": rne, "griffe": "Collège Jean Moulin", "code": "ABCDEFGH",
                             "version": "CL"});
        let (status, body) = self
            .call("POST", "/v1/establishments", &self.cyber_key, Some(licence))
            .await;
        assert_eq!(status, 200, "{body}");
        let statuses = self
            .wait_for_status(rne, "2", Duration::from_secs(120))
            .await;
        assert!(
            !statuses.contains("E1"),
            "installation failed: {statuses:?}"
        );
    }

    /// Polls the establishment until it reaches `wanted`; gives every status seen on the way.
    async fn wait_for_status(
        &self,
        rne: &str,
        wanted: &str,
        timeout: Duration,
    ) -> BTreeSet<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = BTreeSet::new();
        loop {
            let body = self.establishment(rne).await;
            let status = body["status"].as_str().unwrap_or_default().to_owned();
            seen.insert(status.clone());
            if status == wanted {
                return seen;
            }
            assert!(
                !status.starts_with('E'),
                "the establishment failed while waiting for {wanted}: {body}\nserver log:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "status {wanted} not reached within {timeout:?} (last: {body}); server log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Without the sandbox agent: plays the hosting agent for the installation only, so that
    /// the establishment reaches status 2 and a later mounting stays in 3.
    async fn installed_by_hand(&self, rne: &str) {
        let licence = json!({"rne": rne, "griffe": "Collège Jean Moulin", "code": "ABCDEFGH",
                             "version": "CL"});
        let (status, body) = self
            .call("POST", "/v1/establishments", &self.cyber_key, Some(licence))
            .await;
        assert_eq!(status, 200, "{body}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let job = loop {
            let (status, job) = self
                .call(
                    "POST",
                    "/v1/agent/jobs/claim",
                    &self.operator_key,
                    Some(json!({"kinds": ["install"], "wait_seconds": 5})),
                )
                .await;
            if status == 200 {
                break job;
            }
            assert_eq!(status, 204, "{job}");
            assert!(Instant::now() < deadline, "no install job was offered");
        };
        let id = job["id"].as_str().expect("a job id");
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/agent/jobs/{id}/succeed"),
                &self.operator_key,
                Some(json!({"result": {"host": "bcdi-test.example.org", "port": 8000}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        self.wait_for_status(rne, "2", Duration::from_secs(60))
            .await;
    }

    /// A new upload session: the iframe URL and its token.
    async fn upload_session(&self, rne: &str) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/establishments/{rne}/upload-sessions"),
                &self.cyber_key,
                None,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let url = body["url"].as_str().expect("a url").to_owned();
        let token = url
            .split_once("#token=")
            .map(|(_, token)| token.to_owned())
            .expect("the token in the fragment");
        (url, token)
    }
}

// ---------------------------------------------------------------------------------------------
// The Cyberlibrairie's stand-in: a page on another loopback origin that frames a URL

struct ParentPage {
    origin: String,
    frame_url: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl ParentPage {
    async fn start(ip: [u8; 4]) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
            .await
            .expect("a loopback port for the parent page");
        let address = listener.local_addr().expect("its address");
        let frame_url = Arc::new(Mutex::new(String::from("about:blank")));
        let shared = Arc::clone(&frame_url);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let src = shared.lock().map(|url| url.clone()).unwrap_or_default();
                tokio::spawn(async move {
                    // Read the request head; the page is the same whatever the path.
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let src = src.replace('&', "&amp;").replace('"', "&quot;");
                    let body = format!(
                        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">\
                         <title>Cyberlibrairie (test)</title></head>\
                         <body style=\"margin:0;background:#eee\">\
                         <iframe id=\"upload\" title=\"Envoi des bases BCDI\" src=\"{src}\" \
                         style=\"display:block;width:100%;height:1700px;border:0;background:#fff\">\
                         </iframe></body></html>"
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                         cache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            origin: format!("http://{address}"),
            frame_url,
            task,
        }
    }

    fn frame(&self, url: &str) -> String {
        *self.frame_url.lock().expect("the frame URL") = url.to_owned();
        format!("{}/", self.origin)
    }
}

impl Drop for ParentPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Chromium through chromedriver

struct Browser {
    client: Option<Client>,
    _driver: Group,
    _profile: ScratchDir,
}

impl Browser {
    async fn start() -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test installs Debian's chromium and chromium-driver"
            );
        }
        let profile = ScratchDir::new("profile");
        let port = free_port([127, 0, 0, 1]);
        let driver = Group::spawn(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1100,1700", "--lang=fr-FR",
                    // The framed page runs in its parent's process, so that the network
                    // throttling chromedriver sets on the tab applies to it too (an
                    // out-of-process frame escapes it). Origins, CSP and frame-ancestors are
                    // unchanged: they do not depend on the process model.
                    "--disable-site-isolation-trials",
                    "--disable-features=IsolateOrigins,site-per-process",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("an object literal"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "chromedriver did not start: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self {
            client: Some(client),
            _driver: driver,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }

    /// Runs `script` in the current frame until it returns `true`.
    async fn wait_until(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.client().execute(script, vec![]).await;
            if matches!(value, Ok(Value::Bool(true))) {
                return;
            }
            if Instant::now() >= deadline {
                let text = self.frame_text().await;
                panic!("timed out waiting for {what} (last: {value:?}); the frame shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn frame_text(&self) -> String {
        match self
            .client()
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
        {
            Ok(Value::String(text)) => text,
            other => format!("{other:?}"),
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client()
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Opens `parent` and enters its iframe, once the upload page in it has started.
    async fn open_framed(&self, parent: &str) {
        self.client()
            .goto(parent)
            .await
            .expect("the parent page loads");
        self.enter_upload_frame().await;
    }

    async fn enter_upload_frame(&self) {
        self.client()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("iframe#upload"))
            .await
            .expect("the iframe");
        self.client().enter_frame(0).await.expect("the iframe");
        self.wait_until(
            "the upload page to start",
            "return !!document.body && !!document.body.dataset.state",
            Duration::from_secs(20),
        )
        .await;
    }

    async fn choose_files(&self, paths: &[&Path]) {
        let input = self
            .client()
            .find(Locator::Css(
                "input.uppy-Dashboard-input[type=file]:not([webkitdirectory])",
            ))
            .await
            .expect("Uppy's file input");
        let list: Vec<String> = paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        input
            .send_keys(&list.join("\n"))
            .await
            .expect("files chosen");
    }

    async fn click(&self, css: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css}: {error}"))
            .click()
            .await
            .unwrap_or_else(|error| panic!("click on {css}: {error}"));
    }

    /// Throttles the network of the page and its frames (bytes per second), or lifts it.
    async fn throttle(&self, upload_bytes_per_second: Option<u64>) {
        let command = NetworkConditions(upload_bytes_per_second);
        self.client()
            .issue_cmd(command)
            .await
            .expect("chromedriver sets network conditions");
    }

    /// Cuts the page and its frames off the network, or puts them back.
    async fn offline(&self, offline: bool) {
        self.client()
            .issue_cmd(Offline(offline))
            .await
            .expect("chromedriver sets network conditions");
    }

    /// A PNG of the iframe as the parent page shows it.
    async fn screenshot_frame(&self, path: &Path) {
        self.client()
            .enter_parent_frame()
            .await
            .expect("back to the parent");
        let frame = self
            .client()
            .find(Locator::Css("iframe#upload"))
            .await
            .expect("the iframe");
        let png = frame.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("target/browser");
        std::fs::write(path, png).expect("the screenshot is written");
        self.client().enter_frame(0).await.expect("the iframe");
    }
}

/// chromedriver's `POST|DELETE /session/{id}/chromium/network_conditions`.
#[derive(Debug)]
struct NetworkConditions(Option<u64>);

impl WebDriverCompatibleCommand for NetworkConditions {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/chromium/network_conditions",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        match self.0 {
            Some(throughput) => (
                http::Method::POST,
                Some(
                    json!({"network_conditions": {
                        "offline": false,
                        "latency": 0,
                        "download_throughput": 50 * MIB,
                        "upload_throughput": throughput,
                    }})
                    .to_string(),
                ),
            ),
            None => (http::Method::DELETE, None),
        }
    }
}

/// The same command, for a network that is down (`true`) or back up (`false`).
#[derive(Debug)]
struct Offline(bool);

impl WebDriverCompatibleCommand for Offline {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        NetworkConditions(None).endpoint(base_url, session_id)
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let conditions = json!({"network_conditions": {
            "offline": self.0,
            "latency": 0,
            "download_throughput": 50 * MIB,
            "upload_throughput": 50 * MIB,
        }});
        (http::Method::POST, Some(conditions.to_string()))
    }
}

/// Runs a browser test body, then closes the browser whatever happened.
async fn with_browser<F, Fut>(body: F)
where
    F: FnOnce(Arc<Browser>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let browser = Arc::new(Browser::start().await);
    let outcome = AssertUnwindSafe(body(Arc::clone(&browser)))
        .catch_unwind()
        .await;
    if let Ok(browser) = Arc::try_unwrap(browser) {
        browser.close().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------------
// Base archives: real ZIPs with a NOTICES.DAT, of incompressible bytes so sizes are what they say

fn base_archive(dir: &Path, name: &str, folder: &str, notices_bytes: u64) -> PathBuf {
    use zip::write::SimpleFileOptions;

    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("an archive file");
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    zip.start_file(format!("{folder}/NOTICES.DAT"), options)
        .expect("an entry");
    // xorshift: cheap bytes that no compressor shrinks.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ notices_bytes;
    let mut chunk = vec![0u8; MIB as usize];
    let mut left = notices_bytes;
    while left > 0 {
        for byte in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let n = left.min(chunk.len() as u64) as usize;
        zip.write_all(&chunk[..n]).expect("entry bytes");
        left -= n as u64;
    }
    zip.start_file(format!("{folder}/LISEZMOI.TXT"), options)
        .expect("an entry");
    zip.write_all("Sauvegarde BCDI de test.\r\n".as_bytes())
        .expect("entry bytes");
    zip.finish().expect("the archive is written");
    path
}

/// An archive that is a valid ZIP but no BCDI backup: no `NOTICES.DAT`.
fn archive_without_notices(dir: &Path, name: &str) -> PathBuf {
    use zip::write::SimpleFileOptions;

    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("an archive file");
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file("photos/LISEZMOI.TXT", SimpleFileOptions::default())
        .expect("an entry");
    zip.write_all("Pas une sauvegarde BCDI.\r\n".as_bytes())
        .expect("entry bytes");
    zip.finish().expect("the archive is written");
    path
}

fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // <target>/debug/deps/browser-<hash> → <target>/browser
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("the target directory")
        .join("browser")
}

/// Part numbers of the presigned PUTs this document sent for the object of `file_id`, from the
/// browser's resource timing (a reload starts a new list).
async fn parts_sent(browser: &Browser, file_id: &str) -> BTreeSet<u64> {
    let names = browser
        .js("return performance.getEntriesByType('resource').map((entry) => entry.name)")
        .await;
    names
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .filter(|name| name.contains(file_id) && name.contains("partNumber="))
        .filter_map(|name| {
            let query = name.split_once('?')?.1;
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("partNumber="))?
                .parse()
                .ok()
        })
        .collect()
}

async fn session_files(server: &Server, token: &str) -> Vec<Value> {
    let (status, body) = server.call("GET", "/v1/upload/session", token, None).await;
    assert_eq!(status, 200, "{body}");
    body["files"].as_array().cloned().unwrap_or_default()
}

async fn stored_parts(server: &Server, token: &str, file_id: &str) -> Option<BTreeSet<u64>> {
    let (status, body) = server
        .call(
            "GET",
            &format!("/v1/upload/files/{file_id}/parts"),
            token,
            None,
        )
        .await;
    if status != 200 {
        return None;
    }
    Some(
        body["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .filter_map(|part| part["part"].as_u64())
            .collect(),
    )
}

/// The page's live region after « Envoyer », as the school reads it (`web/upload/status.js`).
const MOUNTING: &str = "Vos bases ont été reçues ; vérification et installation en cours…";
const READY: &str = "C'est terminé : votre serveur BCDI est prêt.";
const FAILED: &str = "Vos bases n'ont pas pu être installées.";

/// Records every state and title the result region shows from now on, so that a test can tell
/// the order of what the page said, however short each lasted.
async fn record_result_region(browser: &Browser) {
    let role = browser
        .js(
            "const result = document.querySelector('#result'); \
             window.bcdiSeen = []; \
             const record = () => { \
               const entry = (result.dataset.state || '') + '|' + \
                 document.querySelector('#result-title').textContent; \
               if (window.bcdiSeen[window.bcdiSeen.length - 1] !== entry) window.bcdiSeen.push(entry); \
             }; \
             new MutationObserver(record).observe(result, \
               {attributes: true, childList: true, subtree: true, characterData: true}); \
             return [result.getAttribute('role'), result.getAttribute('aria-live')];",
        )
        .await;
    assert_eq!(
        role,
        json!(["status", "polite"]),
        "the result is a live region"
    );
}

async fn result_region_history(browser: &Browser) -> Vec<String> {
    let seen = browser.js("return window.bcdiSeen").await;
    seen.as_array()
        .expect("the recorded entries")
        .iter()
        .filter_map(|entry| entry.as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn a_school_uploads_three_bases_in_the_frame_resumes_after_a_reload_and_sees_them_mounted() {
    let _serial = serial();
    let parent = ParentPage::start([127, 0, 0, 2]).await;
    let server = Server::start(&parent.origin).await;
    server.installed_establishment(RNE).await;
    let (url, token) = server.upload_session(RNE).await;

    let files = ScratchDir::new("archives");
    // 3¼ parts: the short last part is stored first, well before the others.
    let data = base_archive(
        files.path(),
        "data.zip",
        "data",
        3 * PART_SIZE + PART_SIZE / 4,
    );
    let travperso = base_archive(files.path(), "travperso.zip", "travperso", MIB);
    let manuels = base_archive(files.path(), "manuels.zip", "manuels", MIB / 2);
    let not_zip = files.path().join("notes.txt");
    std::fs::write(&not_zip, "pas une archive").expect("a text file");

    let parent_url = parent.frame(&url);
    let server = &server;
    with_browser(|browser| async move {
        browser.open_framed(&parent_url).await;
        assert_eq!(
            browser.js("return document.body.dataset.state").await,
            "ready"
        );
        assert_eq!(
            browser.js("return document.documentElement.lang").await,
            "fr"
        );
        assert_eq!(
            browser.js("return window.location.hash").await,
            "",
            "the token is removed from the address bar"
        );

        // A file that is not a ZIP is refused, in French, and said to screen readers.
        browser.choose_files(&[&not_zip]).await;
        browser
            .wait_until(
                "the wrong-type error",
                "return document.querySelector('#alert').textContent.includes('.zip')",
                Duration::from_secs(10),
            )
            .await;
        let alert = browser
            .js("return document.querySelector('#alert').textContent")
            .await;
        assert!(
            alert
                .as_str()
                .unwrap()
                .contains("Seules les archives .zip sont acceptées"),
            "{alert}"
        );
        assert_eq!(
            browser
                .js("return document.querySelector('#live').getAttribute('aria-live')")
                .await,
            "polite"
        );

        // Three archives at once; their bases are guessed from BCDI's usual names.
        browser.choose_files(&[&data, &travperso, &manuels]).await;
        browser
            .wait_until(
                "three rows of bases",
                "return document.querySelectorAll('#bases-body tr').length === 3",
                Duration::from_secs(10),
            )
            .await;
        let bases = browser
            .js(
                "return [...document.querySelectorAll('#bases-body tr')].map((row) => \
                 row.querySelector('th').textContent + '=' + row.querySelector('select').value)",
            )
            .await;
        assert_eq!(
            bases,
            json!([
                "data.zip=Principale",
                "travperso.zip=Travail personnel",
                "manuels.zip=Manuels"
            ])
        );
        let esidoc = browser
            .js("return document.querySelector('#bases-body tr input[type=radio]').checked")
            .await;
        assert_eq!(
            esidoc, true,
            "the main base is exported to e-sidoc by default"
        );

        // Slow uploads down so that the page can be reloaded in the middle of one.
        browser.throttle(Some(MIB)).await;
        browser.click("#upload").await;

        // Wait until storage holds some but not all parts of data.zip, then reload the whole
        // parent page, as a librarian pressing F5 would.
        let deadline = Instant::now() + Duration::from_secs(60);
        let data_id = loop {
            let files = session_files(server, &token).await;
            let data_file = files.iter().find(|file| file["name"] == "data.zip");
            if let Some(file) = data_file {
                let id = file["id"].as_str().expect("an id").to_owned();
                assert!(file["part_count"].as_u64().unwrap() >= 3, "{file}");
                assert_eq!(file["part_size"].as_u64().unwrap(), PART_SIZE, "{file}");
                if let Some(parts) = stored_parts(server, &token, &id).await {
                    if !parts.is_empty() {
                        break id;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no part of data.zip was stored");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        browser
            .client()
            .enter_parent_frame()
            .await
            .expect("the parent");
        browser.client().refresh().await.expect("the reload");
        browser.throttle(None).await;
        browser.enter_upload_frame().await;

        let before = stored_parts(server, &token, &data_id)
            .await
            .expect("data.zip is still incomplete after the reload");
        assert!(!before.is_empty() && before.len() < 4, "{before:?}");
        browser
            .wait_until(
                "the interrupted upload to be listed",
                "return !document.querySelector('#interrupted-section').hidden && \
                 document.querySelector('#interrupted').textContent.includes('data.zip')",
                Duration::from_secs(10),
            )
            .await;

        // Pick the interrupted archives again: only the missing parts are sent.
        let files = session_files(server, &token).await;
        let again: Vec<&Path> = [&data, &travperso, &manuels]
            .into_iter()
            .filter(|path| {
                let name = path.file_name().unwrap().to_str().unwrap();
                files
                    .iter()
                    .any(|file| file["name"] == name && file["state"] == "uploading")
            })
            .map(PathBuf::as_path)
            .collect();
        browser.choose_files(&again).await;
        browser
            .wait_until(
                "the resumed rows",
                &format!(
                    "return document.querySelectorAll('#bases-body tr').length === {}",
                    again.len()
                ),
                Duration::from_secs(10),
            )
            .await;
        browser.click("#upload").await;
        browser
            .wait_until(
                "three received archives",
                "return document.querySelectorAll('#received li').length === 3",
                Duration::from_secs(120),
            )
            .await;

        let sent = parts_sent(&browser, &data_id).await;
        assert!(!sent.is_empty(), "the missing parts of data.zip were sent");
        assert!(
            sent.is_disjoint(&before),
            "parts stored before the reload were sent again: sent {sent:?}, stored {before:?}"
        );
        let files = session_files(server, &token).await;
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(
            files.iter().all(|file| file["state"] == "complete"),
            "{files:?}"
        );

        browser
            .wait_until(
                "the send button to be enabled",
                "return !document.querySelector('#submit').disabled",
                Duration::from_secs(10),
            )
            .await;
        browser
            .screenshot_frame(&screenshots_dir().join("upload.png"))
            .await;

        // "Envoyer": mounting starts, and the page follows it in its live region, in French,
        // until the sandbox agent has mounted the bases: status 3, then 4.
        record_result_region(&browser).await;
        browser.click("#submit").await;
        browser
            .wait_until(
                "the page to say the bases are being checked and mounted",
                &format!(
                    "return document.querySelector('#result').textContent.includes({MOUNTING:?})"
                ),
                Duration::from_secs(20),
            )
            .await;
        assert_eq!(
            browser.js("return document.activeElement.id").await,
            "result",
            "focus moves to the outcome when « Envoyer » is disabled"
        );
        browser
            .screenshot_frame(&screenshots_dir().join("submitted.png"))
            .await;
        browser
            .wait_until(
                "the page to say the server is ready",
                "return document.querySelector('#result').dataset.state === 'ready'",
                Duration::from_secs(300),
            )
            .await;
        let seen = result_region_history(&browser).await;
        let three = seen
            .iter()
            .position(|entry| entry == &format!("mounting|{MOUNTING}"));
        let four = seen
            .iter()
            .position(|entry| entry == &format!("ready|{READY}"));
        assert!(
            matches!((three, four), (Some(three), Some(four)) if three < four),
            "the live region did not show status 3 then 4: {seen:?}"
        );
        let shown = browser
            .js("return document.querySelector('#result').textContent")
            .await;
        let shown = shown.as_str().unwrap_or_default();
        assert!(
            shown.contains("Votre serveur BCDI est prêt")
                && shown.contains("« Principale »")
                && shown.contains("« Manuels »"),
            "{shown}"
        );
        assert_eq!(
            browser
                .js("return document.querySelector('#submit').disabled")
                .await,
            true,
            "nothing more to send once the bases are mounted"
        );
        browser
            .screenshot_frame(&screenshots_dir().join("mounted.png"))
            .await;
    })
    .await;

    // The page's 4 is the service's: the history keeps 3 then 4, in order.
    server
        .wait_for_status(RNE, "4", Duration::from_secs(10))
        .await;
    let (status, history) = server
        .call(
            "GET",
            &format!("/v1/establishments/{RNE}/history"),
            &server.cyber_key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let statuses: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["status"].as_str())
        .collect();
    let three = statuses.iter().position(|status| *status == "3");
    let four = statuses.iter().rposition(|status| *status == "4");
    assert!(
        matches!((three, four), (Some(three), Some(four)) if three < four),
        "{statuses:?}"
    );
    let establishment = server.establishment(RNE).await;
    let mut bases: Vec<(String, String, bool)> = establishment["bases"]
        .as_array()
        .expect("bases")
        .iter()
        .map(|base| {
            (
                base["name"].as_str().unwrap_or_default().to_owned(),
                base["state"].as_str().unwrap_or_default().to_owned(),
                base["esidoc_export"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    bases.sort();
    assert_eq!(
        bases,
        [
            ("Manuels".to_owned(), "INSTALLED".to_owned(), false),
            ("Principale".to_owned(), "INSTALLED".to_owned(), true),
            (
                "Travail personnel".to_owned(),
                "INSTALLED".to_owned(),
                false
            ),
        ],
        "{establishment}"
    );
}

#[tokio::test]
async fn a_base_without_notices_dat_is_refused_in_french_and_the_school_uploads_again() {
    let _serial = serial();
    let parent = ParentPage::start([127, 0, 0, 2]).await;
    let server = Server::start(&parent.origin).await;
    server.installed_establishment(RNE).await;
    let (url, token) = server.upload_session(RNE).await;

    let files = ScratchDir::new("archives");
    let wrong = archive_without_notices(files.path(), "data.zip");
    let right = base_archive(files.path(), "principale.zip", "data", MIB);

    let parent_url = parent.frame(&url);
    let server = &server;
    let token = &token;
    with_browser(|browser| async move {
        browser.open_framed(&parent_url).await;
        assert_eq!(
            browser.js("return document.body.dataset.state").await,
            "ready"
        );

        // An archive that is no BCDI backup goes through the upload: only the mounting's
        // archive check can tell.
        browser.choose_files(&[&wrong]).await;
        browser
            .wait_until(
                "one row of bases",
                "return document.querySelectorAll('#bases-body tr').length === 1",
                Duration::from_secs(10),
            )
            .await;
        browser.click("#upload").await;
        browser
            .wait_until(
                "the send button to be enabled",
                "return !document.querySelector('#submit').disabled",
                Duration::from_secs(60),
            )
            .await;
        record_result_region(&browser).await;
        browser.click("#submit").await;
        browser
            .wait_until(
                "the page to say the bases could not be used",
                "return document.querySelector('#result').dataset.state === 'failed'",
                Duration::from_secs(120),
            )
            .await;

        // The service's E2 and its reason, as the upload token reads them.
        let (status, session) = server.call("GET", "/v1/upload/session", token, None).await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["establishment"]["status"], "E2", "{session}");
        assert_eq!(
            session["establishment"]["error"]["reason"], "missing_notices_dat",
            "{session}"
        );
        assert!(session["establishment"].get("connection").is_none());

        // The page said 3 then E2, with the reason in French and the way out.
        let seen = result_region_history(&browser).await;
        let three = seen
            .iter()
            .position(|entry| entry == &format!("mounting|{MOUNTING}"));
        let failed = seen
            .iter()
            .position(|entry| entry == &format!("failed|{FAILED}"));
        assert!(
            matches!((three, failed), (Some(three), Some(failed)) if three < failed),
            "the live region did not show status 3 then E2: {seen:?}"
        );
        let shown = browser
            .js(
                "return {text: document.querySelector('#result').textContent, \
                 focus: document.activeElement.id, \
                 again: !document.querySelector('#again').hidden \
                   && !document.querySelector('#again').disabled, \
                 received: document.querySelector('#received').textContent, \
                 remove: !document.querySelector('#received li button').disabled, \
                 picker: !!document.querySelector('#dashboard .uppy-Dashboard-browse')}",
            )
            .await;
        let text = shown["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("« Principale » (data.zip)")
                && text.contains("ne contient pas de fichier NOTICES.DAT")
                && text.contains("cliquez de nouveau sur « Envoyer »"),
            "{shown}"
        );
        assert_eq!(shown["focus"], "result", "{shown}");
        assert_eq!(shown["again"], true, "{shown}");
        assert!(
            shown["received"]
                .as_str()
                .unwrap_or_default()
                .contains("n'a pas pu être utilisée"),
            "the refused archive is marked in the received list: {shown}"
        );
        assert_eq!(shown["remove"], true, "{shown}");
        assert_eq!(shown["picker"], true, "{shown}");
        browser
            .screenshot_frame(&screenshots_dir().join("refused.png"))
            .await;

        // The way out, by keyboard: « Choisir d'autres archives » leads to the file picker.
        browser.click("#again").await;
        assert_eq!(
            browser
                .js("return document.activeElement.classList.contains('uppy-Dashboard-browse')")
                .await,
            true
        );

        // Remove the refused archive, send the right one: 3 then 4.
        browser.click("#received li button").await;
        browser
            .wait_until(
                "the refused archive to be removed",
                "return document.querySelectorAll('#received li').length === 0",
                Duration::from_secs(10),
            )
            .await;
        browser.choose_files(&[&right]).await;
        browser
            .wait_until(
                "one row of bases",
                "return document.querySelectorAll('#bases-body tr').length === 1",
                Duration::from_secs(10),
            )
            .await;
        browser.click("#upload").await;
        browser
            .wait_until(
                "the send button to be enabled",
                "return !document.querySelector('#submit').disabled",
                Duration::from_secs(60),
            )
            .await;
        record_result_region(&browser).await;
        browser.click("#submit").await;
        browser
            .wait_until(
                "the page to say the server is ready",
                "return document.querySelector('#result').dataset.state === 'ready'",
                Duration::from_secs(300),
            )
            .await;
        let seen = result_region_history(&browser).await;
        assert_eq!(
            seen.iter().position(|entry| entry.starts_with("failed|")),
            None,
            "the earlier E2 was taken for this submit's outcome: {seen:?}"
        );
        let three = seen
            .iter()
            .position(|entry| entry == &format!("mounting|{MOUNTING}"));
        let four = seen
            .iter()
            .position(|entry| entry == &format!("ready|{READY}"));
        assert!(
            matches!((three, four), (Some(three), Some(four)) if three < four),
            "{seen:?}"
        );
    })
    .await;
    let establishment = server.establishment(RNE).await;
    assert_eq!(establishment["status"], "4", "{establishment}");
}

#[tokio::test]
async fn while_mounting_the_page_rides_out_a_network_cut_and_says_in_french_when_the_session_ends()
{
    let _serial = serial();
    let parent = ParentPage::start([127, 0, 0, 2]).await;
    // No agent mounts anything: the establishment stays in 3 while the page follows it, until
    // the short session ends.
    let server = Server::start_with(
        &parent.origin,
        &[("SANDBOX_AGENT", "off"), ("UPLOAD_SESSION_SECONDS", "90")],
    )
    .await;
    server.installed_by_hand(RNE).await;
    let (url, _token) = server.upload_session(RNE).await;
    let files = ScratchDir::new("archives");
    let data = base_archive(files.path(), "data.zip", "data", MIB);

    let parent_url = parent.frame(&url);
    with_browser(|browser| async move {
        browser.open_framed(&parent_url).await;
        browser.choose_files(&[&data]).await;
        browser
            .wait_until(
                "one row of bases",
                "return document.querySelectorAll('#bases-body tr').length === 1",
                Duration::from_secs(10),
            )
            .await;
        browser.click("#upload").await;
        browser
            .wait_until(
                "the send button to be enabled",
                "return !document.querySelector('#submit').disabled",
                Duration::from_secs(60),
            )
            .await;
        browser.click("#submit").await;
        browser
            .wait_until(
                "the page to say the bases are being checked and mounted",
                &format!(
                    "return document.querySelector('#result').textContent.includes({MOUNTING:?})"
                ),
                Duration::from_secs(20),
            )
            .await;

        // The network goes down: reads fail, the page says it is trying again, and carries on
        // once the network is back.
        browser.offline(true).await;
        browser
            .wait_until(
                "the page to say the connection is interrupted",
                "return document.querySelector('#result-note').textContent.includes('connexion')",
                Duration::from_secs(30),
            )
            .await;
        browser.offline(false).await;
        browser
            .wait_until(
                "the page to read the status again",
                "return document.querySelector('#result-note').textContent === ''",
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(
            browser
                .js("return document.querySelector('#result').dataset.state")
                .await,
            "mounting"
        );

        // The session ends while the bases are still being mounted: the page stops and says so.
        browser
            .wait_until(
                "the page to say the session expired",
                "return document.querySelector('#alert').textContent.includes('session')",
                Duration::from_secs(120),
            )
            .await;
        let alert = browser
            .js("return document.querySelector('#alert').textContent")
            .await;
        assert_eq!(
            alert,
            "Votre session d'envoi a expiré : cette page ne peut plus suivre l'installation de \
             vos bases. La Cyberlibrairie affiche l'état de votre serveur ; pour envoyer \
             d'autres archives, rouvrez la page depuis la Cyberlibrairie."
        );
        // It has stopped reading: no request after the expiry.
        let reads = "return performance.getEntriesByType('resource')\
                     .filter((entry) => entry.name.includes('/upload/session')).length";
        let before = browser.js(reads).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            browser.js(reads).await,
            before,
            "the page still polls after expiry"
        );
    })
    .await;
    assert_eq!(server.establishment(RNE).await["status"], "3");
}

#[tokio::test]
async fn the_page_loads_in_a_frame_of_an_allowed_origin_and_refuses_any_other() {
    let _serial = serial();
    let allowed = ParentPage::start([127, 0, 0, 2]).await;
    let other = ParentPage::start([127, 0, 0, 3]).await;
    let server = Server::start(&allowed.origin).await;

    // No session is needed to see whether the page renders: a made-up token is refused later.
    let page = format!("{}/v1/upload#token=bcdi_upl_not_a_real_token", server.base);
    let allowed_url = allowed.frame(&page);
    let other_url = other.frame(&page);
    with_browser(|browser| async move {
        browser.open_framed(&allowed_url).await;
        assert_eq!(
            browser
                .js("return !!document.querySelector('#bcdi-upload')")
                .await,
            true,
            "the upload page renders in a frame of the allowed origin"
        );

        browser
            .client()
            .goto(&other_url)
            .await
            .expect("the other parent loads");
        browser
            .client()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("iframe#upload"))
            .await
            .expect("the iframe");
        // `goto` returns after the parent's load event, which waits for its frame to be loaded
        // or blocked: whatever the frame holds now is final.
        browser.client().enter_frame(0).await.expect("the iframe");
        let inside = browser
            .js("return {href: location.href, page: !!document.querySelector('#bcdi-upload')}")
            .await;
        assert_eq!(
            inside["page"], false,
            "the page rendered in a foreign frame: {inside}"
        );
        assert!(
            !inside["href"]
                .as_str()
                .unwrap_or_default()
                .contains("/v1/upload"),
            "{inside}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unknown_or_expired_token_is_told_in_french_and_the_controls_are_disabled() {
    let _serial = serial();
    let parent = ParentPage::start([127, 0, 0, 2]).await;
    let server = Server::start(&parent.origin).await;
    let page = format!(
        "{}/v1/upload#token=bcdi_upl_expired_or_unknown",
        server.base
    );
    let parent_url = parent.frame(&page);

    with_browser(|browser| async move {
        browser.open_framed(&parent_url).await;
        browser
            .wait_until(
                "the session error",
                "return document.body.dataset.state === 'error'",
                Duration::from_secs(10),
            )
            .await;
        let shown = browser
            .js(
                "return {alert: document.querySelector('#alert').textContent, \
                 live: document.querySelector('#live').textContent, \
                 role: document.querySelector('#alert').getAttribute('role'), \
                 submit: document.querySelector('#submit').disabled}",
            )
            .await;
        let expired = "Votre session a expiré. Rouvrez la page depuis la Cyberlibrairie.";
        assert_eq!(shown["alert"], expired, "{shown}");
        assert_eq!(shown["live"], expired, "{shown}");
        assert_eq!(shown["role"], "alert", "{shown}");
        assert_eq!(shown["submit"], true, "{shown}");
    })
    .await;
}

#[tokio::test]
async fn the_page_and_its_assets_carry_their_security_and_caching_headers() {
    let _serial = serial();
    let server = Server::start("http://127.0.0.2:4000, https://cyber.example.org").await;
    let response = server
        .http
        .get(server.url("/v1/upload"))
        .send()
        .await
        .expect("the page");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let policy = header("content-security-policy");
    assert!(
        policy.contains("frame-ancestors http://127.0.0.2:4000 https://cyber.example.org;"),
        "{policy}"
    );
    assert!(policy.contains("script-src 'self';") && policy.contains("connect-src 'self';"));
    let html = response.text().await.expect("the page's text");

    // Every asset the page links is served with a long cache (its name changes with its bytes).
    let assets: Vec<&str> = html
        .split("upload/assets/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(assets.len(), 2, "{html}");
    for asset in assets {
        let response = server
            .http
            .get(server.url(&format!("/v1/upload/assets/{asset}")))
            .send()
            .await
            .expect("the asset");
        assert_eq!(response.status(), 200, "{asset}");
        let cache = response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert!(
            cache.contains("immutable") && cache.contains("max-age=31536000"),
            "{cache}"
        );
    }
    let (status, _) = server
        .call("GET", "/v1/upload/assets/upload.js", "unused", None)
        .await;
    assert_eq!(status, 404, "only the current, hashed names are served");
}
