//! The hosting agent's endpoints (operator key): claim a job with a long poll, heartbeat it,
//! succeed or fail it. Each outcome releases the workflow task waiting on the job's token.
//!
//! The `id` an agent gets is `<job key>.<lease id>`: every claim makes a new one, so the calls
//! of an agent whose lease lapsed and whose job went to another agent are refused (409), and so
//! are repeated calls once the job is finished. Every check happens before anything changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::body::JsonObject;
use super::{json, ApiError, App, Caller, ErrorCode, Request, Response};
use crate::domain::{Instant, Status};
use crate::ports::{Job, JobKind, JobState, Lease, StoreError, TaskTokenError};
use crate::steps::names;

/// The longest a claim may wait for a job, as the contract fixes it.
pub const MAX_WAIT_SECONDS: u64 = 25;

/// How often a waiting claim looks for a job.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long a download URL in a mount job lasts: a download starts well within it.
const DOWNLOAD_URL_SECONDS: u64 = 3600;

/// Longest `detail` an agent may report.
const MAX_DETAIL_CHARS: usize = 2000;

/// Furthest ahead a heartbeat's `eta` may be: no install or mount step takes a month, so a later
/// one is a broken agent clock, and would show the school a meaningless date.
pub const MAX_ETA_DAYS: u64 = 30;

impl Caller {
    pub fn must_be_operator(&self) -> Result<(), ApiError> {
        match self {
            Caller::Operator => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }
}

impl App {
    /// `POST /v1/agent/jobs/claim` `{"kinds", "wait_seconds"}`: 200 job, or 204 when none
    /// came within the wait.
    pub(super) async fn claim_job(&self, request: &Request) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_operator()?;
        let (kinds, wait) = parse_claim(request.body())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);

        loop {
            if let Some(response) = self.claim_one(&kinds).await? {
                return Ok(response);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let mut response = Response::new(bytes::Bytes::new());
                *response.status_mut() = StatusCode::NO_CONTENT;
                return Ok(response);
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// Leases one job, if any can be handed out now. A job whose task is gone (it timed out
    /// while no agent ran) is cancelled on the way and the next one is tried.
    async fn claim_one(&self, kinds: &[JobKind]) -> Result<Option<Response>, ApiError> {
        loop {
            let now = Instant::now();
            let lease = Lease::new(now.plus_seconds(self.config.job_lease.as_secs()));
            let Some(job) = self.jobs.claim(kinds, &lease, now).await? else {
                return Ok(None);
            };
            tracing::Span::current().record("rne", job.rne.as_str());

            // A claim is a sign of life for the workflow too.
            match self.workflows.send_task_heartbeat(&job.task_token).await {
                Ok(()) => {}
                Err(TaskTokenError::Gone) => {
                    self.jobs.cancel(&job.key, now).await?;
                    tracing::info!(job = %job.key, "job cancelled: its task is gone");
                    continue;
                }
                // The lease lapses if the agent never comes back; the workflow's own timeout
                // still holds. Better to let the agent start than to make it wait.
                Err(TaskTokenError::Unavailable(error)) => {
                    tracing::warn!(job = %job.key, error = %error, "heartbeat at claim failed");
                }
            }

            let input = self.agent_input(&job).await?;
            tracing::info!(job = %job.key, kind = job.kind.as_str(), "job claimed");
            return Ok(Some(json(
                StatusCode::OK,
                &json!({
                    "id": format!("{}.{}", job.key, lease.id),
                    "kind": job.kind.as_str(),
                    "rne": job.rne,
                    "input": input,
                    "lease_expires_at": lease.expires_at.rfc3339(),
                }),
            )));
        }
    }

    /// The job's input as the agent gets it: a mount's archives get download URLs signed now.
    async fn agent_input(&self, job: &Job) -> Result<Value, ApiError> {
        let mut input = job.input.clone();
        if job.kind == JobKind::Mount {
            if let Some(bases) = input.get_mut("bases").and_then(Value::as_array_mut) {
                for base in bases {
                    let Some(object) = base.as_object_mut() else {
                        continue;
                    };
                    let Some(Value::String(key)) = object.remove("key") else {
                        continue;
                    };
                    let url = self
                        .storage
                        .presign_get(&key, Duration::from_secs(DOWNLOAD_URL_SECONDS))
                        .await
                        .map_err(|error| ApiError::unavailable(&error))?;
                    object.insert("url".to_owned(), Value::String(url));
                }
            }
        }
        Ok(input)
    }

    /// `POST /v1/agent/jobs/{id}/heartbeat` `{"eta"}`: 200 `{"lease_expires_at"}`.
    pub(super) async fn heartbeat_job(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_operator()?;
        // A refused body renews nothing: the 400 comes before the lease is touched.
        let now = Instant::now();
        let eta = parse_heartbeat(request.body(), now)?;
        let (job, lease_id) = self.leased_job(id).await?;

        self.release_token(&job, Outcome::Heartbeat).await?;
        let expires_at = now.plus_seconds(self.config.job_lease.as_secs());
        self.jobs
            .renew(&job.key, &lease_id, now, expires_at)
            .await
            .map_err(lease_conflict)?;

        if let Some(eta) = eta {
            let status = match job.kind {
                JobKind::Install => Status::Installing,
                JobKind::Mount => Status::Mounting,
            };
            match self.store.set_next_step_at(&job.rne, status, eta).await {
                Ok(()) => {}
                // The establishment moved on; the workflow will say why.
                Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(json(
            StatusCode::OK,
            &json!({ "lease_expires_at": expires_at.rfc3339() }),
        ))
    }

    /// `POST /v1/agent/jobs/{id}/succeed` `{"result"}`: 200, and the workflow goes on.
    pub(super) async fn succeed_job(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_operator()?;
        let result = parse_result(request.body())?;
        let (job, lease_id) = self.leased_job(id).await?;
        let result = match job.kind {
            JobKind::Install => validate_install(&result)?,
            JobKind::Mount => validate_mount(&result, &job)?,
        };

        self.release_token(&job, Outcome::Success(&result)).await?;
        self.finish(&job, &lease_id, JobState::Succeeded).await
    }

    /// `POST /v1/agent/jobs/{id}/fail` `{"reason", "detail"}`: 200, and the workflow records
    /// the failure (`E1` or `E2` with that reason).
    pub(super) async fn fail_job(&self, request: &Request, id: &str) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_operator()?;
        let (reason, detail) = parse_failure(request.body())?;
        let (job, lease_id) = self.leased_job(id).await?;

        let cause = json!({ "reason": reason, "detail": detail }).to_string();
        self.release_token(&job, Outcome::Failure(&cause)).await?;
        tracing::info!(job = %job.key, reason = %reason, "job failed by its agent");
        self.finish(&job, &lease_id, JobState::Failed).await
    }

    /// The job named by `id` if it is leased under that id now; 404 for a job that never
    /// existed, 409 for one no longer leased to this caller.
    async fn leased_job(&self, id: &str) -> Result<(Job, String), ApiError> {
        let (key, lease_id) = id
            .rsplit_once('.')
            .filter(|(key, lease)| !key.is_empty() && !lease.is_empty())
            .ok_or_else(|| ApiError::not_found("job"))?;
        let job = self
            .jobs
            .get(key)
            .await?
            .ok_or_else(|| ApiError::not_found("job"))?;
        tracing::Span::current().record("rne", job.rne.as_str());
        if !job.is_leased_by(lease_id, Instant::now()) {
            return Err(not_leased(&job));
        }
        Ok((job, lease_id.to_owned()))
    }

    /// Sends the job's outcome to its workflow. A task that is gone (it timed out, or its
    /// execution ended) cancels the job: the caller gets 409 and the workflow has moved on.
    async fn release_token(&self, job: &Job, outcome: Outcome<'_>) -> Result<(), ApiError> {
        let token = &job.task_token;
        let sent = match outcome {
            Outcome::Heartbeat => self.workflows.send_task_heartbeat(token).await,
            Outcome::Success(result) => self.workflows.send_task_success(token, result).await,
            Outcome::Failure(cause) => {
                self.workflows
                    .send_task_failure(token, names::JOB_FAILED, cause)
                    .await
            }
        };
        match sent {
            Ok(()) => Ok(()),
            Err(TaskTokenError::Gone) => {
                self.jobs.cancel(&job.key, Instant::now()).await?;
                tracing::info!(job = %job.key, "job cancelled: its task is gone");
                Err(ApiError::new(
                    ErrorCode::Conflict,
                    "The workflow no longer waits for this job (it timed out or ended).",
                ))
            }
            Err(TaskTokenError::Unavailable(error)) => Err(ApiError::unavailable(&error)),
        }
    }

    async fn finish(
        &self,
        job: &Job,
        lease_id: &str,
        state: JobState,
    ) -> Result<Response, ApiError> {
        match self
            .jobs
            .finish(&job.key, lease_id, state, Instant::now())
            .await
        {
            Ok(()) => {}
            // The outcome reached the workflow, which is what counts; the record follows.
            Err(StoreError::Conflict) => {
                tracing::warn!(job = %job.key, "job changed while it was finished");
            }
            Err(error) => {
                tracing::error!(job = %job.key, error = %error, "finished job not recorded");
            }
        }
        Ok(json(
            StatusCode::OK,
            &json!({ "kind": job.kind.as_str(), "rne": job.rne, "state": state.as_str() }),
        ))
    }
}

/// What an agent's call tells the workflow.
enum Outcome<'a> {
    Heartbeat,
    Success(&'a Value),
    /// The cause: `{"reason", "detail"}` as JSON text.
    Failure(&'a str),
}

fn not_leased(job: &Job) -> ApiError {
    let message = if job.state.is_finished() {
        "This job is finished; nothing was changed."
    } else {
        "This job is no longer leased under this id: the lease lapsed and the job may have \
         been handed to another agent. Nothing was changed."
    };
    ApiError::new(ErrorCode::Conflict, message)
}

fn lease_conflict(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict => ApiError::new(
            ErrorCode::Conflict,
            "This job is no longer leased under this id; nothing was changed.",
        ),
        other => other.into(),
    }
}

/// A request body read twice: `JsonObject` refuses unknown fields and non-objects, then the
/// typed fields it does not read (numbers, arrays, objects) come from the raw object. An empty
/// body stands for `{}` (`JsonObject`'s rule).
struct Body {
    fields: Map<String, Value>,
    errors: BTreeMap<String, String>,
}

impl Body {
    fn parse(body: &[u8], known: &[&str]) -> Result<Self, ApiError> {
        let errors = match JsonObject::parse(body, known)?.finish() {
            Ok(()) => BTreeMap::new(),
            Err(error) => error.fields,
        };
        let fields = match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        Ok(Self { fields, errors })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|value| !value.is_null())
    }

    fn fail(&mut self, name: &str, problem: &str) {
        self.errors.insert(name.to_owned(), problem.to_owned());
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

fn parse_claim(body: &[u8]) -> Result<(Vec<JobKind>, u64), ApiError> {
    let mut body = Body::parse(body, &["kinds", "wait_seconds"])?;
    let kinds = match body.get("kinds") {
        None => JobKind::ALL.to_vec(),
        Some(Value::Array(items)) if !items.is_empty() => {
            let kinds: Option<BTreeSet<_>> = items
                .iter()
                .map(|item| item.as_str().and_then(|kind| JobKind::parse(kind).ok()))
                .map(|kind| kind.map(|kind| kind.as_str()))
                .collect();
            match kinds {
                Some(kinds) => kinds
                    .into_iter()
                    .filter_map(|kind| JobKind::parse(kind).ok())
                    .collect(),
                None => {
                    body.fail("kinds", "may list only \"install\" and \"mount\"");
                    Vec::new()
                }
            }
        }
        Some(_) => {
            body.fail("kinds", "must be a non-empty array of job kinds");
            Vec::new()
        }
    };
    let wait = match body.get("wait_seconds") {
        None => 0,
        Some(value) => match value.as_u64() {
            Some(wait) if wait <= MAX_WAIT_SECONDS => wait,
            _ => {
                body.fail(
                    "wait_seconds",
                    &format!("must be a whole number from 0 to {MAX_WAIT_SECONDS}"),
                );
                0
            }
        },
    };
    body.finish()?;
    Ok((kinds, wait))
}

/// The optional `eta`, which must lie between `now` and `MAX_ETA_DAYS` ahead.
fn parse_heartbeat(body: &[u8], now: Instant) -> Result<Option<Instant>, ApiError> {
    let mut body = Body::parse(body, &["eta"])?;
    let latest = now.plus_seconds(MAX_ETA_DAYS * 24 * 3600);
    let eta = match body.get("eta") {
        None => None,
        Some(Value::String(text)) => match Instant::parse_rfc3339(text) {
            Some(eta) if eta < now => {
                body.fail("eta", "must not be in the past");
                None
            }
            Some(eta) if eta > latest => {
                body.fail("eta", &format!("must be at most {MAX_ETA_DAYS} days ahead"));
                None
            }
            Some(eta) => Some(eta),
            None => {
                body.fail("eta", "must be an RFC 3339 instant");
                None
            }
        },
        Some(_) => {
            body.fail("eta", "must be an RFC 3339 instant");
            None
        }
    };
    body.finish()?;
    Ok(eta)
}

fn parse_result(body: &[u8]) -> Result<Value, ApiError> {
    let mut body = Body::parse(body, &["result"])?;
    let result = match body.get("result") {
        Some(Value::Object(result)) => Value::Object(result.clone()),
        Some(_) => {
            body.fail("result", "must be an object");
            Value::Null
        }
        None => {
            body.fail("result", "is required");
            Value::Null
        }
    };
    body.finish()?;
    Ok(result)
}

fn parse_failure(body: &[u8]) -> Result<(String, String), ApiError> {
    let mut body = Body::parse(body, &["reason", "detail"])?;
    let reason = match body.get("reason").and_then(Value::as_str) {
        Some(reason) if crate::steps::is_snake_case(reason) => reason.to_owned(),
        _ => {
            body.fail(
                "reason",
                "is required: a snake_case code of at most 64 characters",
            );
            String::new()
        }
    };
    let detail = match body.get("detail") {
        None => String::new(),
        Some(Value::String(detail)) if detail.chars().count() <= MAX_DETAIL_CHARS => detail.clone(),
        Some(_) => {
            body.fail(
                "detail",
                &format!("must be a string of at most {MAX_DETAIL_CHARS} characters"),
            );
            String::new()
        }
    };
    body.finish()?;
    Ok((reason, detail))
}

/// An install result: `{"host", "port"}`, nothing else.
fn validate_install(result: &Value) -> Result<Value, ApiError> {
    let mut errors = BTreeMap::new();
    unknown_fields(result, &["host", "port"], "result", &mut errors);
    let host = host(result.get("host"), "result.host", &mut errors);
    let port = port(result.get("port"), "result.port", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    Ok(json!({ "host": host, "port": port }))
}

/// A mount result: the connection, and a state for exactly the job's bases.
fn validate_mount(result: &Value, job: &Job) -> Result<Value, ApiError> {
    let mut errors = BTreeMap::new();
    unknown_fields(result, &["connection", "bases"], "result", &mut errors);

    let connection = result.get("connection").unwrap_or(&Value::Null);
    if !connection.is_object() {
        errors.insert("result.connection".into(), "must be an object".into());
    }
    unknown_fields(
        connection,
        &["host", "port", "client_download_url"],
        "result.connection",
        &mut errors,
    );
    let host = host(
        connection.get("host"),
        "result.connection.host",
        &mut errors,
    );
    let port = port(
        connection.get("port"),
        "result.connection.port",
        &mut errors,
    );
    let client_download_url = match connection
        .get("client_download_url")
        .and_then(Value::as_str)
    {
        Some(url)
            if (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 2048
                && !url.chars().any(char::is_whitespace) =>
        {
            url.to_owned()
        }
        _ => {
            errors.insert(
                "result.connection.client_download_url".into(),
                "must be an http(s) URL".into(),
            );
            String::new()
        }
    };

    let known: BTreeSet<&str> = job
        .input
        .get("bases")
        .and_then(Value::as_array)
        .map(|bases| {
            bases
                .iter()
                .filter_map(|base| base.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let mut reported = BTreeSet::new();
    let mut bases = Vec::new();
    match result.get("bases").and_then(Value::as_array) {
        None => {
            errors.insert("result.bases".into(), "must be an array".into());
        }
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let place = format!("result.bases[{i}]");
                unknown_fields(item, &["name", "state", "detail"], &place, &mut errors);
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                if !known.contains(name) {
                    errors.insert(format!("{place}.name"), "is not a base of this job".into());
                } else if !reported.insert(name) {
                    errors.insert(format!("{place}.name"), "is reported twice".into());
                }
                let state = item.get("state").and_then(Value::as_str).unwrap_or("");
                if !matches!(state, "INSTALLED" | "ERROR") {
                    errors.insert(
                        format!("{place}.state"),
                        "must be INSTALLED or ERROR".into(),
                    );
                }
                let detail = match item.get("detail") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(detail)) if detail.chars().count() <= MAX_DETAIL_CHARS => {
                        Some(detail.clone())
                    }
                    Some(_) => {
                        errors.insert(format!("{place}.detail"), "must be a short string".into());
                        None
                    }
                };
                bases.push(json!({ "name": name, "state": state, "detail": detail }));
            }
            let missing: Vec<&str> = known.difference(&reported).copied().collect();
            if !missing.is_empty() {
                errors.insert(
                    "result.bases".into(),
                    format!(
                        "must report every base of the job; missing: {}",
                        missing.join(", ")
                    ),
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    Ok(json!({
        "connection": { "host": host, "port": port, "client_download_url": client_download_url },
        "bases": bases,
    }))
}

fn unknown_fields(
    value: &Value,
    known: &[&str],
    place: &str,
    errors: &mut BTreeMap<String, String>,
) {
    if let Some(object) = value.as_object() {
        for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
            errors.insert(format!("{place}.{key}"), "unknown field".into());
        }
    }
}

fn host(value: Option<&Value>, place: &str, errors: &mut BTreeMap<String, String>) -> String {
    match value.and_then(Value::as_str) {
        Some(host)
            if (1..=253).contains(&host.len())
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':')) =>
        {
            host.to_owned()
        }
        _ => {
            errors.insert(
                place.to_owned(),
                "must be a host name or an IP address".into(),
            );
            String::new()
        }
    }
}

fn port(value: Option<&Value>, place: &str, errors: &mut BTreeMap<String, String>) -> u16 {
    match value
        .and_then(Value::as_u64)
        .and_then(|port| u16::try_from(port).ok())
    {
        Some(port) if port > 0 => port,
        _ => {
            errors.insert(place.to_owned(), "must be a port number, 1 to 65535".into());
            0
        }
    }
}
