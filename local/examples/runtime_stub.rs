//! A local stand-in for the Lambda Runtime API, and the driver of `bench/cold-start.sh`: it
//! starts each function binary several times, hands each process one event as Lambda would, and
//! measures per run
//!
//! - init: process start → its first `GET /2018-06-01/runtime/invocation/next` (configuration,
//!   AWS clients, everything the function does before it asks for work);
//! - first response: process start → its `POST …/invocation/{id}/response` (init, plus the first
//!   invocation with whatever its dependencies, moto here, take).
//!
//! Then it prints one Markdown table, with each function's init beside a baseline's (the
//! `hello-lambda` example). Usage:
//!
//! ```text
//! runtime_stub --runs 10 --events tests/fixtures/apigw-v2 --events bench/events \
//!     --baseline hello-lambda --dependency "moto 5.x on 127.0.0.1" \
//!     hello-lambda=target/release/examples/hello-lambda get-establishment=target/release/...
//! ```
//!
//! A function's event is `<name>.json` from the first `--events` directory that has it, with
//! `{{CYBER_KEY}}` replaced by `$BENCH_CYBER_KEY`; else, for a function named after an endpoint
//! (`get-establishment`, `claim-job`, …), an API Gateway HTTP API (v2) event built from the
//! endpoint's route; else `{}`, which measures init all the same. The processes get this
//! process's environment (table name, endpoint of moto, credentials) plus the `AWS_LAMBDA_*`
//! variables the runtime reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use bcdi_shared::api::Endpoint;
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How long one run may take before it counts as timed out.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Args {
    /// Runs per function.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Directories of `<function>.json` events, searched in order.
    #[arg(long)]
    events: Vec<PathBuf>,
    /// The function whose init the others are compared with.
    #[arg(long, default_value = "hello-lambda")]
    baseline: String,
    /// What the first responses wait on, named in the output.
    #[arg(long, default_value = "none named")]
    dependency: String,
    /// Where each function's output goes, one `<function>.log` each.
    #[arg(long, default_value = "target/cold-start-logs")]
    logs: PathBuf,
    /// `name=path` of each function binary, measured in this order.
    #[arg(required = true)]
    functions: Vec<String>,
}

/// What a function process asked of the Runtime API, and when.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, Bytes),
    Error(Instant, Bytes),
    InitError(Instant, Bytes),
}

/// The Runtime API's state: the event of the current run, handed out once.
struct Stub {
    /// The current run; calls of an earlier, killed process are told apart by it.
    run: AtomicU64,
    event: Mutex<Option<String>>,
    function_name: Mutex<String>,
    seen: mpsc::UnboundedSender<(u64, Seen)>,
}

fn request_id(run: u64) -> String {
    format!("00000000-0000-4000-8000-{run:012}")
}

async fn next(State(stub): State<Arc<Stub>>) -> (StatusCode, HeaderMap, String) {
    let now = Instant::now();
    let run = stub.run.load(Ordering::SeqCst);
    let _ = stub.seen.send((run, Seen::Next(now)));
    let event = stub
        .event
        .lock()
        .map(|mut event| event.take())
        .ok()
        .flatten();
    let Some(event) = event else {
        // One event per process: its next request waits until the process is killed, as Lambda
        // would freeze it.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + RUN_TIMEOUT.as_millis();
    let name = stub
        .function_name
        .lock()
        .map(|name| name.clone())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", request_id(run));
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:eu-west-3:123456789012:function:{name}"),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{run:024};Sampled=0"),
    );
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, event)
}

async fn response(
    State(stub): State<Arc<Stub>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let now = Instant::now();
    let _ = stub.seen.send((run_of(&id), Seen::Response(now, body)));
    StatusCode::ACCEPTED
}

async fn error(
    State(stub): State<Arc<Stub>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let now = Instant::now();
    let _ = stub.seen.send((run_of(&id), Seen::Error(now, body)));
    StatusCode::ACCEPTED
}

async fn init_error(State(stub): State<Arc<Stub>>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let run = stub.run.load(Ordering::SeqCst);
    let _ = stub.seen.send((run, Seen::InitError(now, body)));
    StatusCode::ACCEPTED
}

fn run_of(request_id: &str) -> u64 {
    request_id
        .rsplit('-')
        .next()
        .and_then(|run| run.parse().ok())
        .unwrap_or(u64::MAX)
}

/// One run's figures.
struct Run {
    init: Option<Duration>,
    first_response: Option<Duration>,
    outcome: String,
}

struct Function {
    name: String,
    path: PathBuf,
    /// The event, and where it came from: `file`, `route` or `{}`.
    event: (String, &'static str),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let keys = Keys {
        cyber: std::env::var("BENCH_CYBER_KEY").unwrap_or_default(),
        operator: std::env::var("BENCH_OPERATOR_KEY").unwrap_or_default(),
    };
    std::fs::create_dir_all(&args.logs)?;

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let stub = Arc::new(Stub {
        run: AtomicU64::new(0),
        event: Mutex::new(None),
        function_name: Mutex::new(String::new()),
        seen: seen_tx,
    });
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let api = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut functions = Vec::new();
    for spec in &args.functions {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec}: expected name=path"))?;
        functions.push(Function {
            name: name.to_owned(),
            path: PathBuf::from(path),
            event: event_for(name, &args.events, &keys),
        });
    }

    let mut results: Vec<(&Function, Vec<Run>)> = Vec::new();
    for function in &functions {
        let (event, _) = &function.event;
        let log_path = args.logs.join(format!("{}.log", function.name));
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            let run = stub.run.fetch_add(1, Ordering::SeqCst) + 1;
            if let Ok(mut slot) = stub.event.lock() {
                *slot = Some(event.clone());
            }
            if let Ok(mut slot) = stub.function_name.lock() {
                slot.clone_from(&function.name);
            }
            runs.push(measure(function, &api, run, &log_path, &mut seen_rx).await?);
            eprint!(".");
        }
        eprintln!(" {}", function.name);
        results.push((function, runs));
    }

    print_table(&args, &results);
    Ok(())
}

/// Starts the function once and follows it until it posts its response, fails, exits or
/// times out; then kills it.
async fn measure(
    function: &Function,
    api: &str,
    run: u64,
    log_path: &Path,
    seen: &mut mpsc::UnboundedReceiver<(u64, Seen)>,
) -> Result<Run, Box<dyn std::error::Error>> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&function.path)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &function.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", function.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("bench/{run}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;

    let deadline = tokio::time::sleep(RUN_TIMEOUT);
    tokio::pin!(deadline);
    let mut result = Run {
        init: None,
        first_response: None,
        outcome: String::new(),
    };
    loop {
        tokio::select! {
            message = seen.recv() => {
                let Some((of_run, message)) = message else { break };
                if of_run != run {
                    continue;
                }
                match message {
                    Seen::Next(at) => {
                        result.init.get_or_insert(at - started);
                    }
                    Seen::Response(at, body) => {
                        result.first_response = Some(at - started);
                        result.outcome = status_of(&body);
                        break;
                    }
                    Seen::Error(at, body) => {
                        result.first_response = Some(at - started);
                        result.outcome = format!("error {}", error_type(&body));
                        break;
                    }
                    Seen::InitError(at, body) => {
                        result.first_response = Some(at - started);
                        result.outcome = format!("init error {}", error_type(&body));
                        break;
                    }
                }
            }
            status = child.wait() => {
                result.outcome = match status {
                    Ok(status) => format!("exited ({status})"),
                    Err(error) => format!("lost ({error})"),
                };
                break;
            }
            () = &mut deadline => {
                result.outcome = "timed out".to_owned();
                break;
            }
        }
    }
    let _ = child.kill().await;
    Ok(result)
}

/// The HTTP status of an API Gateway response, or `ok` for a function that answers another
/// kind of event.
fn status_of(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => match value.get("statusCode").and_then(Value::as_u64) {
            Some(status) => status.to_string(),
            None => "ok".to_owned(),
        },
        Err(_) => "ok".to_owned(),
    }
}

fn error_type(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            value
                .get("errorType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The event of `name`: a file of the first directory that has one, else one built from the
/// route of the endpoint the function is named after, else `{}` (init is measured all the
/// same; the first response is then likely an error). The second value says which.
fn event_for(name: &str, dirs: &[PathBuf], keys: &Keys) -> (String, &'static str) {
    for dir in dirs {
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.json"))) {
            return (text.replace("{{CYBER_KEY}}", &keys.cyber), "file");
        }
    }
    let endpoint = Endpoint::ALL.into_iter().find(|endpoint| {
        let kebab = endpoint.name().replace('_', "-");
        name == kebab || name == format!("get-{kebab}")
    });
    match endpoint {
        Some(endpoint) => (synthetic_event(endpoint, keys).to_string(), "route"),
        None => ("{}".to_owned(), "{}"),
    }
}

/// The credentials the events carry: `$BENCH_CYBER_KEY`, and `$BENCH_OPERATOR_KEY` for the
/// agent's and operators' endpoints.
struct Keys {
    cyber: String,
    operator: String,
}

/// An API Gateway HTTP API (payload 2.0) event for `endpoint`, with the cyber key (the operator
/// key under `/v1/agent` and `/v1/admin`), made-up path parameters (a real RNE) and an empty
/// JSON object for a body where the method has one.
fn synthetic_event(endpoint: Endpoint, keys: &Keys) -> Value {
    let (method, template) = endpoint.route();
    let key = if template.starts_with("/v1/agent/") || template.starts_with("/v1/admin/") {
        &keys.operator
    } else {
        &keys.cyber
    };
    let mut parameters = serde_json::Map::new();
    let path: Vec<String> = template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let value = match name {
                        "rne" => "0750655E",
                        "id" => "AAAAAAAAAAAAAAAAAAAAAA",
                        _ => "bench",
                    };
                    parameters.insert(name.to_owned(), value.into());
                    value.to_owned()
                }
                None => segment.to_owned(),
            },
        )
        .collect();
    let path = path.join("/");
    let route_key = format!("{method} {template}");
    let has_body = method == http::Method::POST;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "authorization": format!("Bearer {key}"),
            "host": "a1b2c3d4e5.execute-api.eu-west-3.amazonaws.com",
            "user-agent": "bcdi-bench",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.eu-west-3.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "bcdi-bench",
            },
            "requestId": "bench",
            "routeKey": route_key,
            "stage": "$default",
            "time": "03/Dec/2026:12:00:00 +0000",
            "timeEpoch": now,
        },
        "isBase64Encoded": false,
        "pathParameters": parameters,
    });
    if has_body {
        event["body"] = "{}".into();
        event["headers"]["content-type"] = "application/json".into();
    }
    event
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Median, min and max, in milliseconds.
fn spread(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    let median = if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    };
    Some((median, values[0], values[values.len() - 1]))
}

fn print_table(args: &Args, results: &[(&Function, Vec<Run>)]) {
    let init_median = |runs: &[Run]| {
        let mut values: Vec<f64> = runs.iter().filter_map(|run| run.init).map(millis).collect();
        spread(&mut values).map(|(median, _, _)| median)
    };
    let baseline = results
        .iter()
        .find(|(function, _)| function.name == args.baseline)
        .and_then(|(_, runs)| init_median(runs));

    println!(
        "Runs per function: {}. First response includes the dependency: {}.",
        args.runs, args.dependency
    );
    println!(
        "Times in ms from process start (median / min / max); ratio = init median ÷ {}'s.",
        args.baseline
    );
    println!();
    println!("| function | event | size | init | first response | init ratio | outcomes |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for (function, runs) in results {
        let size = std::fs::metadata(&function.path)
            .map(|meta| format!("{:.1} MB", meta.len() as f64 / 1e6))
            .unwrap_or_else(|_| "?".to_owned());
        let (_, source) = &function.event;
        let mut inits: Vec<f64> = runs.iter().filter_map(|run| run.init).map(millis).collect();
        let mut responses: Vec<f64> = runs
            .iter()
            .filter_map(|run| run.first_response)
            .map(millis)
            .collect();
        let cell = |figures: Option<(f64, f64, f64)>| match figures {
            Some((median, min, max)) => format!("{median:.1} / {min:.1} / {max:.1}"),
            None => "–".to_owned(),
        };
        let ratio = match (spread(&mut inits.clone()), baseline) {
            (Some((median, _, _)), Some(baseline)) if baseline > 0.0 => {
                format!("{:.2}×", median / baseline)
            }
            _ => "–".to_owned(),
        };
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for run in runs {
            *outcomes.entry(run.outcome.as_str()).or_default() += 1;
        }
        let outcomes: Vec<String> = outcomes
            .iter()
            .map(|(outcome, count)| format!("{outcome} ×{count}"))
            .collect();
        println!(
            "| {} | {source} | {size} | {} | {} | {ratio} | {} |",
            function.name,
            cell(spread(&mut inits)),
            cell(spread(&mut responses)),
            outcomes.join(", ")
        );
    }
}
