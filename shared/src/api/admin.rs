//! The operators' endpoints (operator key): establishments by status, through the store's
//! index, and a retry of a failed installation or mounting.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{json, Value};

use super::body::JsonObject;
use super::{json, ApiError, App, ErrorCode, Request, Response};
use crate::domain::{Establishment, Rne, Status};
use crate::ports::{Started, StoreError, WorkflowKind, WorkflowRun};

/// Items per page of the listing unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 100;

/// Rounds of a retry that lost a race to another write (another retry, a step of the workflow),
/// or met run names used before; more in a row are answered 503, to be tried again.
const MAX_RETRY_ROUNDS: usize = 5;

impl App {
    /// `GET /v1/admin/establishments?status=E1&cursor=…&limit=…`: 200 `{"items",
    /// "next_cursor"}`, oldest change first.
    pub(super) async fn list_establishments(
        &self,
        request: &Request,
    ) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_operator()?;
        let query = parse_query(request.uri().query().unwrap_or(""))?;
        let page = self
            .store
            .list_by_status(query.status, query.cursor.as_deref(), query.limit)
            .await?;
        let items: Vec<Value> = page.items.iter().map(operator_view).collect();
        Ok(json(
            StatusCode::OK,
            &json!({ "items": items, "next_cursor": page.next }),
        ))
    }

    /// `POST /v1/admin/establishments/{rne}/retry`: 202; a new provisioning from `E1`, a new
    /// mounting of the last submitted archives from `E2`, 409 `not_ready` otherwise. Each
    /// accepted retry gets a new attempt, counted in the store by the same conditional write
    /// that accepts it, and its run is named by that attempt; a repeated retry while that run
    /// runs and has not moved the status yet answers with the same attempt and starts nothing.
    /// The run's first step moves the status.
    pub(super) async fn retry_establishment(
        &self,
        request: &Request,
        rne: &str,
    ) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_operator()?;
        let rne = Rne::parse(rne).map_err(|error| {
            ApiError::invalid_fields([("rne".to_owned(), error.0)].into())
                .with_message("The RNE/UAI code in the path is not valid.")
        })?;
        tracing::Span::current().record("rne", rne.as_str());
        JsonObject::parse(request.body(), &[])?.finish()?;

        // A round that loses a race to another retry reads the establishment again.
        for _ in 0..MAX_RETRY_ROUNDS {
            let establishment = self
                .store
                .get(&rne)
                .await?
                .ok_or_else(|| ApiError::not_found("establishment"))?;
            let (kind, attempt, input) = match establishment.status {
                Status::InstallFailed => (
                    WorkflowKind::Provisioning,
                    establishment.provisioning_attempt,
                    json!({}),
                ),
                Status::MountFailed if !establishment.bases.is_empty() => (
                    WorkflowKind::Mounting,
                    establishment.mounting_attempt,
                    json!({ "files": self.last_files(&establishment).await? }),
                ),
                status => {
                    return Err(ApiError::new(
                        ErrorCode::NotReady,
                        format!(
                            "Only E1 and E2 can be retried; this establishment is in {status}."
                        ),
                    ))
                }
            };
            let retried = self.store.retried_attempt(&rne, kind).await?;

            if retried > attempt {
                // A retry was accepted and its run has not moved the establishment yet: this
                // repeats it (or its start failed), and starting its run again starts it once.
                let run = WorkflowRun {
                    kind,
                    rne: rne.clone(),
                    attempt: retried,
                };
                if self.workflows.start(&run, input.clone()).await? == Started::Running {
                    tracing::info!(workflow = %run.name(), "repeated retry: its run is running");
                    return Ok(retry_accepted(&establishment, &run));
                }
                // That run ended before its first step recorded its attempt (it failed for
                // good): its name can never run again, so this retry takes the next attempt.
            }

            let run = WorkflowRun {
                kind,
                rne: rne.clone(),
                attempt: retried.max(attempt) + 1,
            };
            match self
                .store
                .accept_retry(&establishment, kind, retried, run.attempt)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
            match self.workflows.start(&run, input).await? {
                Started::Running => {
                    tracing::info!(workflow = %run.name(), "retry started by an operator");
                    return Ok(retry_accepted(&establishment, &run));
                }
                // A run of that name ended already (named before attempts were counted here):
                // the next round takes the attempt after it.
                Started::Ended => continue,
            }
        }
        Err(ApiError::unavailable(
            &"too many concurrent retries of one establishment",
        ))
    }

    /// The archives of the last mounting, as the mounting workflow takes them; their file names
    /// come from the uploads when they are still listed there.
    async fn last_files(&self, establishment: &Establishment) -> Result<Vec<Value>, ApiError> {
        let uploaded = self.uploads.files(&establishment.rne).await?;
        Ok(establishment
            .bases
            .iter()
            .map(|base| {
                let name = uploaded
                    .iter()
                    .find(|file| file.id == base.id)
                    .map(|file| file.name.clone())
                    .unwrap_or_else(|| format!("{}.zip", base.name));
                json!({
                    "id": base.id,
                    "name": name,
                    "base": base.name,
                    "size": base.size,
                    "esidoc_export": base.esidoc_export,
                })
            })
            .collect())
    }
}

struct Query {
    status: Status,
    cursor: Option<String>,
    limit: usize,
}

fn parse_query(query: &str) -> Result<Query, ApiError> {
    let mut errors = BTreeMap::new();
    let mut values = BTreeMap::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(value) {
            Some(value) if matches!(name, "status" | "cursor" | "limit") => {
                if values.insert(name.to_owned(), value).is_some() {
                    errors.insert(name.to_owned(), "is given twice".to_owned());
                }
            }
            Some(_) => {
                errors.insert(name.to_owned(), "unknown parameter".to_owned());
            }
            None => {
                errors.insert(name.to_owned(), "is not valid percent-encoding".to_owned());
            }
        }
    }
    let status = match values.get("status").map(|status| Status::parse(status)) {
        Some(Ok(status)) => Some(status),
        Some(Err(error)) => {
            errors.insert("status".to_owned(), error.0);
            None
        }
        None => {
            errors.insert("status".to_owned(), "is required".to_owned());
            None
        }
    };
    let limit = match values.get("limit") {
        None => DEFAULT_PAGE,
        Some(limit) => match limit.parse::<usize>() {
            Ok(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
            _ => {
                errors.insert(
                    "limit".to_owned(),
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                );
                DEFAULT_PAGE
            }
        },
    };
    let cursor = values
        .get("cursor")
        .filter(|cursor| !cursor.is_empty())
        .cloned();
    match status {
        Some(status) if errors.is_empty() => Ok(Query {
            status,
            cursor,
            limit,
        }),
        _ => {
            Err(ApiError::invalid_fields(errors).with_message("The query has invalid parameters."))
        }
    }
}

/// `%XX` and `+` decoded; `None` for broken escapes or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// The 202 of an accepted retry.
fn retry_accepted(establishment: &Establishment, run: &WorkflowRun) -> Response {
    json(
        StatusCode::ACCEPTED,
        &json!({
            "rne": establishment.rne,
            "status": establishment.status,
            "workflow": run.kind.as_str(),
            "attempt": run.attempt,
        }),
    )
}

/// What an operator needs to follow an establishment; never its licence secrets.
fn operator_view(establishment: &Establishment) -> Value {
    let mut view = json!({
        "rne": establishment.rne,
        "status": establishment.status,
        "status_changed_at": establishment.status_changed_at.rfc3339(),
        "next_step_at": establishment
            .next_step_at
            .filter(|_| establishment.status.has_next_step())
            .map(|at| at.rfc3339()),
        "provisioning_attempt": establishment.provisioning_attempt,
        "mounting_attempt": establishment.mounting_attempt,
        "bases": establishment.bases,
    });
    if let (Status::InstallFailed | Status::MountFailed, Some(failure)) =
        (establishment.status, &establishment.failure)
    {
        view["error"] = json!({
            "code": establishment.status,
            "reason": failure.reason,
            "detail": failure.detail,
        });
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_needs_a_known_status_and_refuses_unknown_parameters() {
        let query = parse_query("status=E1&cursor=abc&limit=10").expect("valid");
        assert_eq!(query.status, Status::InstallFailed);
        assert_eq!(query.cursor.as_deref(), Some("abc"));
        assert_eq!(query.limit, 10);
        for bad in [
            "",
            "status=E9",
            "status=E1&foo=1",
            "status=E1&limit=0",
            "status=%E1",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_query("status=E%32").expect("decoded").status,
            Status::MountFailed
        );
    }
}
