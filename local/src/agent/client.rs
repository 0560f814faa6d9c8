//! The agent's side of the contract's job endpoints: claim, heartbeat, succeed, fail.

use std::time::Duration;

use bcdi_shared::domain::Secret;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How a call went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 401 or 403: the operator key is wrong; retrying will not help.
    #[error("the API refused the operator key (HTTP {0})")]
    Refused(u16),
    /// 409 (or 404): the job is no longer leased to this agent, or is finished.
    #[error("the job is no longer leased to this agent")]
    Gone,
    /// 400: the API refused what was sent, saying why.
    #[error("the API refused the request: {0}")]
    Invalid(String),
    /// The network or the API failed; a later attempt may work.
    #[error("{0}")]
    Transient(String),
}

/// A job as claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The id to send back: the job's key and this claim's lease.
    pub id: String,
    pub kind: String,
    pub rne: String,
    /// May hold licence secrets and presigned URLs: never logged.
    pub input: Value,
    /// How long the lease lasts from the claim, if the API said when it ends.
    pub lease: Option<Duration>,
}

impl ClaimedJob {
    /// The job's key without the lease id: what logs name.
    pub fn key(&self) -> &str {
        self.id.rsplit_once('.').map_or(&self.id, |(key, _)| key)
    }
}

/// Calls the API with the operator key. Cheap to clone.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    api: String,
    authorization: std::sync::Arc<str>,
}

impl AgentClient {
    pub fn new(api: &str, key: &Secret) -> Result<Self, String> {
        let api = api.trim_end_matches('/').to_owned();
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(format!("--api must be an http(s) URL, not {api:?}"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(Self {
            http,
            api,
            authorization: format!("Bearer {}", key.expose()).into(),
        })
    }

    /// `POST /v1/agent/jobs/claim`: a job, or `None` when none came within `wait`.
    pub async fn claim(
        &self,
        kinds: &[&str],
        wait: u64,
    ) -> Result<Option<ClaimedJob>, ClientError> {
        let body = json!({ "kinds": kinds, "wait_seconds": wait });
        // The server holds the request up to `wait`; leave room for a slow answer.
        let timeout = Duration::from_secs(wait + 30);
        let (status, body) = self.post("/v1/agent/jobs/claim", &body, timeout).await?;
        match status {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK => parse_job(&body).map(Some),
            other => Err(error_for(other, &body)),
        }
    }

    /// `POST /v1/agent/jobs/{id}/heartbeat`: the lease's new end, as the API wrote it.
    pub async fn heartbeat(&self, id: &str) -> Result<Option<String>, ClientError> {
        let path = format!("/v1/agent/jobs/{id}/heartbeat");
        let (status, body) = self.post(&path, &json!({}), CALL_TIMEOUT).await?;
        match status {
            StatusCode::OK => Ok(body
                .get("lease_expires_at")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            other => Err(error_for(other, &body)),
        }
    }

    /// `POST /v1/agent/jobs/{id}/succeed`.
    pub async fn succeed(&self, id: &str, result: &Value) -> Result<(), ClientError> {
        let path = format!("/v1/agent/jobs/{id}/succeed");
        self.finish(&path, &json!({ "result": result })).await
    }

    /// `POST /v1/agent/jobs/{id}/fail`.
    pub async fn fail(&self, id: &str, reason: &str, detail: &str) -> Result<(), ClientError> {
        let path = format!("/v1/agent/jobs/{id}/fail");
        self.finish(&path, &json!({ "reason": reason, "detail": detail }))
            .await
    }

    async fn finish(&self, path: &str, body: &Value) -> Result<(), ClientError> {
        let (status, body) = self.post(path, body, CALL_TIMEOUT).await?;
        match status {
            StatusCode::OK => Ok(()),
            other => Err(error_for(other, &body)),
        }
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<(StatusCode, Value), ClientError> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .header(reqwest::header::AUTHORIZATION, &*self.authorization)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| ClientError::Transient(error.without_url().to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ClientError::Transient(error.without_url().to_string()))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// Calls other than a claim get this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn error_for(status: StatusCode, body: &Value) -> ClientError {
    match status.as_u16() {
        401 | 403 => ClientError::Refused(status.as_u16()),
        404 | 409 => ClientError::Gone,
        400 | 413 => ClientError::Invalid(explain(body)),
        _ => ClientError::Transient(format!("HTTP {}: {}", status.as_u16(), explain(body))),
    }
}

/// The contract's error body in one line: the message and the fields at fault.
fn explain(body: &Value) -> String {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    match body.get("fields").and_then(Value::as_object) {
        Some(fields) if !fields.is_empty() => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(name, problem)| format!("{name} {}", problem.as_str().unwrap_or("?")))
                .collect();
            format!("{message} ({})", fields.join("; "))
        }
        _ => message.to_owned(),
    }
}

fn parse_job(body: &Value) -> Result<ClaimedJob, ClientError> {
    let text = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Transient(format!("a claimed job without `{name}`")))
    };
    let lease = body
        .get("lease_expires_at")
        .and_then(Value::as_str)
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        .map(|end| {
            let left = end.as_millisecond() - jiff::Timestamp::now().as_millisecond();
            Duration::from_millis(u64::try_from(left).unwrap_or(0))
        });
    // The id goes into URL paths as is.
    let id = text("id")?;
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(ClientError::Transient(format!(
            "a claimed job with the id {id:?}"
        )));
    }
    Ok(ClaimedJob {
        id,
        kind: text("kind")?,
        rne: text("rne")?,
        input: body.get("input").cloned().unwrap_or(Value::Null),
        lease,
    })
}
