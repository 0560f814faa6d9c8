//! The credential matrix: every endpoint with every kind of credential gets exactly the
//! contract's status: 401 for a missing, malformed, unknown or expired credential, 403 for a
//! valid credential of a party that may not call the endpoint, 404 for an establishment key or
//! upload token used on another establishment's resource. A refusal changes nothing and its
//! body holds the error and a message only: no key, token, licence, RNE or file of anyone.
//!
//! Each endpoint's request comes from `bcdi_tests::cases` (made for `OWN` with its own
//! credential); the table below says what each credential gets. A new endpoint without a row
//! fails `every_endpoint_has_a_row`.

use bcdi_shared::api::Endpoint;
use bcdi_tests::cases::{self, Case, World, OTHER, OWN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    None,
    /// The cyber key itself, in the wrong scheme.
    Malformed,
    /// Shaped like an establishment key, issued by no one.
    Unknown,
    Cyber,
    Operator,
    OwnKey,
    OtherKey,
    OwnToken,
    OtherToken,
    /// A token of `OWN` whose session ended.
    ExpiredToken,
}

/// In the order of the table's columns.
const CREDENTIALS: [Credential; 10] = [
    Credential::None,
    Credential::Malformed,
    Credential::Unknown,
    Credential::Cyber,
    Credential::Operator,
    Credential::OwnKey,
    Credential::OtherKey,
    Credential::OwnToken,
    Credential::OtherToken,
    Credential::ExpiredToken,
];

/// The `Authorization` header that presents `credential`.
fn authorization(credential: Credential, world: &World) -> Option<String> {
    let bearer = |value: &str| Some(format!("Bearer {value}"));
    match credential {
        Credential::None => None,
        Credential::Malformed => Some(format!("Basic {}", world.cyber)),
        Credential::Unknown => bearer(&format!("bcdi_est_{}", "A".repeat(43))),
        Credential::Cyber => bearer(&world.cyber),
        Credential::Operator => bearer(&world.operator),
        Credential::OwnKey => bearer(&world.own.key),
        Credential::OtherKey => bearer(&world.other.key),
        Credential::OwnToken => bearer(&world.own.token),
        Credential::OtherToken => bearer(&world.other.token),
        Credential::ExpiredToken => bearer(&world.expired_token),
    }
}

/// What no error body may contain: anyone's secrets, licence, establishment or archive.
fn secrets_of(world: &World) -> Vec<String> {
    let mut secrets = vec![
        world.cyber.clone(),
        world.operator.clone(),
        world.expired_token.clone(),
        OWN.to_owned(),
        OTHER.to_owned(),
        "Collège Jean Moulin".to_owned(),
        "ABCDEFGH".to_owned(),
    ];
    for party in [&world.own, &world.other] {
        secrets.extend([
            party.key.clone(),
            party.token.clone(),
            party.file.clone(),
            party.etag.trim_matches('"').to_owned(),
        ]);
    }
    secrets
}

/// Sends the case with `credential` in `world`; a problem, if any.
async fn check(
    world: &World,
    case: &Case,
    credential: Credential,
    expected: u16,
) -> Option<String> {
    let mut call = case.call.clone();
    call.authorization = authorization(credential, world);
    let before = world.snapshot().await;
    let answer = world.send(&call).await;
    let at = format!("{} with {credential:?}", case.name);
    if answer.status != expected {
        return Some(format!(
            "{at}: answered {} where the contract says {expected}: {}",
            answer.status, answer.text
        ));
    }
    if (200..300).contains(&expected) {
        return None;
    }

    let mut problems = Vec::new();
    let after = world.snapshot().await;
    if after != before {
        problems.push(format!(
            "changed the state:\n--- before\n{before}--- after\n{after}"
        ));
    }
    let fields: Vec<&String> = answer
        .json
        .as_object()
        .map(|body| body.keys().collect())
        .unwrap_or_default();
    let code = answer.json["error"].as_str().unwrap_or_default();
    let expected_code = match expected {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        _ => code,
    };
    if code != expected_code
        || fields
            .iter()
            .any(|field| !["error", "message", "fields"].contains(&field.as_str()))
    {
        problems.push(format!("is not the contract's error body: {}", answer.text));
    }
    for secret in secrets_of(world) {
        if !secret.is_empty() && answer.text.contains(&secret) {
            problems.push(format!("leaks {secret:?}: {}", answer.text));
        }
    }
    if expected == 401 && answer.headers.get("www-authenticate").is_none() {
        problems.push("401 without WWW-Authenticate".to_owned());
    }
    (!problems.is_empty()).then(|| format!("{at}: {}", problems.join("; ")))
}

/// Every credential on every case of `endpoint`, against `row`.
async fn matrix(endpoint: Endpoint, row: [u16; 10]) {
    let mut problems = Vec::new();
    let mut variant = 0;
    loop {
        // Refusals share a world, since they must change nothing; each success gets its own.
        let shared = World::new().await;
        let Some(case) = cases::case(endpoint, variant, &shared).await else {
            break;
        };
        for (credential, expected) in CREDENTIALS.into_iter().zip(row) {
            let problem = if (200..300).contains(&expected) {
                let world = World::new().await;
                let case = cases::case(endpoint, variant, &world)
                    .await
                    .expect("the case exists");
                check(&world, &case, credential, expected).await
            } else {
                check(&shared, &case, credential, expected).await
            };
            problems.extend(problem);
        }
        variant += 1;
    }
    assert!(variant > 0, "{endpoint:?} has no case in bcdi_tests::cases");
    assert!(
        problems.is_empty(),
        "{endpoint:?}:\n{}",
        problems.join("\n")
    );
}

macro_rules! credential_tests {
    ($($test:ident: $endpoint:ident => $row:expr,)*) => {
        const COVERED: &[Endpoint] = &[$(Endpoint::$endpoint),*];

        $(
            #[tokio::test]
            async fn $test() {
                matrix(Endpoint::$endpoint, $row).await;
            }
        )*
    };
}

// Columns: none, malformed, unknown, cyber, operator, own key, other's key, own token, other's
// token, expired token. The requests are about `OWN`: its establishment, its files.
credential_tests! {
    get_establishment_answers_each_credential_as_the_contract_says:
        GetEstablishment => [401, 401, 401, 200, 403, 200, 404, 403, 403, 401],
    create_establishment_is_for_the_cyberlibrairie_only:
        CreateEstablishment => [401, 401, 401, 200, 403, 403, 403, 403, 403, 401],
    get_history_answers_each_credential_as_the_contract_says:
        GetHistory => [401, 401, 401, 200, 403, 200, 404, 403, 403, 401],
    openapi_is_public:
        OpenApi => [200; 10],
    the_upload_page_is_public:
        UploadPage => [200; 10],
    the_upload_assets_are_public:
        UploadAsset => [200; 10],
    upload_sessions_are_minted_by_the_cyberlibrairie_or_the_establishment_itself:
        CreateUploadSession => [401, 401, 401, 201, 403, 201, 404, 403, 403, 401],
    // A token reads its own session: another establishment's token reads that one's.
    get_upload_session_takes_an_upload_token_only:
        GetUploadSession => [401, 401, 401, 403, 403, 403, 403, 200, 200, 401],
    create_upload_file_takes_an_upload_token_only:
        CreateUploadFile => [401, 401, 401, 403, 403, 403, 403, 201, 201, 401],
    part_urls_are_for_the_files_own_token_only:
        CreatePartUrls => [401, 401, 401, 403, 403, 403, 403, 200, 404, 401],
    listed_parts_are_for_the_files_own_token_only:
        ListUploadParts => [401, 401, 401, 403, 403, 403, 403, 200, 404, 401],
    completing_is_for_the_files_own_token_only:
        CompleteUploadFile => [401, 401, 401, 403, 403, 403, 403, 200, 404, 401],
    deleting_is_for_the_files_own_token_only:
        DeleteUploadFile => [401, 401, 401, 403, 403, 403, 403, 204, 404, 401],
    // Another establishment's token submits that one's archives, whose one file is still
    // uploading: not ready.
    submit_takes_an_upload_token_only:
        SubmitUpload => [401, 401, 401, 403, 403, 403, 403, 202, 409, 401],
    claim_job_is_for_the_agent_only:
        ClaimJob => [401, 401, 401, 403, 200, 403, 403, 403, 403, 401],
    heartbeat_job_is_for_the_agent_only:
        HeartbeatJob => [401, 401, 401, 403, 200, 403, 403, 403, 403, 401],
    succeed_job_is_for_the_agent_only:
        SucceedJob => [401, 401, 401, 403, 200, 403, 403, 403, 403, 401],
    fail_job_is_for_the_agent_only:
        FailJob => [401, 401, 401, 403, 200, 403, 403, 403, 403, 401],
    list_establishments_is_for_operators_only:
        ListEstablishments => [401, 401, 401, 403, 200, 403, 403, 403, 403, 401],
    retry_establishment_is_for_operators_only:
        RetryEstablishment => [401, 401, 401, 403, 202, 403, 403, 403, 403, 401],
}

#[test]
fn every_endpoint_has_a_row() {
    let missing: Vec<Endpoint> = Endpoint::ALL
        .into_iter()
        .filter(|endpoint| !COVERED.contains(endpoint))
        .collect();
    assert!(
        missing.is_empty(),
        "endpoints without a row in the credential matrix (tests/credentials.rs): {missing:?}"
    );
}
