//! Fault injection at every port, endpoint by endpoint: for each call a request makes to a
//! dependency (the table, the bucket, the workflow engine), the dependency goes down from that
//! call on. The answer must be 503 `unavailable` with `Retry-After`, nothing may have changed
//! (no establishment half created, no archive half completed, no workflow started), and the
//! same request sent again once the dependency is back must succeed.
//!
//! Each endpoint's request comes from `bcdi_tests::cases`; a new endpoint without a case fails
//! `every_endpoint_has_a_fault_test`.

use bcdi_shared::api::Endpoint;
use bcdi_tests::cases::{self, Case, World};
use bcdi_tests::faults::Dependency;

/// Case `variant` of `endpoint`, prepared in `world`.
async fn prepared(endpoint: Endpoint, variant: usize, world: &World) -> Case {
    cases::case(endpoint, variant, world)
        .await
        .expect("the case exists")
}

/// Runs every case of `endpoint` with each of its dependency calls failing in turn; panics
/// with every problem found.
async fn faults_at_every_call(endpoint: Endpoint) {
    let mut problems = Vec::new();
    let mut variant = 0;
    loop {
        // Without faults: the request succeeds, and makes these calls.
        let world = World::new().await;
        let Some(case) = cases::case(endpoint, variant, &world).await else {
            break;
        };
        let answer = world.send(&case.call).await;
        assert_eq!(
            answer.status, case.success,
            "{endpoint:?} ({}) without faults: {}",
            case.name, answer.text
        );
        let calls: Vec<(Dependency, usize)> = Dependency::ALL
            .into_iter()
            .map(|dependency| (dependency, world.faults.calls(dependency)))
            .collect();
        let trace = world.faults.trace();

        if calls.iter().all(|(_, count)| *count == 0) {
            // It depends on nothing: it answers with every dependency down.
            let world = World::new().await;
            let case = prepared(endpoint, variant, &world).await;
            for dependency in Dependency::ALL {
                world.faults.arm(dependency, 0);
            }
            let answer = world.send(&case.call).await;
            if answer.status != case.success {
                problems.push(format!(
                    "{} depends on nothing, yet answered {} with every dependency down",
                    case.name, answer.status
                ));
            }
            variant += 1;
            continue;
        }

        for (dependency, count) in calls {
            for from_call in 0..count {
                let world = World::new().await;
                let case = prepared(endpoint, variant, &world).await;
                let before = world.snapshot().await;
                world.faults.reset();
                world.faults.arm(dependency, from_call);
                let answer = world.send(&case.call).await;
                let failed_at = world.faults.trace();
                world.faults.heal();
                let at = format!(
                    "{} with {dependency:?} down from its call #{from_call} ({})",
                    case.name,
                    failed_at.join(", ")
                );

                // The first call that failed: one the endpoint absorbs by design makes it
                // succeed anyway.
                let first_failed = failed_at
                    .iter()
                    .find_map(|call| call.strip_suffix(" (failed)"))
                    .unwrap_or_default();
                if case.tolerates.contains(&first_failed) {
                    if answer.status != case.success {
                        problems.push(format!(
                            "{at}: a tolerated failure, yet answered {} {}",
                            answer.status, answer.text
                        ));
                    }
                    continue;
                }
                if answer.status != 503 || answer.json["error"] != "unavailable" {
                    problems.push(format!("{at}: answered {} {}", answer.status, answer.text));
                }
                if answer.headers.get("retry-after").is_none() {
                    problems.push(format!("{at}: no Retry-After"));
                }
                let after = world.snapshot().await;
                if after != before {
                    problems.push(format!(
                        "{at}: changed the state\n{}",
                        diff(&before, &after)
                    ));
                }
                let retried = world.send(&case.call).await;
                if retried.status != case.success {
                    problems.push(format!(
                        "{at}: the same request sent again answered {} {}",
                        retried.status, retried.text
                    ));
                }
            }
        }
        eprintln!(
            "{endpoint:?} ({}): calls without faults: {}",
            case.name,
            trace.join(", ")
        );
        variant += 1;
    }
    assert!(variant > 0, "{endpoint:?} has no case in bcdi_tests::cases");
    assert!(
        problems.is_empty(),
        "{endpoint:?}:\n{}",
        problems.join("\n")
    );
}

/// The lines of two snapshots that differ, as `-` before and `+` after.
fn diff(before: &str, after: &str) -> String {
    let before: Vec<&str> = before.lines().collect();
    let after: Vec<&str> = after.lines().collect();
    let gone = before.iter().filter(|line| !after.contains(line));
    let new = after.iter().filter(|line| !before.contains(line));
    gone.map(|line| format!("  - {line}\n"))
        .chain(new.map(|line| format!("  + {line}\n")))
        .collect()
}

macro_rules! fault_tests {
    ($($test:ident: $endpoint:ident,)*) => {
        const COVERED: &[Endpoint] = &[$(Endpoint::$endpoint),*];

        $(
            #[tokio::test]
            async fn $test() {
                faults_at_every_call(Endpoint::$endpoint).await;
            }
        )*
    };
}

fault_tests! {
    get_establishment_fails_cleanly_at_every_dependency_call: GetEstablishment,
    create_establishment_leaves_nothing_half_created_at_every_dependency_call: CreateEstablishment,
    get_history_fails_cleanly_at_every_dependency_call: GetHistory,
    openapi_depends_on_nothing: OpenApi,
    upload_page_depends_on_nothing: UploadPage,
    upload_assets_depend_on_nothing: UploadAsset,
    create_upload_session_fails_cleanly_at_every_dependency_call: CreateUploadSession,
    get_upload_session_fails_cleanly_at_every_dependency_call: GetUploadSession,
    create_upload_file_fails_cleanly_at_every_dependency_call: CreateUploadFile,
    create_part_urls_fails_cleanly_at_every_dependency_call: CreatePartUrls,
    list_upload_parts_fails_cleanly_at_every_dependency_call: ListUploadParts,
    complete_upload_file_fails_cleanly_at_every_dependency_call: CompleteUploadFile,
    delete_upload_file_fails_cleanly_at_every_dependency_call: DeleteUploadFile,
    submit_upload_starts_nothing_when_a_dependency_fails: SubmitUpload,
    claim_job_hands_out_nothing_when_a_dependency_fails: ClaimJob,
    heartbeat_job_fails_cleanly_at_every_dependency_call: HeartbeatJob,
    succeed_job_fails_cleanly_at_every_dependency_call: SucceedJob,
    fail_job_fails_cleanly_at_every_dependency_call: FailJob,
    list_establishments_fails_cleanly_at_every_dependency_call: ListEstablishments,
    retry_establishment_starts_nothing_when_a_dependency_fails: RetryEstablishment,
}

#[test]
fn every_endpoint_has_a_fault_test() {
    let missing: Vec<Endpoint> = Endpoint::ALL
        .into_iter()
        .filter(|endpoint| !COVERED.contains(endpoint))
        .collect();
    assert!(
        missing.is_empty(),
        "endpoints without a fault test (add a case in tests/src/cases.rs and a line to \
         fault_tests! in tests/faults.rs): {missing:?}"
    );
}
