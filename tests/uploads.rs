//! Uploading bases, black box through HTTP against the local server and its embedded storage
//! (which checks signatures as S3 does): upload sessions, the upload API with real bytes sent to
//! presigned URLs, and each refusal the contract names. Then the `UploadStore` suite on SQLite
//! and on DynamoDB (moto).

use std::sync::Arc;

use async_trait::async_trait;
use bcdi_hosting::sqlite::SqliteStore;
use bcdi_shared::domain::{Digest, Instant, Rne, Secret, Status};
use bcdi_shared::ports::{FileState, StoreError, UploadFile, UploadSession, UploadStore};
use bcdi_tests::app::{read, TestApp};
use bcdi_tests::storage_suite::{bare, bytes, put};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const MIB: usize = 1024 * 1024;

/// The default part size (`UPLOAD_PART_SIZE`).
const PART: usize = 8 * MIB;

/// An establishment in status 2, ready for its bases; its key.
async fn ready(app: &TestApp, code: &str) -> String {
    let key = app.create(code).await;
    let rne = Rne::parse(code).expect("a valid RNE");
    let establishment = app
        .store
        .get(&rne)
        .await
        .expect("the store answers")
        .expect("it exists");
    let transition = establishment
        .transition(Status::AwaitingBases, Instant::now())
        .expect("1 may become 2");
    app.store
        .transition(&rne, &transition)
        .await
        .expect("the transition is stored");
    key
}

/// A new upload session of `code`, minted with the cyber key: its token.
async fn session(app: &TestApp, code: &str) -> String {
    let (status, body) = app
        .post(
            &format!("/v1/establishments/{code}/upload-sessions"),
            Some(&app.cyber_key),
            &json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let url = body["url"].as_str().expect("a URL");
    url.split_once("#token=")
        .expect("a token in the fragment")
        .1
        .to_owned()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    read(request.send().await.expect("request sent")).await
}

async fn new_file(app: &TestApp, token: &str, name: &str, base: &str, size: usize) -> Value {
    let (status, body) = app
        .post(
            "/v1/upload/files",
            Some(token),
            &json!({"name": name, "size": size, "base": base}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn files(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/v1/upload/session", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body["files"].as_array().expect("files").clone()
}

/// Sends `parts` (number, bytes) of file `id` to their presigned URLs; their ETags.
async fn send(app: &TestApp, token: &str, id: &str, parts: &[(u32, Vec<u8>)]) -> Vec<String> {
    let numbers: Vec<u32> = parts.iter().map(|(part, _)| *part).collect();
    let (status, body) = app
        .post(
            &format!("/v1/upload/files/{id}/part-urls"),
            Some(token),
            &json!({ "parts": numbers }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let urls = body["urls"].as_array().expect("urls");
    let mut etags = Vec::new();
    for (part, content) in parts {
        let url = urls
            .iter()
            .find(|url| url["part"] == *part)
            .and_then(|url| url["url"].as_str())
            .expect("a URL for each part asked");
        let (status, etag) = put(url, content.clone()).await;
        assert_eq!(status, 200, "PUT of part {part}");
        etags.push(etag.expect("an ETag"));
    }
    etags
}

async fn complete(app: &TestApp, token: &str, id: &str, parts: &[(u32, &str)]) -> (u16, Value) {
    let parts: Vec<Value> = parts
        .iter()
        .map(|(part, etag)| json!({"part": part, "etag": etag}))
        .collect();
    app.post(
        &format!("/v1/upload/files/{id}/complete"),
        Some(token),
        &json!({ "parts": parts }),
    )
    .await
}

/// A complete one-part file `name` of base `base`: its id.
async fn complete_file(app: &TestApp, token: &str, name: &str, base: &str) -> String {
    let file = new_file(app, token, name, base, 1000).await;
    let id = file["id"].as_str().expect("an id").to_owned();
    let etags = send(app, token, &id, &[(1, bytes(9, 1000))]).await;
    let (status, body) = complete(app, token, &id, &[(1, &etags[0])]).await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test]
async fn a_session_url_carries_its_token_in_the_fragment_and_lasts_a_few_hours() {
    let app = TestApp::spawn().await;
    let key = ready(&app, "0750655E").await;
    let before = Instant::now().unix();

    let (status, body) = app
        .post(
            "/v1/establishments/0750655E/upload-sessions",
            Some(&key),
            &json!({}),
        )
        .await;

    assert_eq!(status, 201, "{body}");
    let url = body["url"].as_str().expect("a URL");
    let prefix = format!("{}/v1/upload#token=bcdi_upl_", app.base);
    assert!(url.starts_with(&prefix), "{url}");
    let expires = Instant::parse_rfc3339(body["expires_at"].as_str().expect("an instant"))
        .expect("RFC 3339")
        .unix();
    assert!((before + 4 * 3600..=Instant::now().unix() + 4 * 3600).contains(&expires));
}

#[tokio::test]
async fn sessions_are_minted_in_status_2_e2_or_4_only_and_for_ones_own_establishment() {
    let app = TestApp::spawn().await;
    let installing = app.create("0750654D").await;
    let key = ready(&app, "0750655E").await;
    let path = |code: &str| format!("/v1/establishments/{code}/upload-sessions");

    let (status, body) = app
        .post(&path("0750654D"), Some(&installing), &json!({}))
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("not_ready")));
    let (status, _) = app.post(&path("0750654D"), Some(&key), &json!({})).await;
    assert_eq!(status, 404, "another establishment's key sees nothing");
    let (status, _) = app
        .post(&path("0750655E"), Some(&app.operator_key), &json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app.post(&path("0750655E"), None, &json!({})).await;
    assert_eq!(status, 401);
    let (status, _) = app.post(&path("0750655E"), Some(&key), &json!({})).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn three_parts_go_straight_to_storage_then_complete_and_mounting_starts() {
    // Given a session, and an archive of three parts (two of 8 MiB and a short last one)
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let size = 2 * PART + 1000;
    let (status, body) = app.get("/v1/upload/session", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rne"], "0750655E");
    assert_eq!(body["limits"]["extensions"], json!([".zip"]));
    assert_eq!(body["files"], json!([]));

    // When the page creates the file and sends its parts to the presigned URLs
    let file = new_file(&app, &token, "Data.ZIP", "Principale", size).await;
    assert_eq!(file["part_size"], PART);
    assert_eq!(file["part_count"], 3);
    assert_eq!(file["state"], "uploading");
    assert!(file.get("upload_id").is_none(), "{file}");
    let id = file["id"].as_str().expect("an id");
    let contents = [bytes(1, PART), bytes(2, PART), bytes(3, 1000)];
    let etags = send(
        &app,
        &token,
        id,
        &[
            (3, contents[2].clone()),
            (1, contents[0].clone()),
            (2, contents[1].clone()),
        ],
    )
    .await;

    // Then the stored parts are listed in order with their sizes and ETags
    let (status, body) = app
        .get(&format!("/v1/upload/files/{id}/parts"), Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<(u64, String, u64)> = body["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|part| {
            (
                part["part"].as_u64().unwrap(),
                bare(part["etag"].as_str().unwrap()).to_owned(),
                part["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, String, u64)> = [(1, 1), (2, 2), (3, 0)]
        .iter()
        .map(|(part, etag)| {
            (
                *part,
                bare(&etags[*etag]).to_owned(),
                contents[*part as usize - 1].len() as u64,
            )
        })
        .collect();
    assert_eq!(listed, expected);

    // When the page completes the file, then it is complete and stored whole
    let (status, body) = complete(
        &app,
        &token,
        id,
        &[(1, &etags[1]), (2, &etags[2]), (3, &etags[0])],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "complete");
    let key = format!("bases/0750655E/{id}.zip");
    assert_eq!(
        app.storage.size(&key).await.expect("the archive"),
        size as u64
    );
    assert_eq!(
        app.storage
            .read_range(&key, PART as u64 - 2, 4)
            .await
            .expect("a range"),
        [&contents[0][PART - 2..], &contents[1][..2]].concat()
    );

    // When the page submits, then mounting starts with the archive, exported to e-sidoc
    let (status, body) = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "3");
    assert!(body["timestamp"].as_i64().expect("a timestamp") > Instant::now().unix());
    assert!(body["next_step_at"].is_string());
    let runs: Vec<String> = app.workflows.calls().iter().map(|run| run.name()).collect();
    assert_eq!(runs, ["0750655E-provisioning-1", "0750655E-mounting-1"]);
    assert_eq!(
        app.workflows.inputs()[1],
        json!({"files": [{"id": id, "name": "Data.ZIP", "base": "Principale",
                          "size": size, "esidoc_export": true}]})
    );
}

#[tokio::test]
async fn an_expired_token_is_401_saying_so_and_changes_nothing() {
    // Given a file uploaded through a session, and a session that expired
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let id = complete_file(&app, &token, "data.zip", "Principale").await;
    let expired = Secret::generate("bcdi_upl");
    app.uploads
        .create_session(
            &expired.digest(),
            &UploadSession {
                rne: Rne::parse("0750655E").unwrap(),
                expires_at: Instant::from_unix(Instant::now().unix() - 1),
            },
        )
        .await
        .expect("stored");
    let expired = expired.expose();

    // Then every call with it is 401, saying the session expired
    let calls = [
        (reqwest::Method::GET, "/v1/upload/session".to_owned(), None),
        (
            reqwest::Method::POST,
            "/v1/upload/files".to_owned(),
            Some(json!({"name": "b.zip", "size": 10, "base": "Manuels"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/upload/files/{id}"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/v1/upload/submit".to_owned(),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in calls {
        let (status, answer) = call(&app, method, &path, Some(expired), body.as_ref()).await;
        assert_eq!(status, 401, "{path}: {answer}");
        assert_eq!(answer["error"], "unauthorized");
        assert!(
            answer["message"].as_str().unwrap().contains("expired"),
            "{answer}"
        );
    }

    // And nothing was changed or started
    let listed = files(&app, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "complete");
    assert_eq!(app.workflows.distinct_runs().len(), 1, "provisioning only");
}

#[tokio::test]
async fn another_establishments_file_is_404_and_stays_untouched() {
    // Given a file of one establishment, half uploaded
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    ready(&app, "0750654D").await;
    let owner = session(&app, "0750655E").await;
    let intruder = session(&app, "0750654D").await;
    let file = new_file(&app, &owner, "data.zip", "Principale", PART + 10).await;
    let id = file["id"].as_str().expect("an id");
    let etags = send(&app, &owner, id, &[(1, bytes(1, PART))]).await;

    // When the other establishment's token names that file, in every call
    let parts = json!({"parts": [1]});
    let completion = json!({"parts": [{"part": 1, "etag": etags[0]}]});
    let calls = [
        (
            reqwest::Method::POST,
            format!("/v1/upload/files/{id}/part-urls"),
            Some(&parts),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/upload/files/{id}/parts"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/upload/files/{id}/complete"),
            Some(&completion),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/upload/files/{id}"),
            None,
        ),
    ];
    for (method, path, body) in calls {
        let (status, answer) = call(&app, method, &path, Some(&intruder), body).await;
        // Then it is 404, as if the file did not exist
        assert_eq!(status, 404, "{path}: {answer}");
        assert_eq!(answer["error"], "not_found");
    }

    // And the owner's file and its part are as they were
    let listed = files(&app, &owner).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "uploading");
    let (status, body) = app
        .get(&format!("/v1/upload/files/{id}/parts"), Some(&owner))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["parts"].as_array().map(Vec::len), Some(1));
    assert_eq!(files(&app, &intruder).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_wrong_extension_is_400_naming_the_name_and_creates_nothing() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    for name in ["data.rar", "data.zip.exe", "zip", "../data.zip"] {
        let (status, body) = app
            .post(
                "/v1/upload/files",
                Some(&token),
                &json!({"name": name, "size": 1000, "base": "Principale"}),
            )
            .await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"], "invalid_request");
        assert!(body["fields"]["name"].is_string(), "{body}");
    }
    assert_eq!(files(&app, &token).await, Vec::<Value>::new());
}

#[tokio::test]
async fn an_oversized_file_is_413_and_creates_nothing() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let (status, body) = app.get("/v1/upload/session", Some(&token)).await;
    assert_eq!(status, 200);
    let max = body["limits"]["max_file_size"].as_u64().expect("a limit");
    assert_eq!(max, 10 * 1024 * 1024 * 1024);

    let (status, body) = app
        .post(
            "/v1/upload/files",
            Some(&token),
            &json!({"name": "data.zip", "size": max + 1, "base": "Principale"}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(files(&app, &token).await, Vec::<Value>::new());

    // The largest archive allowed is accepted, in at most 10,000 parts.
    let file = new_file(&app, &token, "data.zip", "Principale", max as usize).await;
    assert!(file["part_count"].as_u64().unwrap() <= 10_000);
}

#[tokio::test]
async fn more_files_than_the_limit_is_400_and_creates_nothing() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    for i in 0..10 {
        new_file(
            &app,
            &token,
            &format!("base{i}.zip"),
            &format!("Base {i}"),
            1000,
        )
        .await;
    }
    let (status, body) = app
        .post(
            "/v1/upload/files",
            Some(&token),
            &json!({"name": "one-more.zip", "size": 1000, "base": "Encore"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(files(&app, &token).await.len(), 10);
}

#[tokio::test]
async fn a_wrong_etag_is_400_naming_the_part_and_loses_nothing() {
    // Given a file whose two parts are stored
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let file = new_file(&app, &token, "data.zip", "Principale", PART + 10).await;
    let id = file["id"].as_str().expect("an id");
    let etags = send(&app, &token, id, &[(1, bytes(1, PART)), (2, bytes(2, 10))]).await;

    // When the completion gives a wrong ETag for part 2
    let wrong = format!("\"{}\"", "0".repeat(32));
    let (status, body) = complete(&app, &token, id, &[(1, &etags[0]), (2, &wrong)]).await;

    // Then it is a 400 that names part 2
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    let detail = body["fields"]["parts"].as_str().expect("the wrong parts");
    assert!(detail.contains("part 2"), "{detail}");
    assert!(!detail.contains("part 1"), "{detail}");

    // And both parts are still stored: the right ETags complete the file
    let (status, body) = app
        .get(&format!("/v1/upload/files/{id}/parts"), Some(&token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["parts"].as_array().map(Vec::len), Some(2));
    let (status, body) = complete(&app, &token, id, &[(1, &etags[0]), (2, &etags[1])]).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("complete")));
}

#[tokio::test]
async fn a_missing_part_is_400_naming_it_and_loses_nothing() {
    // Given a file of two parts of which only the first was sent
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let file = new_file(&app, &token, "data.zip", "Principale", PART + 10).await;
    let id = file["id"].as_str().expect("an id");
    let etags = send(&app, &token, id, &[(1, bytes(1, PART))]).await;

    // When the completion leaves part 2 out, or names it though it was not sent
    let (status, body) = complete(&app, &token, id, &[(1, &etags[0])]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["fields"]["parts"].as_str().unwrap().contains("part 2"),
        "{body}"
    );
    let (status, body) = complete(&app, &token, id, &[(1, &etags[0]), (2, &etags[0])]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["fields"]["parts"].as_str().unwrap().contains("part 2"),
        "{body}"
    );

    // Then the file is still uploading, its first part kept: sending the second completes it
    let etag = send(&app, &token, id, &[(2, bytes(2, 10))]).await;
    let (status, _) = complete(&app, &token, id, &[(1, &etags[0]), (2, &etag[0])]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_short_part_is_400_naming_it() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let file = new_file(&app, &token, "data.zip", "Principale", 2 * PART).await;
    let id = file["id"].as_str().expect("an id");
    let etags = send(
        &app,
        &token,
        id,
        &[(1, bytes(1, PART - 1)), (2, bytes(2, PART))],
    )
    .await;
    let (status, body) = complete(&app, &token, id, &[(1, &etags[0]), (2, &etags[1])]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["fields"]["parts"].as_str().unwrap().contains("part 1"),
        "{body}"
    );
}

#[tokio::test]
async fn submitting_twice_starts_mounting_exactly_once() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    complete_file(&app, &token, "data.zip", "Principale").await;

    let first = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    let second = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;

    assert_eq!((first.0, second.0), (202, 202), "{first:?} {second:?}");
    let mountings: Vec<String> = app
        .workflows
        .distinct_runs()
        .into_iter()
        .filter(|name| name.contains("mounting"))
        .collect();
    assert_eq!(mountings, ["0750655E-mounting-1"]);
}

#[tokio::test]
async fn submit_is_not_ready_without_a_complete_file_or_while_one_is_uploading() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;

    let (status, body) = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("not_ready")));

    complete_file(&app, &token, "data.zip", "Principale").await;
    new_file(&app, &token, "manuels.zip", "Manuels", 1000).await;
    let (status, body) = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("not_ready")));
    assert_eq!(app.workflows.distinct_runs().len(), 1, "provisioning only");
}

#[tokio::test]
async fn a_failed_start_of_mounting_is_503_and_can_be_retried() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    complete_file(&app, &token, "data.zip", "Principale").await;

    app.workflows.set_failing(true);
    let (status, body) = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));

    app.workflows.set_failing(false);
    let (status, _) = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    assert_eq!(status, 202);
    assert!(app
        .workflows
        .distinct_runs()
        .contains("0750655E-mounting-1"));
}

#[tokio::test]
async fn the_base_named_principale_is_exported_unless_the_school_chose_one() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    complete_file(&app, &token, "manuels.zip", "Manuels").await;
    let principale = complete_file(&app, &token, "data.zip", "principale").await;
    let (status, _) = app
        .post("/v1/upload/submit", Some(&token), &json!({}))
        .await;
    assert_eq!(status, 202);
    let input = app.workflows.inputs().last().cloned().expect("a start");
    let exported: Vec<&Value> = input["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|file| file["esidoc_export"] == true)
        .map(|file| &file["id"])
        .collect();
    assert_eq!(exported, [&json!(principale)]);

    // A base the school marks is the one exported.
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let (status, file) = app
        .post(
            "/v1/upload/files",
            Some(&token),
            &json!({"name": "t.zip", "size": 1000, "base": "Travperso", "esidoc_export": true}),
        )
        .await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["esidoc_export"], true);
}

#[tokio::test]
async fn the_same_file_again_resumes_its_upload() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let first = new_file(&app, &token, "data.zip", "Principale", PART + 10).await;
    let id = first["id"].as_str().unwrap();
    send(&app, &token, id, &[(1, bytes(1, PART))]).await;

    // The page reloaded: the same file is picked again, and finds its stored part
    let again = new_file(&app, &token, "data.zip", "Principale", PART + 10).await;
    assert_eq!(again["id"], first["id"]);
    let (_, body) = app
        .get(&format!("/v1/upload/files/{id}/parts"), Some(&token))
        .await;
    assert_eq!(body["parts"][0]["part"], 1);

    // Another file under the same name replaces the unfinished one
    let other = new_file(&app, &token, "data.zip", "Principale", 20).await;
    assert_ne!(other["id"], first["id"]);
    let listed = files(&app, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], other["id"]);
}

/// QA's F1: a replacement refused because a concurrent addition took the place its removal had
/// freed lost the school's unfinished upload. The request is held right after its first write
/// of the old file while another file is added; the replacement must still succeed (it never
/// frees a place) and nothing be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replacement_racing_an_addition_at_the_limit_loses_nothing() {
    let sqlite = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
    let uploads = Arc::new(HeldUploads::new(sqlite.clone()));
    let app = TestApp::spawn_with(sqlite, uploads.clone()).await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    for i in 0..9 {
        new_file(&app, &token, &format!("f{i}.zip"), &format!("B{i}"), 10).await;
    }
    let old = new_file(&app, &token, "x.zip", "X", 100).await;

    // The tenth file is replaced while another tries to take an eleventh place
    let (held, release) = uploads.hold_next_write().await;
    let bigger = json!({"name": "x.zip", "size": 200, "base": "X"});
    let replace = app.post("/v1/upload/files", Some(&token), &bigger);
    let addition = async {
        held.await.expect("the replacement wrote");
        let one_more = json!({"name": "y.zip", "size": 10, "base": "Y"});
        let answer = app.post("/v1/upload/files", Some(&token), &one_more).await;
        release.send(()).expect("the replacement waits");
        answer
    };
    let ((status, body), (added, refusal)) = tokio::join!(replace, addition);

    assert_eq!(status, 201, "the replacement: {body}");
    assert_ne!(added, 201, "an eleventh file: {refusal}");
    let listed = files(&app, &token).await;
    assert_eq!(listed.len(), 10, "{listed:?}");
    let x: Vec<_> = listed
        .iter()
        .filter(|file| file["name"] == "x.zip")
        .collect();
    assert_eq!(x.len(), 1, "{listed:?}");
    assert_eq!(x[0]["id"], body["id"]);
    assert_ne!(x[0]["id"], old["id"]);
}

/// QA's F2: identical bodies sent at once started as many files. The same name, base and size
/// while uploading answers the same file, however the requests interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_file_asked_at_once_is_started_once() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let body = json!({"name": "data.zip", "size": 1000, "base": "Principale"});
    let answers = futures::future::join_all(
        (0..5).map(|_| app.post("/v1/upload/files", Some(&token), &body)),
    )
    .await;

    let listed = files(&app, &token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    for (status, file) in answers {
        assert_eq!(status, 201, "{file}");
        assert_eq!(file["id"], listed[0]["id"]);
    }
}

/// QA's F3: a completion racing a removal assembled the archive after the record was gone,
/// leaving an unlisted object in storage. The completion is held right after it marked the
/// file complete while the removal runs: the removal must wait for the archive (409) and the
/// file end listed and stored, never stored unlisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_racing_a_removal_leaves_no_archive_behind() {
    let sqlite = Arc::new(SqliteStore::in_memory().expect("in-memory SQLite"));
    let uploads = Arc::new(HeldUploads::new(sqlite.clone()));
    let app = TestApp::spawn_with(sqlite, uploads.clone()).await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let file = new_file(&app, &token, "data.zip", "Principale", 1000).await;
    let id = file["id"].as_str().expect("an id").to_owned();
    let etags = send(&app, &token, &id, &[(1, bytes(3, 1000))]).await;

    let (held, release) = uploads.hold_next_write().await;
    let parts = [(1, etags[0].as_str())];
    let completion = complete(&app, &token, &id, &parts);
    let path = format!("/v1/upload/files/{id}");
    let removal = async {
        held.await.expect("the completion wrote");
        let answer = call(&app, reqwest::Method::DELETE, &path, Some(&token), None).await;
        release.send(()).expect("the completion waits");
        answer
    };
    let ((completed, body), (removed, _)) = tokio::join!(completion, removal);

    assert_eq!(removed, 409);
    assert_eq!(completed, 200, "{body}");
    let listed = files(&app, &token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "complete");
    let key = format!("bases/0750655E/{id}.zip");
    assert_eq!(app.storage.size(&key).await.ok(), Some(1000));

    // Once assembled, it is removed with its archive.
    let (removed, _) = call(&app, reqwest::Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(removed, 204);
    assert!(app.storage.size(&key).await.is_err(), "no archive is left");
}

/// An `UploadStore` that can hold the next request completing, removing or replacing a file, right after
/// its write, until the test releases it: a race made deterministic.
struct HeldUploads {
    inner: Arc<dyn UploadStore>,
    hold: tokio::sync::Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl HeldUploads {
    fn new(inner: Arc<dyn UploadStore>) -> Self {
        Self {
            inner,
            hold: tokio::sync::Mutex::new(None),
        }
    }

    /// A receiver told when the next write is held, and the sender that releases it.
    async fn hold_next_write(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (held_tx, held_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.hold.lock().await = Some((held_tx, release_rx));
        (held_rx, release_tx)
    }

    async fn held(&self) {
        let hold = self.hold.lock().await.take();
        if let Some((held, release)) = hold {
            let _ = held.send(());
            let _ = release.await;
        }
    }
}

#[async_trait]
impl UploadStore for HeldUploads {
    async fn create_session(
        &self,
        token: &Digest,
        session: &UploadSession,
    ) -> Result<(), StoreError> {
        self.inner.create_session(token, session).await
    }

    async fn find_session(&self, token: &Digest) -> Result<Option<UploadSession>, StoreError> {
        self.inner.find_session(token).await
    }

    async fn files(&self, rne: &Rne) -> Result<Vec<UploadFile>, StoreError> {
        self.inner.files(rne).await
    }

    async fn file(&self, rne: &Rne, id: &str) -> Result<Option<UploadFile>, StoreError> {
        self.inner.file(rne, id).await
    }

    async fn add_file(&self, file: &UploadFile, max_files: usize) -> Result<(), StoreError> {
        self.inner.add_file(file, max_files).await
    }

    async fn replace_file(&self, old: &UploadFile, new: &UploadFile) -> Result<(), StoreError> {
        let replaced = self.inner.replace_file(old, new).await;
        self.held().await;
        replaced
    }

    async fn complete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        let completed = self.inner.complete_file(rne, id).await;
        self.held().await;
        completed
    }

    async fn reopen_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        self.inner.reopen_file(rne, id).await
    }

    async fn delete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError> {
        let deleted = self.inner.delete_file(rne, id).await;
        self.held().await;
        deleted
    }

    async fn delete_file_in(
        &self,
        rne: &Rne,
        id: &str,
        state: FileState,
    ) -> Result<(), StoreError> {
        let deleted = self.inner.delete_file_in(rne, id, state).await;
        self.held().await;
        deleted
    }
}

#[tokio::test]
async fn delete_aborts_an_upload_or_removes_an_archive() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let uploading = new_file(&app, &token, "a.zip", "A", 1000).await;
    let uploading = uploading["id"].as_str().unwrap();
    let complete = complete_file(&app, &token, "b.zip", "B").await;

    for id in [uploading, complete.as_str()] {
        let (status, _) = call(
            &app,
            reqwest::Method::DELETE,
            &format!("/v1/upload/files/{id}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 204);
    }
    assert_eq!(files(&app, &token).await, Vec::<Value>::new());
    let key = format!("bases/0750655E/{complete}.zip");
    assert!(app.storage.size(&key).await.is_err(), "the archive is gone");
}

#[tokio::test]
async fn the_upload_api_takes_only_a_valid_upload_token() {
    let app = TestApp::spawn().await;
    let key = ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let unknown = Secret::generate("bcdi_upl");

    for credential in [
        None,
        Some("bcdi_upl_"),
        Some(unknown.expose()),
        Some("nonsense"),
    ] {
        let (status, body) = app.get("/v1/upload/session", credential).await;
        assert_eq!(status, 401, "{credential:?}: {body}");
    }
    let (status, _) = call(
        &app,
        reqwest::Method::GET,
        "/v1/upload/session",
        Some("two words"),
        None,
    )
    .await;
    assert_eq!(status, 401, "malformed");
    for credential in [&app.cyber_key, &app.operator_key, &key] {
        let (status, body) = app.get("/v1/upload/session", Some(credential)).await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = app
            .post("/v1/upload/submit", Some(credential), &json!({}))
            .await;
        assert_eq!(status, 403);
    }
    // An upload token opens the upload API only.
    let (status, _) = app.get("/v1/establishments/0750655E", Some(&token)).await;
    assert_eq!(status, 403);
    let (status, _) = app.get("/v1/upload/session", Some(&token)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_fields_and_bad_part_numbers_are_400() {
    let app = TestApp::spawn().await;
    ready(&app, "0750655E").await;
    let token = session(&app, "0750655E").await;
    let (status, body) = app
        .post(
            "/v1/upload/files",
            Some(&token),
            &json!({"name": "a.zip", "size": 10, "base": "A", "extra": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["fields"]["extra"], "unknown field");
    let (status, body) = app
        .post(
            "/v1/upload/files",
            Some(&token),
            &json!({"name": "a.zip", "size": -1, "base": ""}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["fields"]["size"].is_string() && body["fields"]["base"].is_string());

    let file = new_file(&app, &token, "a.zip", "A", 1000).await;
    let id = file["id"].as_str().unwrap();
    for parts in [json!([0]), json!([2]), json!([]), json!("1")] {
        let (status, body) = app
            .post(
                &format!("/v1/upload/files/{id}/part-urls"),
                Some(&token),
                &json!({ "parts": parts }),
            )
            .await;
        assert_eq!(status, 400, "{parts}: {body}");
        assert!(body["fields"]["parts"].is_string());
    }
}

mod store_sqlite {
    use std::sync::Arc;

    use bcdi_hosting::sqlite::SqliteStore;
    use bcdi_tests::uploads_suite::Uploads;

    async fn store() -> Uploads {
        Arc::new(SqliteStore::in_memory().expect("an in-memory database"))
    }

    bcdi_tests::uploads_suite!(store);
}

mod store_dynamodb {
    use std::sync::Arc;

    use bcdi_shared::adapters::dynamodb::{create_table, DynamoDbStore};
    use bcdi_tests::moto;
    use bcdi_tests::uploads_suite::Uploads;

    /// A store on a new, empty table of its own.
    async fn store() -> Uploads {
        let client = moto::dynamodb_client().await;
        let table = moto::unique_table_name("uploads");
        create_table(&client, &table)
            .await
            .unwrap_or_else(|error| panic!("creating table {table} on moto: {error}"));
        Arc::new(DynamoDbStore::new(client, table))
    }

    bcdi_tests::uploads_suite!(store);
}
