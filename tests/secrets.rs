//! No secret reaches a log. Every log line of a full run through the local server is captured
//! through the service's own subscriber (`telemetry::subscriber`, in the JSON format Lambda
//! uses, with the current span's fields), every level asked for as an operator's
//! `RUST_LOG=trace` would, while the service goes through an establishment's life: created,
//! read, re-keyed, its history read, upload sessions minted, archives uploaded, completed,
//! deleted and submitted; then every endpoint's
//! request (the agent's claim of an installation job, with the licence in its input, its
//! heartbeat, success and failure; the operators' listing and retry among them), the refusals
//! of wrong credentials, and a failure of each dependency.
//! None of the keys, tokens, licence griffes and codes, nor the signatures of presigned URLs,
//! may appear in any line logged, the embedded S3 server's (`s3s`) included: the telemetry's
//! ceiling holds the crates that log request URIs at INFO.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bcdi_shared::api::Endpoint;
use bcdi_shared::telemetry::{self, Format};
use bcdi_tests::cases::{self, Call, World, FILE_SIZE};
use bcdi_tests::faults::Dependency;
use reqwest::Method;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Every log line written, from every thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A licence of its own, so that its griffe and code are known secrets of this test.
fn licence(rne: &str) -> serde_json::Value {
    json!({
        "rne": rne,
        "griffe": "Lycée Secret-Griffe 7f3a",
        "code": "LIC-9QX7-ZK2M",
        "version": "SP",
        "agricole": true,
    })
}

/// The `X-Amz-Signature` of every presigned URL in `text`.
fn signatures(text: &str) -> Vec<String> {
    text.split("X-Amz-Signature=")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .filter(|signature| signature.len() >= 32)
        .collect()
}

#[tokio::test]
async fn a_full_lifecycle_logs_no_key_token_griffe_licence_code_or_url_signature() {
    let captured = Captured::default();
    telemetry::subscriber(Format::Json, EnvFilter::new("trace"), captured.clone()).init();

    // Everything a log must not show, gathered as the run goes.
    let mut secrets: Vec<String> = vec![
        "Lycée Secret-Griffe 7f3a".to_owned(),
        "LIC-9QX7-ZK2M".to_owned(),
        // The licence of the worlds' establishments, which install jobs carry to the agent.
        "Collège Jean Moulin".to_owned(),
        "ABCDEFGH".to_owned(),
    ];
    let mut answers = String::new();

    // Given a world: two establishments with sessions and half-uploaded archives
    let world = World::new().await;
    secrets.extend([
        world.cyber.clone(),
        world.operator.clone(),
        world.expired_token.clone(),
    ]);
    for party in [&world.own, &world.other] {
        secrets.extend([party.key.clone(), party.token.clone()]);
    }

    // When an establishment goes through its life
    let rne = "0752526N";
    let create = Call::new(Method::POST, "/v1/establishments")
        .bearer(&world.cyber)
        .body(licence(rne));
    let created = world.expect(200, create.clone()).await;
    let key = created["key"].as_str().expect("a key").to_owned();
    let rekeyed = world.expect(200, create).await;
    secrets.push(key);
    let key = rekeyed["key"].as_str().expect("a new key").to_owned();
    secrets.push(key.clone());
    for path in [
        format!("/v1/establishments/{rne}"),
        format!("/v1/establishments/{rne}/history"),
    ] {
        world
            .expect(200, Call::new(Method::GET, path).bearer(&key))
            .await;
    }
    world
        .set_status(rne, bcdi_shared::domain::Status::AwaitingBases)
        .await;
    let session = world
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
    let url = session["url"].as_str().expect("a URL");
    let token = url.split_once("#token=").expect("a token").1.to_owned();
    secrets.push(token.clone());
    let upload = |path: String| Call::new(Method::POST, path).bearer(&token);
    for (name, base) in [("data.zip", "Principale"), ("manuels.zip", "Manuels")] {
        let file = world
            .expect(
                201,
                upload("/v1/upload/files".to_owned())
                    .body(json!({"name": name, "size": FILE_SIZE, "base": base})),
            )
            .await;
        let id = file["id"].as_str().expect("an id").to_owned();
        let urls = world
            .expect(
                200,
                upload(format!("/v1/upload/files/{id}/part-urls")).body(json!({"parts": [1]})),
            )
            .await;
        answers += &urls.to_string();
        let etag = world.send_part(&token, &id, 1, vec![3; FILE_SIZE]).await;
        world
            .expect(
                200,
                Call::new(Method::GET, format!("/v1/upload/files/{id}/parts")).bearer(&token),
            )
            .await;
        world
            .expect(
                200,
                upload(format!("/v1/upload/files/{id}/complete"))
                    .body(json!({"parts": [{"part": 1, "etag": etag}]})),
            )
            .await;
        if base == "Manuels" {
            world
                .expect(
                    204,
                    Call::new(Method::DELETE, format!("/v1/upload/files/{id}")).bearer(&token),
                )
                .await;
        }
    }
    world
        .expect(
            200,
            Call::new(Method::GET, "/v1/upload/session").bearer(&token),
        )
        .await;
    world
        .expect(202, upload("/v1/upload/submit".to_owned()).body(json!({})))
        .await;

    // And every endpoint's own case runs, with its refusals and a failure of each dependency
    for endpoint in Endpoint::ALL {
        for variant in 0.. {
            let world = World::new().await;
            let Some(case) = cases::case(endpoint, variant, &world).await else {
                break;
            };
            secrets.extend([
                world.cyber.clone(),
                world.operator.clone(),
                world.own.key.clone(),
                world.own.token.clone(),
                world.other.key.clone(),
                world.other.token.clone(),
                world.expired_token.clone(),
            ]);
            for authorization in [
                None,
                Some(format!("Basic {}", world.cyber)),
                Some(format!("Bearer {}", world.other.key)),
                Some(format!("Bearer {}", world.expired_token)),
                Some(format!("Bearer {}", world.operator)),
            ] {
                let mut call = case.call.clone();
                call.authorization = authorization;
                world.send(&call).await;
            }
            for dependency in Dependency::ALL {
                world.faults.arm(dependency, 0);
                world.send(&case.call).await;
                world.faults.heal();
            }
            let answer = world.send(&case.call).await;
            answers += &answer.text;
        }
    }
    // Then nothing secret was logged
    let logs = captured.text();
    assert!(
        logs.contains("request handled") && logs.contains(rne),
        "the logs were captured: {} bytes",
        logs.len()
    );
    let signatures = signatures(&answers);
    assert!(
        signatures.len() >= 2,
        "the presigned URLs' signatures were gathered"
    );
    let found = |text: &str, secret: &str| {
        text.lines()
            .find(|line| line.contains(secret))
            .map(|line| format!("{secret:?} in: {line}"))
    };
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .filter_map(|secret| found(&logs, secret))
        .chain(
            signatures
                .iter()
                .filter_map(|signature| found(&logs, signature)),
        )
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets in the logs:\n{}",
        leaks.join("\n")
    );
}
