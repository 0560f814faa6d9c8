//! The E1/E2 gauges the alarms watch (`lambda::metrics`): the sweeper's embedded-metric-format
//! line, its shape as CloudWatch reads it, and its counts taken from DynamoDB (moto).

use std::sync::Arc;

use bcdi_shared::adapters::dynamodb::{create_table, DynamoDbStore};
use bcdi_shared::domain::{Instant, Status};
use bcdi_shared::lambda::metrics::{FailedCounts, ESTABLISHMENTS_IN_E1, ESTABLISHMENTS_IN_E2};
use bcdi_shared::lambda::notifications::Sweeper;
use bcdi_shared::notify::{NotificationSettings, Notifier};
use bcdi_shared::ports::EstablishmentStore;
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

#[tokio::test]
async fn each_sweeper_run_writes_one_line_of_the_gauges_now() {
    // Given the scheduled sweeper on a table with one establishment in E2, no webhook set
    let client = moto::dynamodb_client().await;
    let table = moto::unique_table_name("sweeper-gauges");
    create_table(&client, &table)
        .await
        .expect("the table is created");
    let store = Arc::new(DynamoDbStore::new(client, table));
    let settings = NotificationSettings::from_lookup(|_| None).expect("no webhook is valid");
    let sweeper = Sweeper {
        notifier: Notifier::new(store.clone(), settings).expect("a notifier"),
        establishments: store.clone(),
        metrics_namespace: "BCDI/test-stack".to_owned(),
    };
    let mut e2 = new_establishment("9710002A", "e2");
    e2.status = Status::MountFailed;
    e2.next_step_at = None;
    store.create(&e2).await.expect("it is created");

    // When it runs twice, the establishment retried in between
    let mut first = Vec::new();
    sweeper
        .run_once(&mut first)
        .await
        .expect("the sweep succeeds");
    let retry = e2
        .transition(Status::Mounting, Instant::from_unix(CREATED_AT + 60))
        .expect("E2 can be retried");
    store
        .transition(&e2.rne, &retry)
        .await
        .expect("it is retried");
    let mut second = Vec::new();
    sweeper
        .run_once(&mut second)
        .await
        .expect("the sweep succeeds");

    // Then each run wrote exactly one newline-terminated EMF line in the sweeper's namespace,
    // with the counts of that moment
    for (output, in_e2) in [(&first, 1), (&second, 0)] {
        let text = String::from_utf8(output.clone()).expect("UTF-8");
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text}");
        let emf: Value = serde_json::from_str(text.trim_end()).expect("the line is JSON");
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "BCDI/test-stack"
        );
        assert!(emf["_aws"]["Timestamp"]
            .as_u64()
            .is_some_and(|ms| ms > AT_MILLIS / 2));
        assert_eq!(emf[ESTABLISHMENTS_IN_E1], 0);
        assert_eq!(emf[ESTABLISHMENTS_IN_E2], in_e2);
    }
}
