//! The provisioning and mounting workflows end to end, through the local server as
//! `bcdi-hosting serve` wires it (SQLite, embedded storage, the local ASL executor running
//! `infra/statemachines/*.asl.json`), with this test as the hosting agent: it claims jobs,
//! heartbeats, succeeds and fails them over HTTP as an agent does. Then the Step Functions
//! adapter against moto.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bcdi_hosting::asl::Status as ExecutionStatus;
use bcdi_shared::domain::Instant;
use bcdi_tests::app::fresh_dir;
use bcdi_tests::service::{Keys, LocalServer, PATIENCE};
use serde_json::{json, Value};

/// Settings a test changes from the defaults, in seconds.
#[derive(Clone, Copy)]
struct Settings {
    install_timeout: u64,
    mount_timeout: u64,
    lease: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            install_timeout: 3600,
            mount_timeout: 3600,
            lease: 60,
        }
    }
}

/// The service on `dir` with `settings`, as `serve` starts it.
async fn start(dir: &Path, keys: &Keys, settings: Settings) -> LocalServer {
    let mut config = keys.config();
    config.install_timeout = Duration::from_secs(settings.install_timeout);
    config.mount_timeout = Duration::from_secs(settings.mount_timeout);
    config.job_lease = Duration::from_secs(settings.lease);
    LocalServer::start(dir, keys, config).await
}

/// A base directory as BCDI's backup writes it, zipped: `NOTICES.DAT` and the other data
/// files of the base, several megabytes of records that compress as real ones do.
fn base_archive(dir: &str, with_notices: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.add_directory(format!("{dir}/"), options)
        .expect("a directory entry");
    let mut files = vec![
        ("EXEMPLAI.DAT", 900_000),
        ("LECTEURS.DAT", 400_000),
        ("PRETS.DAT", 600_000),
        ("AUTORITE.DAT", 300_000),
        ("DESCRIPT.DAT", 250_000),
    ];
    if with_notices {
        files.insert(0, ("NOTICES.DAT", 3_500_000));
    }
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for (name, size) in files {
        zip.start_file(format!("{dir}/{name}"), options)
            .expect("a file entry");
        let mut written = 0;
        let mut record = 0u64;
        while written < size {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            record += 1;
            let line = format!(
                "{record:08}|{:>40}|{:>24}|{:06}|{:04}|CDI\r\n",
                format!("Titre {} tome {}", seed % 9973, seed % 17),
                format!("Auteur {}", seed % 4001),
                seed % 999_983,
                1950 + seed % 75,
            );
            zip.write_all(line.as_bytes()).expect("written");
            written += line.len();
        }
    }
    zip.start_file(format!("{dir}/BCDI.INI"), options)
        .expect("a file entry");
    zip.write_all(b"[BASE]\r\nVersion=3\r\n").expect("written");
    zip.finish().expect("the archive").into_inner()
}

/// Creates an establishment and drives its installation to status 2, as an agent would.
async fn installed(service: &LocalServer, rne: &str) {
    service.create(rne).await;
    let job = service.claim_soon("install").await;
    let (status, body) = service
        .job_call(
            &job,
            "succeed",
            &json!({"result": {"host": "127.0.0.1", "port": 8123}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    service.wait_for_status(rne, "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_establishment_goes_from_1_to_4_through_the_agent_api_on_real_archives() {
    let dir = fresh_dir("workflow-lifecycle");
    let service = start(&dir, &Keys::generate(), Settings::default()).await;
    let rne = "0750655E";

    // Given a new establishment: provisioning made an install job with its licence
    service.create(rne).await;
    let job = service.claim_soon("install").await;
    assert_eq!(job["kind"], "install");
    assert_eq!(job["rne"], rne);
    assert_eq!(job["input"]["griffe"], "Collège Jean Moulin");
    assert_eq!(job["input"]["code"], "ABCDEFGH");
    assert_eq!(job["input"]["version"], "CL");
    assert!(job["lease_expires_at"].is_string());

    // When the agent heartbeats with a new expected end, the school sees that time
    // (a day ahead: an eta in the past or over 30 days ahead is refused)
    let eta = Instant::from_unix(Instant::now().unix() + 86_400);
    let (status, body) = service
        .job_call(&job, "heartbeat", &json!({ "eta": eta.rfc3339() }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["lease_expires_at"].is_string());
    let establishment = service.establishment(rne).await;
    assert_eq!(establishment["next_step_at"], eta.rfc3339());
    assert_eq!(establishment["timestamp"], eta.unix());

    // And reports the server installed: status 2, no connection shown yet
    let (status, body) = service
        .job_call(
            &job,
            "succeed",
            &json!({"result": {"host": "127.0.0.1", "port": 8123}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let establishment = service.wait_for_status(rne, "2").await;
    assert!(establishment.get("connection").is_none(), "{establishment}");
    assert_eq!(establishment["timestamp"], Value::Null);

    // Then a repeated or late call for that job changes nothing
    for (action, body) in [
        (
            "succeed",
            json!({"result": {"host": "127.0.0.1", "port": 9999}}),
        ),
        ("fail", json!({"reason": "too_late", "detail": "x"})),
        ("heartbeat", json!({})),
    ] {
        let (status, answer) = service.job_call(&job, action, &body).await;
        assert_eq!(status, 409, "{action}: {answer}");
        assert_eq!(answer["error"], "conflict");
    }
    assert_eq!(service.establishment(rne).await["status"], "2");

    // When the school uploads two bases and sends them
    let principale = base_archive("data", true);
    let manuels = base_archive("manuels", true);
    assert!(principale.len() > 1_000_000, "{} bytes", principale.len());
    service
        .upload_and_submit(
            rne,
            &[
                ("Principale", "data.zip", principale.clone()),
                ("Manuels", "manuels.zip", manuels.clone()),
            ],
        )
        .await;

    // Then after the check, a mount job lists them with download URLs of the right size
    let job = service.claim_soon("mount").await;
    let establishment = service.establishment(rne).await;
    assert_eq!(establishment["status"], "3");
    assert!(establishment["timestamp"].is_i64(), "{establishment}");
    let bases = job["input"]["bases"].as_array().expect("bases").clone();
    assert_eq!(bases.len(), 2, "{job}");
    for base in &bases {
        let url = base["url"].as_str().expect("a download URL");
        let bytes = reqwest::get(url)
            .await
            .expect("downloaded")
            .bytes()
            .await
            .expect("a body");
        assert_eq!(Some(bytes.len() as u64), base["size"].as_u64());
        let expected = if base["name"] == "Principale" {
            &principale
        } else {
            &manuels
        };
        assert_eq!(&bytes[..], &expected[..], "{}", base["name"]);
    }

    // When the agent mounts them, one usable and one not
    let result = json!({"result": {
        "connection": {"host": "bcdi-0750655e.example.org", "port": 8123,
                       "client_download_url": "https://example.org/client.exe"},
        "bases": [
            {"name": "Principale", "state": "INSTALLED"},
            {"name": "Manuels", "state": "ERROR", "detail": "version too old"},
        ],
    }});
    let (status, body) = service.job_call(&job, "succeed", &result).await;
    assert_eq!(status, 200, "{body}");

    // Then the server is ready with its connection and each base's state
    let establishment = service.wait_for_status(rne, "4").await;
    assert_eq!(
        establishment["connection"]["host"],
        "bcdi-0750655e.example.org"
    );
    assert_eq!(establishment["connection"]["port"], 8123);
    let states: Vec<(String, String)> = establishment["bases"]
        .as_array()
        .expect("bases")
        .iter()
        .map(|base| {
            (
                base["name"].as_str().unwrap_or_default().to_owned(),
                base["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&("Principale".into(), "INSTALLED".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("Manuels".into(), "ERROR".into())),
        "{states:?}"
    );
    assert_eq!(service.history(rne).await, ["1", "2", "3", "4"]);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workflow_waiting_on_the_agent_resumes_after_a_restart() {
    let dir = fresh_dir("workflow-restart");
    let keys = Keys::generate();
    let rne = "0750654D";

    // Given an install job claimed by an agent
    let service = start(&dir, &keys, Settings::default()).await;
    service.create(rne).await;
    let job = service.claim_soon("install").await;

    // When the server restarts while the workflow waits
    service.stop().await;
    let service = start(&dir, &keys, Settings::default()).await;
    assert_eq!(service.establishment(rne).await["status"], "1");

    // Then the agent's outcome, sent under the same id, reaches the resumed workflow
    let (status, body) = service
        .job_call(
            &job,
            "succeed",
            &json!({"result": {"host": "10.0.0.7", "port": 8000}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    service.wait_for_status(rne, "2").await;
    assert_eq!(service.history(rne).await, ["1", "2"]);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_lease_lapsed_goes_to_another_agent_and_the_first_is_refused() {
    let dir = fresh_dir("workflow-lease");
    let settings = Settings {
        lease: 1,
        ..Settings::default()
    };
    let service = start(&dir, &Keys::generate(), settings).await;
    let rne = "0160010Z";
    service.create(rne).await;

    // Given an agent that claimed the install job, then went silent past its lease
    let first = service.claim_soon("install").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // When another agent claims
    let second = service.claim_soon("install").await;

    // Then it gets the same job under a new id, and the first agent's calls change nothing
    assert_ne!(first["id"], second["id"]);
    let job_of = |job: &Value| {
        let id = job["id"].as_str().unwrap_or_default();
        id.rsplit_once('.').map(|(key, _)| key.to_owned())
    };
    assert_eq!(job_of(&first), job_of(&second));
    for (action, body) in [
        (
            "heartbeat",
            json!({"eta": Instant::from_unix(Instant::now().unix() + 3600).rfc3339()}),
        ),
        (
            "succeed",
            json!({"result": {"host": "127.0.0.1", "port": 1}}),
        ),
        ("fail", json!({"reason": "gave_up"})),
    ] {
        let (status, answer) = service.job_call(&first, action, &body).await;
        assert_eq!(status, 409, "{action}: {answer}");
    }
    let establishment = service.establishment(rne).await;
    assert_eq!(establishment["status"], "1");
    assert_ne!(establishment["next_step_at"], "2030-01-01T00:00:00Z");

    // And the second agent finishes it (its lease is renewed by each call it makes)
    let (status, body) = service
        .job_call(
            &second,
            "succeed",
            &json!({"result": {"host": "127.0.0.1", "port": 8001}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    service.wait_for_status(rne, "2").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_installation_past_its_deadline_ends_in_e1_and_an_operator_retry_installs_it() {
    let dir = fresh_dir("workflow-timeout");
    let settings = Settings {
        install_timeout: 3,
        ..Settings::default()
    };
    let service = start(&dir, &Keys::generate(), settings).await;
    let rne = "0752526N";

    // Given an establishment whose install job no agent took in time
    service.create(rne).await;
    let establishment = service.wait_for_status(rne, "E1").await;

    // Then it is in E1 with install_timeout, and the stale job is gone
    assert_eq!(establishment["error"]["code"], "E1");
    assert_eq!(establishment["error"]["reason"], "install_timeout");
    assert!(service.claim("install", 0).await.is_none());

    // And operators find it in the E1 listing, not in the 1 listing
    let (status, page) = service
        .get("/v1/admin/establishments?status=E1", &service.operator)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["rne"], rne);
    assert_eq!(page["items"][0]["error"]["reason"], "install_timeout");
    assert!(page["items"][0].get("code").is_none());
    assert_eq!(page["next_cursor"], Value::Null);
    let (_, page) = service
        .get("/v1/admin/establishments?status=1", &service.operator)
        .await;
    assert_eq!(page["items"], json!([]));

    // When an operator retries it, twice (one run starts): the repeat gets the same attempt
    // while that run has not moved the status, and is not ready once it has
    for repeat in [false, true] {
        let (status, body) = service
            .post(
                &format!("/v1/admin/establishments/{rne}/retry"),
                &service.operator,
                &json!({}),
            )
            .await;
        if repeat && status == 409 {
            assert_eq!(body["error"], "not_ready", "{body}");
            continue;
        }
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["attempt"], 2);
    }

    // Then it installs again under attempt 2, and an agent can finish it this time
    let job = service.claim_soon("install").await;
    assert!(
        job["id"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{rne}-install-2.")),
        "{job}"
    );
    assert_eq!(service.establishment(rne).await["status"], "1");
    let (status, body) = service
        .job_call(
            &job,
            "succeed",
            &json!({"result": {"host": "127.0.0.1", "port": 8002}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    service.wait_for_status(rne, "2").await;
    assert_eq!(service.history(rne).await, ["1", "E1", "1", "2"]);

    // And a retry from 2 is not ready
    let (status, body) = service
        .post(
            &format!("/v1/admin/establishments/{rne}/retry"),
            &service.operator,
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "not_ready");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_whose_run_ended_at_its_first_step_is_taken_again_under_a_new_attempt() {
    let dir = fresh_dir("workflow-stuck-retry");
    let service = start(&dir, &Keys::generate(), Settings::default()).await;
    let rne = "0750654D";
    let retry = format!("/v1/admin/establishments/{rne}/retry");

    // Given an establishment whose installation failed under attempt 1
    service.create(rne).await;
    let job = service.claim_soon("install").await;
    let (status, body) = service
        .job_call(&job, "fail", &json!({"reason": "disk_full"}))
        .await;
    assert_eq!(status, 200, "{body}");
    service.wait_for_status(rne, "E1").await;

    for (ended, next) in [(2, 3), (4, 5)] {
        // And the run named by the attempt a retry would take ended at its first step, before
        // recording that attempt: here its input names no attempt, which the step refuses for
        // good, and the establishment stays in E1
        let name = format!("{rne}-provisioning-{ended}");
        {
            let workflows = service.workflows();
            let executor = workflows.executor();
            executor
                .start(
                    "provisioning",
                    &name,
                    json!({"rne": rne, "attempt": "none"}),
                )
                .await
                .expect("started");
            let finished = tokio::time::timeout(PATIENCE, executor.wait_until_finished(&name))
                .await
                .expect("the run ends in time")
                .expect("the run is known");
            assert_ne!(finished.status, ExecutionStatus::Running);
        }
        assert_eq!(service.establishment(rne).await["status"], "E1");

        // When an operator retries
        let (status, body) = service.post(&retry, &service.operator, &json!({})).await;

        // Then the retry takes the attempt after that run's, and its run gives out a job
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["attempt"], next, "{body}");
        let job = service.claim_soon("install").await;
        let id = job["id"].as_str().unwrap_or_default();
        assert!(id.starts_with(&format!("{rne}-install-{next}.")), "{job}");

        // And when that installation fails as well, the establishment is back in E1
        let (status, body) = service
            .job_call(&job, "fail", &json!({"reason": "disk_full"}))
            .await;
        assert_eq!(status, 200, "{body}");
        service.wait_for_status(rne, "E1").await;
    }
    assert_eq!(
        service.history(rne).await,
        ["1", "E1", "1", "E1", "1", "E1"]
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submit_whose_run_name_already_ended_mounts_under_the_next_attempt() {
    let dir = fresh_dir("workflow-stuck-submit");
    let service = start(&dir, &Keys::generate(), Settings::default()).await;
    let rne = "0750658H";
    installed(&service, rne).await;

    // Given the run a submit would name ended at its first step, before recording its attempt:
    // its input names no attempt, which the step refuses for good; the establishment stays in 2
    let name = format!("{rne}-mounting-1");
    {
        let workflows = service.workflows();
        let executor = workflows.executor();
        executor
            .start("mounting", &name, json!({"rne": rne, "attempt": "none"}))
            .await
            .expect("started");
        let finished = tokio::time::timeout(PATIENCE, executor.wait_until_finished(&name))
            .await
            .expect("the run ends in time")
            .expect("the run is known");
        assert_ne!(finished.status, ExecutionStatus::Running);
    }
    assert_eq!(service.establishment(rne).await["status"], "2");

    // When the school sends its bases
    service
        .upload_and_submit(
            rne,
            &[("Principale", "data.zip", base_archive("data", true))],
        )
        .await;

    // Then they are checked and mounted under the next attempt, not left waiting for nothing
    service.wait_for_status(rne, "3").await;
    let job = service.claim_soon("mount").await;
    let id = job["id"].as_str().unwrap_or_default();
    assert!(id.starts_with(&format!("{rne}-mount-2.")), "{job}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_results_are_refused_and_the_agents_own_failure_lands_in_e1() {
    let dir = fresh_dir("workflow-results");
    let service = start(&dir, &Keys::generate(), Settings::default()).await;
    let rne = "0752538B";
    service.create(rne).await;
    let job = service.claim_soon("install").await;

    // When the agent sends results or failures that are not valid
    for (action, body, field) in [
        (
            "succeed",
            json!({"result": {"host": "127.0.0.1"}}),
            "result.port",
        ),
        ("succeed", json!({"result": {"port": 80}}), "result.host"),
        (
            "succeed",
            json!({"result": {"host": "h", "port": 80, "extra": 1}}),
            "result.extra",
        ),
        ("succeed", json!({}), "result"),
        ("fail", json!({"reason": "Not Snake"}), "reason"),
        ("fail", json!({"detail": "no reason"}), "reason"),
        ("heartbeat", json!({"eta": "tomorrow"}), "eta"),
        ("heartbeat", json!({"when": "now"}), "when"),
    ] {
        let (status, answer) = service.job_call(&job, action, &body).await;
        assert_eq!(status, 400, "{action} {body}: {answer}");
        assert!(answer["fields"].get(field).is_some(), "{field}: {answer}");
    }

    // Then nothing changed: the job is still the agent's, the establishment still installing
    assert_eq!(service.establishment(rne).await["status"], "1");
    let (status, body) = service.job_call(&job, "heartbeat", &json!({})).await;
    assert_eq!(status, 200, "{body}");

    // And a job id that never existed is 404, a call with another credential 403
    let (status, _) = service
        .post(
            "/v1/agent/jobs/0752538B-install-9.abc/fail",
            &service.operator,
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = service
        .job_call(&json!({"id": "x.y"}), "fail", &json!({"reason": "x"}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = service
        .post("/v1/agent/jobs/claim", &service.cyber, &json!({}))
        .await;
    assert_eq!(status, 403);

    // When the agent reports its own failure, the establishment is in E1 with that reason
    let (status, body) = service
        .job_call(
            &job,
            "fail",
            &json!({"reason": "disk_full", "detail": "No space left on /srv."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let establishment = service.wait_for_status(rne, "E1").await;
    assert_eq!(establishment["error"]["reason"], "disk_full");
    assert_eq!(establishment["error"]["detail"], "No space left on /srv.");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unusable_archive_ends_in_e2_naming_it_and_a_failed_mount_can_be_retried() {
    let dir = fresh_dir("workflow-e2");
    let service = start(&dir, &Keys::generate(), Settings::default()).await;
    let rne = "6200001G";
    installed(&service, rne).await;

    // When the school sends an archive without NOTICES.DAT
    service
        .upload_and_submit(
            rne,
            &[("Principale", "sauvegarde.zip", base_archive("data", false))],
        )
        .await;

    // Then the check rejects it: E2 with the reason, naming the archive, and its base in ERROR
    let establishment = service.wait_for_status(rne, "E2").await;
    assert_eq!(establishment["error"]["reason"], "missing_notices_dat");
    let detail = establishment["error"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("sauvegarde.zip"), "{detail}");
    assert_eq!(establishment["bases"][0]["state"], "ERROR");
    assert!(service.claim("mount", 0).await.is_none());

    // When it sends a good one, and the agent fails the mount
    service
        .upload_and_submit(
            rne,
            &[("Principale", "data.zip", base_archive("data", true))],
        )
        .await;
    let job = service.claim_soon("mount").await;
    let (status, body) = service
        .job_call(
            &job,
            "fail",
            &json!({"reason": "mount_refused", "detail": "server busy"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let establishment = service.wait_for_status(rne, "E2").await;
    assert_eq!(establishment["error"]["reason"], "mount_refused");

    // Then an operator's retry mounts the same archives again, and this time it works
    let (status, body) = service
        .post(
            &format!("/v1/admin/establishments/{rne}/retry"),
            &service.operator,
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["workflow"], "mounting");
    let job = service.claim_soon("mount").await;
    assert_eq!(job["input"]["bases"][0]["file"], "data.zip");
    let result = json!({"result": {
        "connection": {"host": "127.0.0.1", "port": 8124, "client_download_url": "http://127.0.0.1/client"},
        "bases": [{"name": "Principale", "state": "INSTALLED"}],
    }});
    // A result that misses a base or names an unknown one is refused first
    let (status, _) = service
        .job_call(&job, "succeed", &json!({"result": {
            "connection": {"host": "127.0.0.1", "port": 8124, "client_download_url": "http://127.0.0.1/client"},
            "bases": [{"name": "Autre", "state": "INSTALLED"}],
        }}))
        .await;
    assert_eq!(status, 400);
    let (status, body) = service.job_call(&job, "succeed", &result).await;
    assert_eq!(status, 200, "{body}");
    let establishment = service.wait_for_status(rne, "4").await;
    assert_eq!(establishment["bases"][0]["state"], "INSTALLED");
    assert_eq!(
        service.history(rne).await,
        ["1", "2", "3", "E2", "3", "E2", "3", "4"]
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operators_listing_pages_with_a_cursor_and_refuses_bad_queries() {
    let dir = fresh_dir("workflow-listing");
    let service = start(&dir, &Keys::generate(), Settings::default()).await;
    for rne in ["7200009X", "7200021K", "9710002A"] {
        service.create(rne).await;
    }

    // When operators list status 1 two at a time
    let (status, first) = service
        .get(
            "/v1/admin/establishments?status=1&limit=2",
            &service.operator,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    let (status, second) = service
        .get(
            &format!("/v1/admin/establishments?status=1&limit=2&cursor={cursor}"),
            &service.operator,
        )
        .await;
    assert_eq!(status, 200, "{second}");

    // Then every establishment comes once, and the last page says so
    let mut rnes: Vec<String> = first["items"]
        .as_array()
        .into_iter()
        .chain(second["items"].as_array())
        .flatten()
        .map(|item| item["rne"].as_str().unwrap_or_default().to_owned())
        .collect();
    rnes.sort();
    assert_eq!(rnes, ["7200009X", "7200021K", "9710002A"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // And bad queries are 400, other credentials 403
    for query in [
        "",
        "?status=5",
        "?status=1&cursor=not-a-cursor",
        "?status=1&limit=0",
        "?status=1&x=1",
    ] {
        let (status, body) = service
            .get(
                &format!("/v1/admin/establishments{query}"),
                &service.operator,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let (status, _) = service
        .get("/v1/admin/establishments?status=1", &service.cyber)
        .await;
    assert_eq!(status, 403);
    service.stop().await;
}

/// The Step Functions adapter against moto, with state machine execution enabled.
mod step_functions {
    use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_sfn::types::ExecutionStatus;
    use bcdi_shared::adapters::step_functions::StepFunctions;
    use bcdi_shared::domain::Rne;
    use bcdi_shared::ports::{Started, TaskTokenError, WorkflowKind, WorkflowRun, Workflows};
    use bcdi_tests::moto;
    use serde_json::json;

    fn client(endpoint: &str) -> aws_sdk_sfn::Client {
        let config = aws_sdk_sfn::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-3"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .endpoint_url(endpoint)
            .build();
        aws_sdk_sfn::Client::from_conf(config)
    }

    /// A state machine that waits, so that its executions stay running.
    async fn state_machine(client: &aws_sdk_sfn::Client) -> String {
        let definition = json!({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": true}}});
        state_machine_of(client, definition).await
    }

    /// A state machine of `definition`, whose executions moto runs.
    async fn state_machine_of(
        client: &aws_sdk_sfn::Client,
        definition: serde_json::Value,
    ) -> String {
        reqwest::Client::new()
            .post(format!("{}/moto-api/config", moto::endpoint()))
            .json(&json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .await
            .expect("moto configured");
        client
            .create_state_machine()
            .name(moto::unique_table_name("provisioning"))
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::123456789012:role/states")
            .send()
            .await
            .expect("a state machine")
            .state_machine_arn
    }

    #[tokio::test]
    async fn a_run_is_started_once_whatever_its_input() {
        // Given the provisioning state machine
        let client = client(&moto::endpoint());
        let arn = state_machine(&client).await;
        let workflows = StepFunctions::new(client.clone(), arn.clone(), arn.clone());
        let run = WorkflowRun {
            kind: WorkflowKind::Provisioning,
            rne: Rne::parse("0750655E").expect("an RNE"),
            attempt: 1,
        };

        // When the same run is started twice, then with another input, while it runs
        for input in [json!({}), json!({}), json!({"other": true})] {
            let started = workflows.start(&run, input).await.expect("started");
            assert_eq!(started, Started::Running);
        }

        // Then one execution runs, named by establishment, kind and attempt, with its input
        let executions = client
            .list_executions()
            .state_machine_arn(&arn)
            .send()
            .await
            .expect("executions")
            .executions;
        assert_eq!(executions.len(), 1);
        assert_eq!(executions[0].name, "0750655E-provisioning-1");
        let described = client
            .describe_execution()
            .execution_arn(&executions[0].execution_arn)
            .send()
            .await
            .expect("described");
        let input: serde_json::Value =
            serde_json::from_str(described.input().unwrap_or("{}")).expect("JSON input");
        assert_eq!(input, json!({"rne": "0750655E", "attempt": 1}));
    }

    #[tokio::test]
    async fn a_run_that_has_ended_cannot_start_again_and_says_so() {
        // Given a state machine that fails at once, and its run for attempt 2, ended
        let client = client(&moto::endpoint());
        let definition = json!({"StartAt": "Fail", "States": {"Fail": {"Type": "Fail", "Error": "BeginFailed"}}});
        let arn = state_machine_of(&client, definition).await;
        let workflows = StepFunctions::new(client.clone(), arn.clone(), arn.clone());
        let run = WorkflowRun {
            kind: WorkflowKind::Provisioning,
            rne: Rne::parse("0750655E").expect("an RNE"),
            attempt: 2,
        };
        let started = workflows.start(&run, json!({})).await.expect("started");
        assert_eq!(started, Started::Running);
        let execution_arn = client
            .list_executions()
            .state_machine_arn(&arn)
            .send()
            .await
            .expect("executions")
            .executions[0]
            .execution_arn
            .clone();
        let mut status = ExecutionStatus::Running;
        for _ in 0..600 {
            let described = client
                .describe_execution()
                .execution_arn(&execution_arn)
                .send()
                .await
                .expect("described");
            status = described.status().clone();
            if status != ExecutionStatus::Running {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, ExecutionStatus::Failed);

        // When it is started again
        let again = workflows.start(&run, json!({})).await.expect("answered");

        // Then nothing starts, and the caller learns that this name has run its course
        assert_eq!(again, Started::Ended);
        let executions = client
            .list_executions()
            .state_machine_arn(&arn)
            .send()
            .await
            .expect("executions")
            .executions;
        assert_eq!(executions.len(), 1);
    }

    #[tokio::test]
    async fn callbacks_for_an_unknown_token_say_the_task_is_gone() {
        let client = client(&moto::endpoint());
        let arn = state_machine(&client).await;
        let workflows = StepFunctions::new(client, arn.clone(), arn);
        let token = "AAAAKgAAAAIAAAAAAAAAAZ1unknown";
        assert!(matches!(
            workflows.send_task_success(token, &json!({})).await,
            Err(TaskTokenError::Gone)
        ));
        assert!(matches!(
            workflows.send_task_failure(token, "JobFailed", "{}").await,
            Err(TaskTokenError::Gone)
        ));
        assert!(matches!(
            workflows.send_task_heartbeat(token).await,
            Err(TaskTokenError::Gone)
        ));
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_unavailable_not_gone() {
        // A loopback port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let client = client(&format!("http://127.0.0.1:{port}"));
        let workflows = StepFunctions::new(client, "arn".into(), "arn".into());
        assert!(matches!(
            workflows.send_task_heartbeat("token").await,
            Err(TaskTokenError::Unavailable(_))
        ));
        let run = WorkflowRun {
            kind: WorkflowKind::Mounting,
            rne: Rne::parse("0750655E").expect("an RNE"),
            attempt: 1,
        };
        assert!(workflows.start(&run, json!({})).await.is_err());
    }
}
