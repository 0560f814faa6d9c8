//! The E1/E2 gauges the alarms watch (`lambda::metrics`): the sweeper's embedded-metric-format
//! line, its shape as CloudWatch reads it, and its counts taken from DynamoDB (moto).

use bcdi_shared::domain::{Instant, Status};
use bcdi_shared::lambda::metrics::{FailedCounts, ESTABLISHMENTS_IN_E1, ESTABLISHMENTS_IN_E2};
use bcdi_tests::moto;
use bcdi_tests::store_suite::{new_establishment, CREATED_AT};
use serde_json::{json, Value};

/// 2026-12-03T12:00:00.250Z, in Unix milliseconds.
const AT_MILLIS: u64 = 1_796_299_200_250;

#[test]
fn emf_line_declares_both_gauges_as_counts_without_dimensions() {
    // Given two establishments in E1 and none in E2
    let counts = FailedCounts {
        install_failed: 2,
        mount_failed: 0,
    };

    // When their line is written for the stack's namespace
    let line = counts.emf_line("BCDI/bcdi-hosting", AT_MILLIS);

    // Then it is one line of JSON in the embedded metric format: the metadata under `_aws`
    // (Unix milliseconds, the namespace, one empty dimension set, each metric's name and unit),
    // and each metric's value at the top level under its name
    assert!(!line.contains('\n'), "{line}");
    let emf: Value = serde_json::from_str(&line).expect("the line is JSON");
    assert_eq!(
        emf,
        json!({
            "_aws": {
                "Timestamp": AT_MILLIS,
                "CloudWatchMetrics": [{
                    "Namespace": "BCDI/bcdi-hosting",
                    "Dimensions": [[]],
                    "Metrics": [
                        {"Name": "EstablishmentsInE1", "Unit": "Count"},
                        {"Name": "EstablishmentsInE2", "Unit": "Count"},
                    ],
                }],
            },
            "EstablishmentsInE1": 2,
            "EstablishmentsInE2": 0,
        })
    );
}

#[tokio::test]
async fn gauges_count_the_establishments_in_e1_and_e2_now_on_dynamodb() {
    // Given a table with three establishments in E1 (one since retried), one in E2, one installing
    let store = moto::dynamodb_store().await;
    let mut e1 = Vec::new();
    for code in ["6200002H", "7200009X", "7200021K"] {
        let mut establishment = new_establishment(code, code);
        establishment.status = Status::InstallFailed;
        establishment.next_step_at = None;
        store.create(&establishment).await.expect("it is created");
        e1.push(establishment);
    }
    let retry = e1[0]
        .transition(Status::Installing, Instant::from_unix(CREATED_AT + 60))
        .expect("E1 can be retried");
    store
        .transition(&e1[0].rne, &retry)
        .await
        .expect("it is retried");
    let mut e2 = new_establishment("9710002A", "e2");
    e2.status = Status::MountFailed;
    e2.next_step_at = None;
    store.create(&e2).await.expect("it is created");
    store
        .create(&new_establishment("0750655E", "installing"))
        .await
        .expect("it is created");

    // When the sweeper counts them and writes its line
    let counts = FailedCounts::read(&*store)
        .await
        .expect("the table answers");
    let emf: Value =
        serde_json::from_str(&counts.emf_line("BCDI/test", AT_MILLIS)).expect("the line is JSON");

    // Then the line carries the establishments in each status now
    assert_eq!(emf[ESTABLISHMENTS_IN_E1], 2);
    assert_eq!(emf[ESTABLISHMENTS_IN_E2], 1);
}
