//! The establishments API, black box, through HTTP against the local server.

use bcdi_shared::domain::{
    Establishment, Griffe, Instant, LicenceCode, NewEstablishment, Rne, Secret, Status, Version,
};
use bcdi_shared::ports::jobs::JobStore;
use bcdi_tests::app::{licence, TestApp, RNES};
use bcdi_tests::cases::{Call, World, INSTALLING, OWN};
use reqwest::Method;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn unknown_establishment_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .get("/v1/establishments/0750655E", Some(&app.cyber_key))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn malformed_rne_is_400_naming_the_field() {
    let app = TestApp::spawn().await;
    for rne in ["0120010Z", "075065", "ABCDEFGH"] {
        let (status, body) = app
            .get(&format!("/v1/establishments/{rne}"), Some(&app.cyber_key))
            .await;
        assert_eq!(status, 400, "{rne}");
        assert_eq!(body["error"], "invalid_request");
        assert!(body["fields"]["rne"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn every_uai_example_of_the_domain_notes_can_be_created() {
    let app = TestApp::spawn().await;
    for rne in RNES {
        app.create(&rne.to_lowercase()).await;
        let (status, body) = app
            .get(&format!("/v1/establishments/{rne}"), Some(&app.cyber_key))
            .await;
        assert_eq!((status, body["rne"].as_str()), (200, Some(rne)));
    }
}

#[tokio::test]
async fn creation_answers_a_key_status_1_and_when_the_server_is_expected() {
    let app = TestApp::spawn().await;
    let before = now();
    let (status, body) = app
        .post(
            "/v1/establishments",
            Some(&app.cyber_key),
            &licence("0750655E"),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rne"], "0750655E");
    assert_eq!(body["status"], "1");
    assert!(body["key"].as_str().unwrap().len() >= 43);
    // The default install estimate is two hours.
    let timestamp = body["timestamp"].as_i64().unwrap();
    assert!(
        (before + 7200..=now() + 7200).contains(&timestamp),
        "{body}"
    );
    let next_step_at = body["next_step_at"].as_str().unwrap();
    assert!(next_step_at.ends_with('Z'), "{next_step_at}");
    assert_eq!(app.workflows.distinct_runs().len(), 1);
    assert_eq!(app.workflows.calls()[0].name(), "0750655E-provisioning-1");
}

#[tokio::test]
async fn created_establishment_reads_back_in_status_1_with_a_french_message() {
    let app = TestApp::spawn().await;
    let key = app.create("0750655E").await;

    for reader in [&app.cyber_key, &key] {
        let (status, body) = app.get("/v1/establishments/0750655E", Some(reader)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "1");
        assert_eq!(body["version"], "CL");
        assert_eq!(body["agricole"], false);
        assert_eq!(body["bases"], json!([]));
        assert!(body["timestamp"].is_i64());
        assert!(body.get("connection").is_none() && body.get("error").is_none());
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("L'installation de votre serveur BCDI est en cours"),
            "{message}"
        );
        // Licence secrets are never returned.
        assert!(!body.to_string().contains("ABCDEFGH"), "{body}");
        assert!(!body.to_string().contains("Jean Moulin"), "{body}");
    }
}

#[tokio::test]
async fn retried_post_returns_a_new_key_and_starts_nothing() {
    let app = TestApp::spawn().await;
    let first = app.create("0750655E").await;

    let (status, body) = app
        .post(
            "/v1/establishments",
            Some(&app.cyber_key),
            &licence("0750655E"),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    let second = body["key"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(body["status"], "1");
    // A retry in status 1 makes sure the run is started, which starts it once: one execution.
    assert_eq!(
        app.workflows.distinct_runs().len(),
        1,
        "no second provisioning"
    );
    let (old, _) = app.get("/v1/establishments/0750655E", Some(&first)).await;
    assert_eq!(old, 401, "the previous key stops working at once");
    let (new, _) = app.get("/v1/establishments/0750655E", Some(second)).await;
    assert_eq!(new, 200);
    let (_, history) = app
        .get("/v1/establishments/0750655E/history", Some(second))
        .await;
    assert_eq!(history["events"].as_array().unwrap().len(), 1, "{history}");
}

/// What a creation leaves when its provisioning failed to start while a retry of the same
/// body re-keyed the record: the removal of the record, conditional on the first key, is
/// refused, and the record stays in 1 with no run started.
async fn created_without_provisioning(app: &TestApp, rne: &str, key: &str) {
    let new = NewEstablishment {
        rne: Rne::parse(rne).unwrap(),
        griffe: Griffe::parse("Collège Jean Moulin").unwrap(),
        code: LicenceCode::parse("ABCDEFGH").unwrap(),
        version: Version::CollegeLycee,
        agricole: false,
    };
    let now = Instant::now();
    let digest = Secret::from_presented(key).digest();
    let establishment = Establishment::create(new, digest, now, now.plus_seconds(3600));
    app.store.create(&establishment).await.unwrap();
}

#[tokio::test]
async fn a_retried_post_starts_the_provisioning_that_a_failed_creation_left_unstarted() {
    // Given an establishment in 1 whose provisioning never started
    let app = TestApp::spawn().await;
    created_without_provisioning(&app, "0750655E", "bcdi_est_first").await;
    // And a workflow engine that still fails
    app.workflows.set_failing(true);

    // When the Cyberlibrairie retries its creation
    let (status, body) = app
        .post(
            "/v1/establishments",
            Some(&app.cyber_key),
            &licence("0750655E"),
        )
        .await;

    // Then it is 503 and nothing changed: the key is still the one it was
    assert_eq!(status, 503, "{body}");
    let (status, _) = app
        .get("/v1/establishments/0750655E", Some("bcdi_est_first"))
        .await;
    assert_eq!(status, 200);

    // When the engine is back and the Cyberlibrairie retries again
    app.workflows.set_failing(false);
    let (status, body) = app
        .post(
            "/v1/establishments",
            Some(&app.cyber_key),
            &licence("0750655E"),
        )
        .await;

    // Then the provisioning is started, and the new key is the one that works
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.workflows.distinct_runs(),
        ["0750655E-provisioning-1".to_owned()].into(),
    );
    let (status, _) = app
        .get("/v1/establishments/0750655E", body["key"].as_str())
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get("/v1/establishments/0750655E", Some("bcdi_est_first"))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_creation_after_one_undone_once_its_run_had_ended_provisions_under_the_next_attempt() {
    // Given a creation undone after its provisioning run had started anyway (the engine
    // answered too late) and ended on finding no record: that run's name cannot serve again
    let app = TestApp::spawn().await;
    let first = app.create("0750655E").await;
    app.store
        .delete_unstarted(
            &Rne::parse("0750655E").unwrap(),
            &Secret::from_presented(&first).digest(),
        )
        .await
        .unwrap();
    app.workflows.end_every_run();

    // When the Cyberlibrairie creates the establishment again
    let (status, body) = app
        .post(
            "/v1/establishments",
            Some(&app.cyber_key),
            &licence("0750655E"),
        )
        .await;

    // Then it is provisioned under the next attempt, whose run no name has used
    assert_eq!(status, 200, "{body}");
    assert!(
        app.workflows
            .distinct_runs()
            .contains("0750655E-provisioning-2"),
        "{:?}",
        app.workflows.distinct_runs()
    );
    let (status, view) = app
        .get("/v1/establishments/0750655E", body["key"].as_str())
        .await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("1")),
        "{view}"
    );
}

#[tokio::test]
async fn a_different_licence_for_an_existing_establishment_is_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let key = app.create("0750655E").await;

    for (field, value) in [
        ("griffe", json!("Lycée Victor Hugo")),
        ("code", json!("ZZZZ-9999")),
        ("version", json!("SP")),
        ("agricole", json!(true)),
    ] {
        let mut body = licence("0750655E");
        body[field] = value;
        let (status, answer) = app
            .post("/v1/establishments", Some(&app.cyber_key), &body)
            .await;
        assert_eq!(status, 409, "{field}");
        assert_eq!(answer["error"], "conflict");
    }
    let (status, _) = app.get("/v1/establishments/0750655E", Some(&key)).await;
    assert_eq!(status, 200, "the key still works");
    assert_eq!(app.workflows.calls().len(), 1);
}

#[tokio::test]
async fn griffe_is_compared_after_trimming_outer_whitespace() {
    let app = TestApp::spawn().await;
    app.create("0750655E").await;
    let mut body = licence("0750655E");
    body["griffe"] = json!("  Collège Jean Moulin \n");
    let (status, _) = app
        .post("/v1/establishments", Some(&app.cyber_key), &body)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_invalid_body_is_400_naming_every_wrong_field() {
    let app = TestApp::spawn().await;
    let body = json!({"rne": "0120010Z", "griffe": "", "code": "a b", "version": "XX", "agricole": "oui", "colour": 1});
    let (status, answer) = app
        .post("/v1/establishments", Some(&app.cyber_key), &body)
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "invalid_request");
    let fields: Vec<&str> = answer["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["agricole", "code", "colour", "griffe", "rne", "version"]
    );
    assert!(app.workflows.calls().is_empty());
}

#[tokio::test]
async fn missing_fields_and_non_json_bodies_are_400() {
    let app = TestApp::spawn().await;
    let (status, answer) = app
        .post("/v1/establishments", Some(&app.cyber_key), &json!({}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["fields"]["rne"], "is required");

    for raw in ["", "not json", "[1]", "{\"rne\":"] {
        let response = app
            .http
            .post(app.url("/v1/establishments"))
            .bearer_auth(&app.cyber_key)
            .body(raw)
            .send()
            .await
            .unwrap();
        let (status, answer) = bcdi_tests::app::read(response).await;
        assert_eq!(status, 400, "{raw:?}");
        assert_eq!(answer["error"], "invalid_request");
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let mut body = licence("0750655E");
    body["griffe"] = Value::String("x".repeat(70 * 1024));
    let (status, answer) = app
        .post("/v1/establishments", Some(&app.cyber_key), &body)
        .await;
    assert_eq!(status, 413);
    assert_eq!(answer["error"], "payload_too_large");
    let (status, _) = app
        .get("/v1/establishments/0750655E", Some(&app.cyber_key))
        .await;
    assert_eq!(status, 404, "nothing was created");
}

async fn twenty_parallel_identical_posts(app: TestApp) {
    let body = licence("0750655E");
    let posts = (0..20).map(|_| app.post("/v1/establishments", Some(&app.cyber_key), &body));
    let answers = futures::future::join_all(posts).await;

    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert_eq!(app.workflows.distinct_runs().len(), 1, "one provisioning");
    let mut valid = 0;
    for (_, body) in &answers {
        let (status, _) = app
            .get("/v1/establishments/0750655E", body["key"].as_str())
            .await;
        valid += usize::from(status == 200);
    }
    assert_eq!(valid, 1, "exactly one key is left valid");
    let (_, history) = app
        .get("/v1/establishments/0750655E/history", Some(&app.cyber_key))
        .await;
    assert_eq!(history["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn twenty_parallel_identical_posts_create_one_establishment_and_start_one_provisioning() {
    twenty_parallel_identical_posts(TestApp::spawn().await).await;
}

#[tokio::test]
async fn twenty_parallel_identical_posts_on_dynamodb_create_one_establishment() {
    twenty_parallel_identical_posts(
        TestApp::spawn_with_store(bcdi_tests::moto::dynamodb_store().await).await,
    )
    .await;
}

#[tokio::test]
async fn history_lists_the_creation_event_oldest_first() {
    let app = TestApp::spawn().await;
    let key = app.create("0160010Z").await;
    let (status, body) = app
        .get("/v1/establishments/0160010Z/history", Some(&key))
        .await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], "1");
    assert!(events[0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(events[0]["timestamp"].is_i64());
}

#[tokio::test]
async fn a_failed_provisioning_start_is_503_leaves_nothing_and_a_retry_succeeds() {
    let app = TestApp::spawn().await;
    app.workflows.set_failing(true);

    let response = app
        .http
        .post(app.url("/v1/establishments"))
        .bearer_auth(&app.cyber_key)
        .json(&licence("0750655E"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let (status, _) = app
        .get("/v1/establishments/0750655E", Some(&app.cyber_key))
        .await;
    assert_eq!(status, 404, "no establishment is left half-created");

    app.workflows.set_failing(false);
    app.create("0750655E").await;
    assert_eq!(app.workflows.distinct_runs().len(), 1);
}

/// Every credential on every establishment endpoint gets exactly the contract's code.
#[tokio::test]
async fn credential_matrix_of_the_establishment_endpoints() {
    let app = TestApp::spawn().await;
    let own = app.create("0750655E").await;
    let other = app.create("0750654D").await;
    let unknown = "bcdi_est_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();

    struct Case<'a> {
        name: &'a str,
        header: Option<String>,
        get: u16,
        history: u16,
        post_new: u16,
    }
    let bearer = |key: &str| Some(format!("Bearer {key}"));
    let cases = [
        Case {
            name: "none",
            header: None,
            get: 401,
            history: 401,
            post_new: 401,
        },
        Case {
            name: "malformed",
            header: Some("Basic abc".into()),
            get: 401,
            history: 401,
            post_new: 401,
        },
        Case {
            name: "empty bearer",
            header: Some("Bearer ".into()),
            get: 401,
            history: 401,
            post_new: 401,
        },
        Case {
            name: "unknown",
            header: bearer(&unknown),
            get: 401,
            history: 401,
            post_new: 401,
        },
        Case {
            name: "cyber",
            header: bearer(&app.cyber_key),
            get: 200,
            history: 200,
            post_new: 200,
        },
        Case {
            name: "operator",
            header: bearer(&app.operator_key),
            get: 403,
            history: 403,
            post_new: 403,
        },
        Case {
            name: "own key",
            header: bearer(&own),
            get: 200,
            history: 200,
            post_new: 403,
        },
        Case {
            name: "other's key",
            header: bearer(&other),
            get: 404,
            history: 404,
            post_new: 403,
        },
    ];
    for (index, case) in cases.iter().enumerate() {
        let send = |request: reqwest::RequestBuilder| async {
            let request = match &case.header {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            let response = request.send().await.unwrap();
            let unauthorized = response.headers().contains_key("www-authenticate");
            let (status, body) = bcdi_tests::app::read(response).await;
            if status == 401 {
                assert!(unauthorized, "401 names the scheme");
            }
            if status >= 400 {
                assert!(
                    body["error"].is_string() && body["message"].is_string(),
                    "{body}"
                );
                assert!(
                    body.get("rne").is_none() && body.get("status").is_none(),
                    "leaks nothing"
                );
            }
            status
        };
        let get = send(app.http.get(app.url("/v1/establishments/0750655E"))).await;
        let history = send(app.http.get(app.url("/v1/establishments/0750655E/history"))).await;
        let post_new = send(
            app.http
                .post(app.url("/v1/establishments"))
                .json(&licence(RNES[2 + index])),
        )
        .await;
        assert_eq!(
            (get, history, post_new),
            (case.get, case.history, case.post_new),
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn another_establishments_key_cannot_tell_whether_an_rne_exists() {
    let app = TestApp::spawn().await;
    let key = app.create("0750655E").await;
    app.create("0750654D").await;
    let (existing, a) = app.get("/v1/establishments/0750654D", Some(&key)).await;
    let (missing, b) = app.get("/v1/establishments/0160010Z", Some(&key)).await;
    assert_eq!((existing, missing), (404, 404));
    assert_eq!(a, b);
}

#[tokio::test]
async fn the_openapi_document_is_served_without_credentials() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(body["paths"]["/v1/establishments"].is_object(), "{body}");
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/v1/nothing", Some(&app.cyber_key)).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let response = app
        .http
        .delete(app.url("/v1/establishments/0750655E"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
}

#[tokio::test]
async fn paths_outside_the_api_and_the_bucket_get_the_apis_json_404() {
    // Given the service with its embedded storage on the same port, as `serve` runs it
    let app = TestApp::spawn().await;

    // When a browser or a mistyped curl asks for a path that is neither
    for path in [
        "/",
        "/favicon.ico",
        "/establishments/0750655E",
        "/bcdi-basesX/a",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();

        // Then the answer is the API's error body, not an S3 XML error
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let (status, body) = bcdi_tests::app::read(response).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}"
        );
    }

    // And the bucket's own paths are still storage's, which refuses an unsigned request
    let response = app
        .http
        .get(app.url("/bcdi-bases/any.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert!(body.contains("<Error>"), "{body}");
}

#[tokio::test]
async fn a_percent_encoded_path_is_the_path_it_encodes() {
    // Given an establishment
    let app = TestApp::spawn().await;
    app.create("0750655E").await;

    // When its paths are sent with escapes, in a parameter or in a fixed segment
    for path in [
        "/v1/establishments/0750655%45",
        "/v1/establishments/%30%37%35%30%36%35%35%45",
        "/v1/%65stablishments/0750655e",
    ] {
        let (status, body) = app.get(path, Some(&app.cyber_key)).await;

        // Then each reads the establishment, as API Gateway decodes paths before routing
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["rne"], "0750655E", "{path}");
    }
    let (status, body) = app
        .get(
            "/v1/establishments/0750655%45/histor%79",
            Some(&app.cyber_key),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["status"], "1");
}

#[tokio::test]
async fn a_malformed_escape_in_the_path_is_400_and_an_encoded_slash_404() {
    let app = TestApp::spawn().await;
    app.create("0750655E").await;
    for path in [
        "/v1/establishments/%zz",
        "/v1/establishments/0750655%4",
        "/v1/establishments/%C3",
        "/v1/establishments/0750655E%FF/history",
        "/v1/%zzestablishments/0750655E",
    ] {
        let (status, body) = app.get(path, Some(&app.cyber_key)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request", "{path}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("%XX")),
            "{body}"
        );
    }
    // A parameter cannot hold a `/`: that path names no endpoint
    for path in [
        "/v1/establishments/0750655E%2Fhistory",
        "/v1/establishments/0750655E%2f",
    ] {
        let (status, body) = app.get(path, Some(&app.cyber_key)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "not_found", "{path}");
    }
}

/// `body` sent as it is (serde_json cannot write a key twice), with `Authorization: Bearer`.
async fn post_raw(world: &World, path: &str, credential: &str, body: &str) -> (u16, Value) {
    let response = world
        .http
        .post(format!("{}{path}", world.base))
        .bearer_auth(credential)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the request is sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_key_given_twice_in_a_body_is_400_naming_it_and_changes_nothing() {
    let world = World::new().await;
    let before = world.snapshot().await;

    // At the top level: neither establishment is created, whichever value would have won.
    let body = r#"{"rne": "0750656F", "rne": "0160010Z", "griffe": "Collège Jean Moulin",
        "code": "ABCDEFGH", "version": "CL", "agricole": false}"#;
    let (status, answer) = post_raw(&world, "/v1/establishments", &world.cyber, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_request");
    assert_eq!(answer["fields"]["rne"], "is given twice", "{answer}");
    assert_eq!(world.snapshot().await, before);

    // Nested, in the result an agent reports: the job stays leased, the workflow hears nothing.
    let id = world.claim().await;
    let leased = world.snapshot().await;
    let body = r#"{"result": {"host": "127.0.0.1", "port": 8123, "host": "10.0.0.1"}}"#;
    let path = format!("/v1/agent/jobs/{id}/succeed");
    let (status, answer) = post_raw(&world, &path, &world.operator, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["fields"]["result.host"], "is given twice",
        "{answer}"
    );
    assert_eq!(world.snapshot().await, leased);

    // In a list of objects, as `complete` reads its parts.
    let body = r#"{"parts": [{"part": 1, "etag": "a", "part": 2}]}"#;
    let path = format!("/v1/upload/files/{}/complete", world.own.file);
    let (status, answer) = post_raw(&world, &path, &world.own.token, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["fields"]["parts[0].part"], "is given twice",
        "{answer}"
    );
    assert_eq!(world.snapshot().await, leased);
}

#[tokio::test]
async fn a_heartbeat_eta_in_the_past_or_too_far_ahead_is_400_and_renews_nothing() {
    let world = World::new().await;
    let id = world.claim().await;
    let establishment = format!("/v1/establishments/{INSTALLING}");
    let shown = |view: &Value| (view["next_step_at"].clone(), view["timestamp"].clone());
    let before = shown(&world.expect(200, get(&establishment, &world.cyber)).await);
    let lease = world
        .table
        .get(&world.install_job)
        .await
        .unwrap()
        .unwrap()
        .lease;
    assert!(lease.is_some());
    // A renewal made now would move the lease's end (whole seconds) past the claim's.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let in_days = |days: i64| Instant::from_unix(Instant::now().unix() + days * 86_400).rfc3339();
    let path = format!("/v1/agent/jobs/{id}/heartbeat");
    for (eta, why) in [
        ("0000-01-01T00:00:00Z".to_owned(), "must not be in the past"),
        (in_days(-1), "must not be in the past"),
        (
            "9999-01-01T00:00:00Z".to_owned(),
            "must be at most 30 days ahead",
        ),
        (in_days(31), "must be at most 30 days ahead"),
    ] {
        let body = json!({ "eta": eta }).to_string();
        let (status, answer) = post_raw(&world, &path, &world.operator, &body).await;
        assert_eq!(status, 400, "{eta}: {answer}");
        assert_eq!(answer["error"], "invalid_request");
        assert_eq!(answer["fields"]["eta"], why, "{eta}: {answer}");
    }
    let after = shown(&world.expect(200, get(&establishment, &world.cyber)).await);
    assert_eq!(after, before);
    let job = world.table.get(&world.install_job).await.unwrap().unwrap();
    assert_eq!(job.lease, lease, "a refused heartbeat renewed the lease");

    // An eta within the bound is taken.
    let eta = in_days(29);
    let body = json!({ "eta": eta }).to_string();
    let (status, answer) = post_raw(&world, &path, &world.operator, &body).await;
    assert_eq!(status, 200, "{answer}");
    let view = world.expect(200, get(&establishment, &world.cyber)).await;
    assert_eq!(view["next_step_at"], eta.as_str());
}

fn get(path: &str, credential: &str) -> Call {
    Call::new(Method::GET, path).bearer(credential)
}

#[tokio::test]
async fn a_whitespace_only_body_stands_for_an_empty_object_on_every_endpoint_without_fields() {
    for blank in ["", " \r\n\t"] {
        let world = World::new().await;
        let path = format!("/v1/establishments/{OWN}/upload-sessions");
        let (status, answer) = post_raw(&world, &path, &world.cyber, blank).await;
        assert_eq!(status, 201, "{blank:?}: {answer}");

        // Nothing is complete yet: the answer is about that, not about the body.
        let (status, answer) = post_raw(&world, "/v1/upload/submit", &world.own.token, blank).await;
        assert_eq!(status, 409, "{blank:?}: {answer}");
        assert_eq!(answer["error"], "not_ready");

        world.set_status(INSTALLING, Status::InstallFailed).await;
        let path = format!("/v1/admin/establishments/{INSTALLING}/retry");
        let (status, answer) = post_raw(&world, &path, &world.operator, blank).await;
        assert_eq!(status, 202, "{blank:?}: {answer}");
    }
}

#[tokio::test]
async fn a_tampered_cursor_is_400_with_a_message_about_the_query() {
    let world = World::new().await;
    let call = get(
        "/v1/admin/establishments?status=2&cursor=bm90LWEtY3Vyc29y",
        &world.operator,
    );
    let answer = world.expect(400, call).await;
    assert_eq!(answer["error"], "invalid_request");
    assert!(answer["fields"]["cursor"].is_string(), "{answer}");
    assert_eq!(answer["message"], "The query has invalid parameters.");
}
