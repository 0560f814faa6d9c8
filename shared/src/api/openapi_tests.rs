//! The OpenAPI document served at `GET /v1/openapi.json` and the router must describe the same
//! endpoints: a route added, renamed or removed on one side only fails here.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Endpoint, ErrorCode, OPENAPI_JSON};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("shared/openapi.json is valid JSON")
}

/// Every (METHOD, path) operation of the document.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has a `paths` object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("each path item is an object");
            item.keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(|method| (method.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn routed_operations() -> BTreeSet<(String, String)> {
    Endpoint::ALL
        .into_iter()
        .map(|endpoint| {
            let (method, path) = endpoint.route();
            (method.as_str().to_owned(), path.to_owned())
        })
        .collect()
}

#[test]
fn the_document_is_openapi_3_0() {
    let document = document();
    assert_eq!(document["openapi"], "3.0.3");
    assert!(document["info"]["title"].is_string());
    assert!(document["components"]["securitySchemes"]["bearerAuth"].is_object());
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let documented = documented_operations(&document());
    let routed = routed_operations();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from shared/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations in shared/openapi.json that no Endpoint serves: {unrouted:?}"
    );
}

#[test]
fn every_local_reference_resolves() {
    fn visit(node: &Value, document: &Value, broken: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let resolved = reference
                        .strip_prefix('#')
                        .and_then(|pointer| document.pointer(pointer));
                    if resolved.is_none() {
                        broken.push(reference.clone());
                    }
                }
                map.values()
                    .for_each(|value| visit(value, document, broken));
            }
            Value::Array(items) => items
                .iter()
                .for_each(|value| visit(value, document, broken)),
            _ => {}
        }
    }
    let document = document();
    let mut broken = Vec::new();
    visit(&document, &document, &mut broken);
    assert!(broken.is_empty(), "unresolved $ref: {broken:?}");
}

#[test]
fn the_error_codes_are_those_of_the_code() {
    let document = document();
    let documented: BTreeSet<&str> = document["components"]["schemas"]["Error"]["properties"]
        ["error"]["enum"]
        .as_array()
        .expect("the Error schema lists its codes")
        .iter()
        .map(|code| code.as_str().expect("codes are strings"))
        .collect();
    let all = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::NotReady,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unavailable,
    ];
    // A new variant makes this match non-exhaustive, so it cannot be forgotten in the list.
    for code in all {
        match code {
            ErrorCode::InvalidRequest
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::Conflict
            | ErrorCode::NotReady
            | ErrorCode::PayloadTooLarge
            | ErrorCode::Unavailable => {}
        }
    }
    let coded: BTreeSet<&str> = all.into_iter().map(ErrorCode::as_str).collect();
    assert_eq!(documented, coded);
}
