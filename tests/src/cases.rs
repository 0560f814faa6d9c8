//! A prepared world and, for every endpoint, a request that succeeds in it: what the
//! fault-injection, credential and secrets tests run, endpoint by endpoint, over
//! `Endpoint::ALL`. An endpoint without a case here makes those tests fail.
//!
//! The world is the local server on a loopback port, as `bcdi-hosting serve` runs it (embedded
//! storage on the same port), over one in-memory SQLite table and recording workflows, every
//! dependency behind a [`faults`](crate::faults) wrapper. Two establishments are in status 2,
//! each with an upload session and one archive half uploaded (its one part stored).

use std::sync::Arc;

use bcdi_hosting::server;
use bcdi_hosting::sqlite::SqliteStore;
use bcdi_hosting::storage::EmbeddedStorage;
use bcdi_shared::api::{Endpoint, UPLOAD_TOKEN_PREFIX};
use bcdi_shared::domain::{Instant, Rne, Secret, Status};
use bcdi_shared::ports::jobs::job_key;
use bcdi_shared::ports::{
    EstablishmentStore, FileState, JobKind, JobStore, NewJob, Storage, UploadFile, UploadSession,
    UploadStore,
};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::Method;
use serde_json::{json, Value};

use crate::app::{fresh_dir, licence, Parts};
use crate::faults::{Engine, Faults, FaultyStorage, FaultyTable, FaultyWorkflows};

/// The establishment whose credentials the cases use.
pub const OWN: &str = "0750655E";
/// Another establishment, in the same state.
pub const OTHER: &str = "0750654D";
/// An establishment that does not exist until a case creates it.
pub const NEW: &str = "0160010Z";
/// An establishment in status 1 whose installation job waits for an agent.
pub const INSTALLING: &str = "0752538B";

/// Size of the archive each establishment has half uploaded: one part.
pub const FILE_SIZE: usize = 1000;

/// One establishment's credentials and half-uploaded archive.
pub struct Party {
    pub rne: &'static str,
    pub key: String,
    /// Its upload session's token.
    pub token: String,
    /// An archive of `FILE_SIZE` bytes, uploading, whose one part is stored.
    pub file: String,
    /// That part's ETag.
    pub etag: String,
}

/// A request: method, path, JSON body and the whole `Authorization` header, if any.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub authorization: Option<String>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
            authorization: None,
        }
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// With `Authorization: Bearer <credential>`.
    pub fn bearer(mut self, credential: &str) -> Self {
        self.authorization = Some(format!("Bearer {credential}"));
        self
    }
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as text (the page and its assets are not JSON).
    pub text: String,
    /// The body as JSON; null when empty or not JSON.
    pub json: Value,
}

/// The request of one endpoint that succeeds in a world, and with which status.
#[derive(Debug, Clone)]
pub struct Case {
    /// Which of the endpoint's cases, for messages: `new establishment`, `re-key`…
    pub name: &'static str,
    pub call: Call,
    pub success: u16,
    /// Dependency calls (`Workflows.send_task_heartbeat`) whose failure the endpoint absorbs
    /// by design: it still succeeds.
    pub tolerates: Vec<&'static str>,
}

pub struct World {
    pub base: String,
    pub http: reqwest::Client,
    pub faults: Arc<Faults>,
    /// The table itself, without faults: for preparing and inspecting.
    pub table: Arc<SqliteStore>,
    pub storage: Arc<dyn Storage>,
    pub workflows: Arc<Engine>,
    pub cyber: String,
    pub operator: String,
    pub own: Party,
    pub other: Party,
    /// A token of `OWN` whose session expired.
    pub expired_token: String,
    /// The key of the installation job of `INSTALLING`.
    pub install_job: String,
}

impl World {
    /// A new world, served on a loopback port of its own. Must be called within a Tokio
    /// runtime, which serves it until it ends.
    pub async fn new() -> Self {
        let listener = server::bind(0).await.expect("a free loopback port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let embedded =
            EmbeddedStorage::open(&fresh_dir("storage"), &base).expect("embedded storage");
        let storage = embedded.storage();
        let table = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
        let faults = Faults::new();
        let faulty_table = Arc::new(FaultyTable {
            faults: faults.clone(),
            establishments: table.clone(),
            uploads: table.clone(),
            jobs: table.clone(),
        });
        let faulty_storage = Arc::new(FaultyStorage {
            faults: faults.clone(),
            inner: storage.clone(),
        });
        let Parts {
            mut app,
            cyber,
            operator,
            ..
        } = Parts::with(faulty_table.clone(), faulty_table.clone(), faulty_storage);
        app.jobs = faulty_table;
        let workflows = Arc::new(Engine::default());
        app.workflows = Arc::new(FaultyWorkflows {
            faults: faults.clone(),
            inner: workflows.clone(),
        });
        tokio::spawn(server::serve_with_storage(
            listener,
            Arc::new(app),
            embedded.router(),
            std::future::pending(),
        ));

        let mut world = Self {
            base,
            http: reqwest::Client::new(),
            faults,
            table,
            storage,
            workflows,
            cyber: cyber.expose().to_owned(),
            operator: operator.expose().to_owned(),
            own: empty_party(OWN),
            other: empty_party(OTHER),
            expired_token: String::new(),
            install_job: String::new(),
        };
        world.own = world.party(OWN).await;
        world.other = world.party(OTHER).await;
        world.expired_token = world.expired_session(OWN).await;
        world.install_job = world.installing(INSTALLING).await;
        world.faults.reset();
        world
    }

    /// Creates `rne` in status 2 with a session and a half-uploaded archive.
    async fn party(&self, rne: &'static str) -> Party {
        let created = self
            .expect(
                200,
                Call::new(Method::POST, "/v1/establishments")
                    .bearer(&self.cyber)
                    .body(licence(rne)),
            )
            .await;
        let key = text(&created, "key");
        self.set_status(rne, Status::AwaitingBases).await;
        let session = self
            .expect(
                201,
                Call::new(
                    Method::POST,
                    format!("/v1/establishments/{rne}/upload-sessions"),
                )
                .bearer(&key)
                .body(json!({})),
            )
            .await;
        let url = text(&session, "url");
        let token = url
            .split_once("#token=")
            .map(|(_, token)| token.to_owned())
            .expect("a token in the URL's fragment");
        let file = self
            .expect(
                201,
                Call::new(Method::POST, "/v1/upload/files")
                    .bearer(&token)
                    .body(json!({"name": "data.zip", "size": FILE_SIZE, "base": "Principale"})),
            )
            .await;
        let file = text(&file, "id");
        let etag = self.send_part(&token, &file, 1, vec![7; FILE_SIZE]).await;
        Party {
            rne,
            key,
            token,
            file,
            etag,
        }
    }

    /// Creates `rne` (status 1) and its installation job, as the provisioning workflow's step
    /// does, with a task waiting on it; the job's key.
    async fn installing(&self, rne: &str) -> String {
        self.expect(
            200,
            Call::new(Method::POST, "/v1/establishments")
                .bearer(&self.cyber)
                .body(licence(rne)),
        )
        .await;
        let rne = rne_of(rne);
        let key = job_key(&rne, JobKind::Install, 1);
        let token = format!("task-token-{key}");
        self.table
            .enqueue(&NewJob {
                key: key.clone(),
                kind: JobKind::Install,
                input: json!({"rne": rne, "griffe": "Collège Jean Moulin", "code": "ABCDEFGH",
                              "version": "CL", "agricole": false}),
                rne,
                task_token: token.clone(),
                created_at: Instant::now(),
            })
            .await
            .expect("the job is stored");
        self.workflows.wait_on(&token);
        key
    }

    /// Claims the installation job of `INSTALLING` as the agent would: the id the agent
    /// gets.
    pub async fn claim(&self) -> String {
        let job = self
            .expect(
                200,
                Call::new(Method::POST, "/v1/agent/jobs/claim")
                    .bearer(&self.operator)
                    .body(json!({"kinds": ["install"], "wait_seconds": 0})),
            )
            .await;
        text(&job, "id")
    }

    /// A session of `rne` that expired a second ago: its token.
    async fn expired_session(&self, rne: &str) -> String {
        let token = Secret::generate(UPLOAD_TOKEN_PREFIX);
        self.table
            .create_session(
                &token.digest(),
                &UploadSession {
                    rne: rne_of(rne),
                    expires_at: Instant::from_unix(Instant::now().unix() - 1),
                },
            )
            .await
            .expect("the session is stored");
        token.expose().to_owned()
    }

    /// Moves `rne` to `status` in the table, as a workflow would.
    pub async fn set_status(&self, rne: &str, status: Status) {
        let rne = rne_of(rne);
        let establishment = EstablishmentStore::get(&*self.table, &rne)
            .await
            .expect("the table answers")
            .expect("the establishment exists");
        let transition = establishment
            .transition(status, Instant::now())
            .expect("an allowed transition");
        self.table
            .transition(&rne, &transition)
            .await
            .expect("the transition is stored");
    }

    /// Sends part `part` of file `id` to its presigned URL; its ETag.
    pub async fn send_part(&self, token: &str, id: &str, part: u32, bytes: Vec<u8>) -> String {
        let urls = self
            .expect(
                200,
                Call::new(Method::POST, format!("/v1/upload/files/{id}/part-urls"))
                    .bearer(token)
                    .body(json!({ "parts": [part] })),
            )
            .await;
        let url = urls["urls"][0]["url"].as_str().expect("a part URL");
        let response = self
            .http
            .put(url)
            .body(bytes)
            .send()
            .await
            .expect("the part is sent");
        assert_eq!(response.status().as_u16(), 200, "PUT of part {part}");
        response
            .headers()
            .get("etag")
            .and_then(|etag| etag.to_str().ok())
            .expect("an ETag")
            .to_owned()
    }

    /// Completes the party's half-uploaded archive.
    pub async fn complete(&self, party: &Party) {
        self.expect(
            200,
            Call::new(
                Method::POST,
                format!("/v1/upload/files/{}/complete", party.file),
            )
            .bearer(&party.token)
            .body(json!({"parts": [{"part": 1, "etag": party.etag}]})),
        )
        .await;
    }

    pub async fn send(&self, call: &Call) -> Answer {
        let mut request = self
            .http
            .request(call.method.clone(), format!("{}{}", self.base, call.path));
        if let Some(authorization) = &call.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    /// Sends `call`, which must answer `status`; its JSON body.
    pub async fn expect(&self, status: u16, call: Call) -> Value {
        let answer = self.send(&call).await;
        assert_eq!(
            answer.status, status,
            "{} {}: {}",
            call.method, call.path, answer.text
        );
        answer.json
    }

    /// Everything a request could have changed, as text: the three establishments, their
    /// history, their archives with what storage holds of each, and the workflow runs
    /// started. Read around the faults.
    pub async fn snapshot(&self) -> String {
        let mut out = String::new();
        for rne in [OWN, OTHER, NEW, INSTALLING] {
            let rne = rne_of(rne);
            out += &format!("{:?}\n", EstablishmentStore::get(&*self.table, &rne).await);
            out += &format!("{:?}\n", self.table.history(&rne).await);
            let files = self.table.files(&rne).await.unwrap_or_default();
            for file in &files {
                out += &format!("{file:?}\n{}\n", self.stored(file).await);
            }
        }
        out += &format!(
            "job: {:?}\n",
            JobStore::get(&*self.table, &self.install_job).await
        );
        out += &format!("workflow runs: {:?}\n", self.workflows.runs());
        out += &format!("task outcomes: {:?}\n", self.workflows.outcomes());
        out
    }

    /// What storage holds of `file`: its stored parts while it uploads, its object once
    /// complete.
    async fn stored(&self, file: &UploadFile) -> String {
        match file.state {
            FileState::Uploading => format!(
                "parts: {:?}",
                self.storage
                    .list_parts(&file.object_key(), &file.upload_id)
                    .await
            ),
            FileState::Complete => {
                format!("object: {:?}", self.storage.size(&file.object_key()).await)
            }
        }
    }
}

/// Case number `variant` of `endpoint`, prepared in `world` (which it may change: one world
/// per case); `None` past the endpoint's last case, at once for an endpoint without any.
pub async fn case(endpoint: Endpoint, variant: usize, world: &World) -> Option<Case> {
    let mut all = cases(endpoint, variant, world).await;
    (variant < all.len()).then(|| all.swap_remove(variant))
}

/// Every case of `endpoint`; the preparation is that of case `variant`.
async fn cases(endpoint: Endpoint, variant: usize, world: &World) -> Vec<Case> {
    let own = &world.own;
    let case = |name, call, success| Case {
        name,
        call,
        success,
        tolerates: Vec::new(),
    };
    match endpoint {
        Endpoint::GetEstablishment => vec![case(
            "read",
            Call::new(Method::GET, format!("/v1/establishments/{OWN}")).bearer(&own.key),
            200,
        )],
        Endpoint::CreateEstablishment => vec![
            case(
                "new establishment",
                Call::new(Method::POST, "/v1/establishments")
                    .bearer(&world.cyber)
                    .body(licence(NEW)),
                200,
            ),
            case(
                "same body again: re-key",
                Call::new(Method::POST, "/v1/establishments")
                    .bearer(&world.cyber)
                    .body(licence(OWN)),
                200,
            ),
        ],
        Endpoint::GetHistory => vec![case(
            "history",
            Call::new(Method::GET, format!("/v1/establishments/{OWN}/history")).bearer(&own.key),
            200,
        )],
        Endpoint::OpenApi => vec![case(
            "document",
            Call::new(Method::GET, "/v1/openapi.json"),
            200,
        )],
        Endpoint::UploadPage => vec![case("page", Call::new(Method::GET, "/v1/upload"), 200)],
        Endpoint::UploadAsset => {
            let page = world.send(&Call::new(Method::GET, "/v1/upload")).await;
            let asset = page
                .text
                .split("upload/assets/")
                .nth(1)
                .and_then(|rest| rest.split(['"', '\'', '?', '#']).next())
                .expect("the page links an asset")
                .to_owned();
            vec![case(
                "asset",
                Call::new(Method::GET, format!("/v1/upload/assets/{asset}")),
                200,
            )]
        }
        Endpoint::CreateUploadSession => vec![case(
            "session",
            Call::new(
                Method::POST,
                format!("/v1/establishments/{OWN}/upload-sessions"),
            )
            .bearer(&own.key)
            .body(json!({})),
            201,
        )],
        Endpoint::GetUploadSession => vec![case(
            "session",
            Call::new(Method::GET, "/v1/upload/session").bearer(&own.token),
            200,
        )],
        Endpoint::CreateUploadFile => vec![case(
            "another archive",
            Call::new(Method::POST, "/v1/upload/files")
                .bearer(&own.token)
                .body(json!({"name": "manuels.zip", "size": FILE_SIZE, "base": "Manuels"})),
            201,
        )],
        Endpoint::CreatePartUrls => vec![case(
            "part URL",
            Call::new(
                Method::POST,
                format!("/v1/upload/files/{}/part-urls", own.file),
            )
            .bearer(&own.token)
            .body(json!({"parts": [1]})),
            200,
        )],
        Endpoint::ListUploadParts => vec![case(
            "parts",
            Call::new(Method::GET, format!("/v1/upload/files/{}/parts", own.file))
                .bearer(&own.token),
            200,
        )],
        Endpoint::CompleteUploadFile => vec![case(
            "complete",
            Call::new(
                Method::POST,
                format!("/v1/upload/files/{}/complete", own.file),
            )
            .bearer(&own.token)
            .body(json!({"parts": [{"part": 1, "etag": own.etag}]})),
            200,
        )],
        Endpoint::DeleteUploadFile => {
            if variant == 1 {
                world.complete(own).await;
                world.faults.reset();
            }
            let delete = || {
                Call::new(Method::DELETE, format!("/v1/upload/files/{}", own.file))
                    .bearer(&own.token)
            };
            vec![
                case("abort an upload", delete(), 204),
                case("remove a complete archive", delete(), 204),
            ]
        }
        Endpoint::SubmitUpload => {
            world.complete(own).await;
            world.faults.reset();
            vec![case(
                "submit",
                Call::new(Method::POST, "/v1/upload/submit")
                    .bearer(&own.token)
                    .body(json!({})),
                202,
            )]
        }
        // A claim is a sign of life for the workflow, sent on a best-effort basis.
        Endpoint::ClaimJob => vec![Case {
            tolerates: vec!["Workflows.send_task_heartbeat"],
            ..case(
                "claim",
                Call::new(Method::POST, "/v1/agent/jobs/claim")
                    .bearer(&world.operator)
                    .body(json!({"kinds": ["install", "mount"], "wait_seconds": 0})),
                200,
            )
        }],
        Endpoint::HeartbeatJob => {
            let id = world.claim().await;
            world.faults.reset();
            vec![case(
                "heartbeat with an ETA",
                Call::new(Method::POST, format!("/v1/agent/jobs/{id}/heartbeat"))
                    .bearer(&world.operator)
                    // An hour ahead: an eta in the past or over 30 days ahead is refused.
                    .body(
                        json!({"eta": Instant::from_unix(Instant::now().unix() + 3600).rfc3339()}),
                    ),
                200,
            )]
        }
        Endpoint::SucceedJob => {
            let id = world.claim().await;
            world.faults.reset();
            vec![Case {
                // The outcome reached the workflow; the job's record follows, or is logged.
                tolerates: vec!["Table.finish"],
                ..case(
                    "installed",
                    Call::new(Method::POST, format!("/v1/agent/jobs/{id}/succeed"))
                        .bearer(&world.operator)
                        .body(
                            json!({"result": {"host": "bcdi-0752538b.example.org", "port": 8000}}),
                        ),
                    200,
                )
            }]
        }
        Endpoint::FailJob => {
            let id = world.claim().await;
            world.faults.reset();
            vec![Case {
                // The outcome reached the workflow; the job's record follows, or is logged.
                tolerates: vec!["Table.finish"],
                ..case(
                    "installation failed",
                    Call::new(Method::POST, format!("/v1/agent/jobs/{id}/fail"))
                        .bearer(&world.operator)
                        .body(json!({"reason": "disk_full", "detail": "No space left on C:."})),
                    200,
                )
            }]
        }
        Endpoint::ListEstablishments => vec![case(
            "status 2",
            Call::new(Method::GET, "/v1/admin/establishments?status=2").bearer(&world.operator),
            200,
        )],
        Endpoint::RetryEstablishment => {
            world.set_status(INSTALLING, Status::InstallFailed).await;
            world.faults.reset();
            vec![case(
                "retry of E1",
                Call::new(
                    Method::POST,
                    format!("/v1/admin/establishments/{INSTALLING}/retry"),
                )
                .bearer(&world.operator)
                .body(json!({})),
                202,
            )]
        }
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    }
}

fn empty_party(rne: &'static str) -> Party {
    Party {
        rne,
        key: String::new(),
        token: String::new(),
        file: String::new(),
        etag: String::new(),
    }
}

pub fn rne_of(code: &str) -> Rne {
    Rne::parse(code).expect("a valid RNE")
}

fn text(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}
