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

/// The event API Gateway sends for `GET <client_path>`: HTTP APIs decode the path before they
/// route it, and hand it over decoded in `rawPath` (and `requestContext.http.path`), the
/// parameter in `pathParameters`.
fn event_for_client_path(client_path: &str, cyber_key: &str) -> lambda_http::Request {
    let fixture = format!(
        "{}/fixtures/apigw-v2/get-establishment.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(fixture).expect("fixture exists");
    let mut event: Value =
        serde_json::from_str(&text.replace("{{CYBER_KEY}}", cyber_key)).expect("fixture is JSON");
    let decoded = percent_decode_lossy(client_path);
    let rne = decoded
        .strip_prefix("/v1/establishments/")
        .expect("a path under /v1/establishments/");
    event["rawPath"] = decoded.clone().into();
    event["requestContext"]["http"]["path"] = decoded.clone().into();
    event["pathParameters"]["rne"] = rne.into();
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event")
}

fn percent_decode_lossy(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match path
            .get(i + 1..i + 3)
            .map(|hex| u8::from_str_radix(hex, 16))
        {
            Some(Ok(byte)) if bytes[i] == b'%' => {
                decoded.push(byte);
                i += 3;
            }
            _ => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[tokio::test]
async fn a_path_is_decoded_once_through_the_lambda_as_through_the_local_server() {
    // Given an establishment
    let parts = Parts::in_memory();
    let key = parts.cyber.expose();
    let created = handle(
        &parts.app,
        Endpoint::CreateEstablishment,
        event("create-establishment.json", key),
    )
    .await;
    assert_eq!(created.status(), 200);

    for (client_path, expected) in [
        // An escaped letter is that letter
        ("/v1/establishments/0750655%45", 200),
        // An escaped `%` is a `%`, not the start of another escape: API Gateway hands `%45`
        // over, which must not be decoded a second time
        ("/v1/establishments/0750655%2545", 400),
        // An escaped `?` or `#` is part of the parameter, not the start of a query or fragment
        ("/v1/establishments/0750655E%3Fx=1", 400),
        ("/v1/establishments/0750655E%23x", 400),
        // A space or a letter outside ASCII is part of the parameter too
        ("/v1/establishments/0750655E%20", 400),
        ("/v1/establishments/0750655%C3%89", 400),
    ] {
        // When the Cyberlibrairie asks for it through API Gateway and the function
        let through_lambda = handle(
            &parts.app,
            Endpoint::GetEstablishment,
            event_for_client_path(client_path, key),
        )
        .await;

        // Then the answer is the local server's for the same request
        let local = parts
            .app
            .handle(
                http::Request::get(client_path)
                    .header("authorization", format!("Bearer {key}"))
                    .body(bytes::Bytes::new())
                    .expect("a request"),
            )
            .await;
        assert_eq!(through_lambda.status(), expected, "{client_path}");
        assert_eq!(local.status(), expected, "{client_path}");
        let error = |body: Value| body.get("error").cloned();
        let local_body = serde_json::from_slice(local.body()).expect("a JSON body");
        assert_eq!(
            error(json(through_lambda.body())),
            error(local_body),
            "{client_path}"
        );
    }
}
