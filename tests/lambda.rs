//! Each endpoint's Lambda entry, fed the API Gateway HTTP API (payload 2.0) events that API
//! Gateway and `cargo lambda invoke` send. Fixtures: `fixtures/apigw-v2/`.

use bcdi_shared::api::Endpoint;
use bcdi_shared::lambda::handle;
use bcdi_tests::app::Parts;
use lambda_http::Body;
use serde_json::Value;

/// The fixture `name`, with the test's cyber key in place of `{{CYBER_KEY}}`.
fn event(name: &str, cyber_key: &str) -> lambda_http::Request {
    let path = format!("{}/fixtures/apigw-v2/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    lambda_http::request::from_str(&text.replace("{{CYBER_KEY}}", cyber_key))
        .expect("fixture is an API Gateway event")
}

fn json(body: &Body) -> Value {
    match body {
        Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[tokio::test]
async fn create_then_get_then_history_through_their_lambdas() {
    let parts = Parts::in_memory();
    let key = parts.cyber.expose();

    let created = handle(
        &parts.app,
        Endpoint::CreateEstablishment,
        event("create-establishment.json", key),
    )
    .await;
    assert_eq!(created.status(), 200);
    assert_eq!(
        created.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(json(created.body())["status"], "1");
    assert_eq!(parts.workflows.calls().len(), 1);

    let read = handle(
        &parts.app,
        Endpoint::GetEstablishment,
        event("get-establishment.json", key),
    )
    .await;
    assert_eq!(read.status(), 200);
    assert_eq!(json(read.body())["rne"], "0750655E");

    let history = handle(
        &parts.app,
        Endpoint::GetHistory,
        event("get-history.json", key),
    )
    .await;
    assert_eq!(history.status(), 200);
    assert_eq!(json(history.body())["events"][0]["status"], "1");
}

#[tokio::test]
async fn a_base64_encoded_body_is_decoded() {
    let parts = Parts::in_memory();
    let response = handle(
        &parts.app,
        Endpoint::CreateEstablishment,
        event("create-establishment-base64.json", parts.cyber.expose()),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
}

#[tokio::test]
async fn the_openapi_lambda_needs_no_credential() {
    let parts = Parts::in_memory();
    let response = handle(&parts.app, Endpoint::OpenApi, event("get-openapi.json", "")).await;
    assert_eq!(response.status(), 200);
    assert!(json(response.body())["openapi"].is_string());
}

#[tokio::test]
async fn a_function_answers_only_its_own_endpoint() {
    let parts = Parts::in_memory();
    let response = handle(
        &parts.app,
        Endpoint::GetHistory,
        event("get-establishment.json", parts.cyber.expose()),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response.body())["error"], "not_found");
}

#[tokio::test]
async fn errors_keep_the_contract_shape_through_the_lambda() {
    let parts = Parts::in_memory();
    let response = handle(
        &parts.app,
        Endpoint::GetEstablishment,
        event("get-establishment.json", "wrong"),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(json(response.body())["error"], "unauthorized");
}
