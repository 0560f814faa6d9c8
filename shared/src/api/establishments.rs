//! `GET /v1/establishments/{rne}`, `POST /v1/establishments` and the history.

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use super::body::JsonObject;
use super::{json, messages, ApiError, App, Request, Response};
use crate::domain::{
    Establishment, Griffe, Instant, LicenceCode, NewEstablishment, Rne, Secret, Status, Version,
};
use crate::ports::{Started, StoreError, WorkflowError, WorkflowKind, WorkflowRun};

/// How many times a creation re-reads and retries when concurrent requests race on one RNE.
const MAX_RACES: usize = 25;

/// How many attempts a creation tries when their provisioning runs turn out to have ended
/// (each the run of an undone creation): more than a client's retries can have left.
const MAX_ENDED_RUNS: usize = 5;

/// Establishment keys start with this, so that a leaked key is recognisable.
pub const ESTABLISHMENT_KEY_PREFIX: &str = "bcdi_est";

impl App {
    pub(super) async fn get_establishment(
        &self,
        request: &Request,
        rne: &str,
    ) -> Result<Response, ApiError> {
        let caller = self.authenticate(request.headers()).await?;
        let rne = parse_rne(rne)?;
        caller.may_read(&rne)?;
        let establishment = self
            .store
            .get(&rne)
            .await?
            .ok_or_else(|| ApiError::not_found("establishment"))?;
        Ok(json(StatusCode::OK, &view(&establishment, Instant::now())))
    }

    pub(super) async fn get_history(
        &self,
        request: &Request,
        rne: &str,
    ) -> Result<Response, ApiError> {
        let caller = self.authenticate(request.headers()).await?;
        let rne = parse_rne(rne)?;
        caller.may_read(&rne)?;
        let events = self.store.history(&rne).await?;
        if events.is_empty() {
            return Err(ApiError::not_found("establishment"));
        }
        let events: Vec<Value> = events
            .iter()
            .map(|event| {
                json!({
                    "status": event.status,
                    "previous": event.previous,
                    "at": event.at.rfc3339(),
                    "timestamp": event.at.unix(),
                })
            })
            .collect();
        Ok(json(StatusCode::OK, &json!({ "events": events })))
    }

    /// Creates an establishment and starts its provisioning, or, for the same body again,
    /// issues a new key and changes nothing else.
    pub(super) async fn create_establishment(
        &self,
        request: &Request,
    ) -> Result<Response, ApiError> {
        self.authenticate(request.headers())
            .await?
            .must_be_cyber()?;
        let new = parse_new_establishment(request.body())?;
        tracing::Span::current().record("rne", new.rne.as_str());

        for _ in 0..MAX_RACES {
            let key = Secret::generate(ESTABLISHMENT_KEY_PREFIX);
            let outcome = match self.store.get(&new.rne).await? {
                None => self.create_new(&new, &key).await,
                Some(existing) => self.reissue_key(existing, &new, &key).await,
            };
            match outcome {
                Ok(establishment) => {
                    let timing = timing(&establishment);
                    return Ok(json(
                        StatusCode::OK,
                        &json!({
                            "rne": establishment.rne,
                            "key": key.expose(),
                            "status": establishment.status,
                            "timestamp": timing["timestamp"],
                            "next_step_at": timing["next_step_at"],
                        }),
                    ));
                }
                // Another request created or re-keyed this establishment meanwhile: read again.
                Err(Race::Lost) => tokio::time::sleep(jitter()).await,
                Err(Race::Failed(error)) => return Err(error),
            }
        }
        Err(ApiError::unavailable(
            &"too many concurrent requests for one establishment",
        ))
    }

    async fn create_new(
        &self,
        new: &NewEstablishment,
        key: &Secret,
    ) -> Result<Establishment, Race> {
        let now = Instant::now();
        let ready_at = now.plus_seconds(self.config.install_eta.as_secs());
        let mut establishment = Establishment::create(new.clone(), key.digest(), now, ready_at);

        // A run's name serves once. A creation undone after a failed start may still have got
        // its run started (the engine answered late), which then ended on finding no record:
        // this creation takes the next attempt, whose run no name has used.
        for _ in 0..MAX_ENDED_RUNS {
            self.store.create(&establishment).await?;
            match self.start_provisioning(&establishment).await {
                Ok(Started::Running) => {
                    tracing::info!(to = %Status::Installing, "establishment created, provisioning started");
                    return Ok(establishment);
                }
                Ok(Started::Ended) => {
                    self.remove_unstarted(&establishment, key).await?;
                    establishment.provisioning_attempt += 1;
                }
                Err(error) => {
                    // Leave nothing half-created: the client's retry will create it anew.
                    // Known shortcoming: until it is removed, a GET may see the record in 1
                    // and its creation webhook may go out.
                    self.remove_unstarted(&establishment, key).await?;
                    return Err(Race::Failed(error.into()));
                }
            }
        }
        Err(Race::Failed(ApiError::unavailable(
            &"the provisioning runs of this establishment's first attempts have all ended",
        )))
    }

    /// Removes the record `create_new` just wrote, whose provisioning did not start. Only if its
    /// key is still `key`: a retry that re-keyed it meanwhile had started the provisioning
    /// before (`reissue_key`), and the record stays.
    async fn remove_unstarted(
        &self,
        establishment: &Establishment,
        key: &Secret,
    ) -> Result<(), Race> {
        match self
            .store
            .delete_unstarted(&establishment.rne, &key.digest())
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                tracing::info!(
                    "provisioning did not start here; a retry has taken the establishment over"
                );
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "could not remove an establishment whose provisioning did not start");
                Err(Race::Failed(error.into()))
            }
        }
    }

    async fn reissue_key(
        &self,
        existing: Establishment,
        new: &NewEstablishment,
        key: &Secret,
    ) -> Result<Establishment, Race> {
        if !existing.has_licence_of(new) {
            return Err(Race::Failed(ApiError::new(
                super::ErrorCode::Conflict,
                "This establishment exists with another griffe, code, version or agricole value.",
            )));
        }
        if existing.status == Status::Installing {
            // The request that created it may still be starting its provisioning, or have
            // failed to, and this retry is what a client does after a lost or failed answer:
            // make sure the run is started before answering 200 (a start of a run that
            // already runs is a no-op), and before the key changes, so that a 503 here
            // changes nothing.
            match self.start_provisioning(&existing).await {
                Ok(Started::Running) => {}
                // Its run has ended: either it has just moved the status on (2 or E1), or it
                // was the run of an undone creation, and the request that created this record
                // is moving it to the next attempt (`create_new`). Read it again. Known
                // shortcoming: if that request died before it could, retries end in 503 until
                // an operator removes the record.
                Ok(Started::Ended) => return Err(Race::Lost),
                Err(error) => return Err(Race::Failed(error.into())),
            }
        }
        self.store
            .replace_key(&existing.rne, &existing.key_digest, &key.digest())
            .await?;
        tracing::info!("establishment key reissued");
        Ok(existing)
    }

    /// Starts the provisioning run of the establishment's current attempt, unless it runs.
    async fn start_provisioning(
        &self,
        establishment: &Establishment,
    ) -> Result<Started, WorkflowError> {
        let run = WorkflowRun {
            kind: WorkflowKind::Provisioning,
            rne: establishment.rne.clone(),
            attempt: establishment.provisioning_attempt,
        };
        self.workflows.start(&run, json!({})).await
    }
}

enum Race {
    Lost,
    Failed(ApiError),
}

impl From<StoreError> for Race {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists | StoreError::Conflict => Race::Lost,
            StoreError::InvalidCursor | StoreError::Unavailable(_) => Race::Failed(error.into()),
        }
    }
}

/// A few milliseconds, random, so that racing requests do not retry in lockstep.
fn jitter() -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    Duration::from_millis(1 + u64::from(byte[0] % 16))
}

/// The RNE of the path, recorded on the request's log span.
fn parse_rne(raw: &str) -> Result<Rne, ApiError> {
    let rne = Rne::parse(raw).map_err(|error| {
        ApiError::invalid_fields([("rne".to_owned(), error.0)].into())
            .with_message("The RNE/UAI code in the path is not valid.")
    })?;
    tracing::Span::current().record("rne", rne.as_str());
    Ok(rne)
}

fn parse_new_establishment(body: &[u8]) -> Result<NewEstablishment, ApiError> {
    let mut object = JsonObject::parse(body, &["rne", "griffe", "code", "version", "agricole"])?;
    let rne = object.required("rne", Rne::parse);
    let griffe = object.required("griffe", Griffe::parse);
    let code = object.required("code", LicenceCode::parse);
    let version = object.required("version", Version::parse);
    let agricole = object.optional_bool("agricole", false);
    object.finish()?;
    match (rne, griffe, code, version, agricole) {
        (Some(rne), Some(griffe), Some(code), Some(version), Some(agricole)) => {
            Ok(NewEstablishment {
                rne,
                griffe,
                code,
                version,
                agricole,
            })
        }
        _ => Err(ApiError::invalid("The request body has invalid fields.")),
    }
}

/// `timestamp` and `next_step_at`: when the next step is expected, in statuses that have one.
fn timing(establishment: &Establishment) -> Value {
    match establishment
        .next_step_at
        .filter(|_| establishment.status.has_next_step())
    {
        Some(at) => json!({ "timestamp": at.unix(), "next_step_at": at.rfc3339() }),
        None => json!({ "timestamp": null, "next_step_at": null }),
    }
}

/// The establishment as the Cyberlibrairie and the school see it. Never the licence code.
/// Written straight from this struct (building a `serde_json::Value` first was a tenth of the
/// server's time per request); the fields keep the alphabetical order `Value` printed.
#[derive(serde::Serialize)]
struct View<'a> {
    agricole: bool,
    /// A `Value` so that each base's keys stay sorted too.
    bases: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView<'a>>,
    message: String,
    next_step_at: Option<String>,
    rne: &'a Rne,
    status: Status,
    status_changed_at: String,
    timestamp: Option<i64>,
    version: Version,
}

#[derive(serde::Serialize)]
struct ConnectionView<'a> {
    client_download_url: &'a str,
    host: &'a str,
    port: u16,
}

#[derive(serde::Serialize)]
struct ErrorView<'a> {
    code: Status,
    detail: &'a str,
    reason: &'a str,
}

fn view(establishment: &Establishment, now: Instant) -> View<'_> {
    let next_step_at = establishment
        .next_step_at
        .filter(|_| establishment.status.has_next_step());
    View {
        agricole: establishment.agricole,
        bases: json!(establishment.bases),
        connection: match (establishment.status, &establishment.connection) {
            (Status::Ready, Some(connection)) => Some(ConnectionView {
                client_download_url: &connection.client_download_url,
                host: &connection.host,
                port: connection.port,
            }),
            _ => None,
        },
        error: match (establishment.status, &establishment.failure) {
            (Status::InstallFailed | Status::MountFailed, Some(failure)) => Some(ErrorView {
                code: establishment.status,
                detail: &failure.detail,
                reason: &failure.reason,
            }),
            _ => None,
        },
        message: messages::for_school(establishment, now),
        next_step_at: next_step_at.map(Instant::rfc3339),
        rne: &establishment.rne,
        status: establishment.status,
        status_changed_at: establishment.status_changed_at.rfc3339(),
        timestamp: next_step_at.map(Instant::unix),
        version: establishment.version,
    }
}
