//! Executions kept across restarts, idempotent starts, and a realistic pair of workflows.

use std::time::Instant;

use serde_json::{json, Value};

use super::super::{ExecutorError, StartOutcome, StateMachineSource, Status, TaskError};
use super::{failed, finished, machine, open, succeeded, Fakes, TempDb, SECOND};

#[tokio::test]
async fn starting_an_existing_execution_name_starts_nothing() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("f", |_, _| Ok(json!("done")));
    let definition = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "f", "End": true}}});
    let executor = open(&db, &fakes, vec![machine("m", definition)]).await;

    let first = executor
        .start("m", "0750655E-provisioning-1", json!({"n": 1}))
        .await
        .unwrap();
    finished(&executor, "0750655E-provisioning-1").await;
    let again = executor
        .start("m", "0750655E-provisioning-1", json!({"n": 2}))
        .await
        .unwrap();

    assert_eq!(
        (first, again),
        (StartOutcome::Started, StartOutcome::AlreadyExists)
    );
    assert_eq!(fakes.calls("f").len(), 1);
    let description = executor
        .describe("0750655E-provisioning-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(description.input, json!({"n": 1}));
}

#[tokio::test]
async fn unknown_machines_bad_names_and_unknown_executions_are_errors() {
    let db = TempDb::new();
    let definition = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
    let executor = open(&db, &Fakes::new(), vec![machine("m", definition)]).await;

    assert!(matches!(
        executor.start("other", "e", json!({})).await,
        Err(ExecutorError::UnknownStateMachine(_))
    ));
    assert!(matches!(
        executor.start("m", "has space", json!({})).await,
        Err(ExecutorError::InvalidExecutionName(_))
    ));
    assert!(executor.describe("nothing").await.unwrap().is_none());
    assert!(matches!(
        executor.wait_until_finished("nothing").await,
        Err(ExecutorError::UnknownExecution(_))
    ));
}

#[tokio::test]
async fn a_wait_resumes_after_a_restart_with_its_original_end() {
    // Given: an execution in a Wait of 15 seconds (300 ms here).
    let db = TempDb::new();
    let fakes = Fakes::new();
    let definition = json!({
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": 15, "Next": "After"},
            "After": {"Type": "Pass", "Result": "after", "ResultPath": "$.step", "End": true}
        }
    });
    let machines = vec![machine("m", definition)];
    let executor = open(&db, &fakes, machines.clone()).await;
    let started = Instant::now();
    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    tokio::time::sleep(SECOND * 3).await;

    // When: the process stops and comes back after the wait was due.
    drop(executor);
    tokio::time::sleep(SECOND * 15).await;
    let reopened = Instant::now();
    let executor = open(&db, &fakes, machines).await;

    // Then: it goes on at once, without waiting 15 seconds again.
    let output = succeeded(&finished(&executor, "e").await);
    assert_eq!(output, json!({"rne": "x", "step": "after"}));
    assert!(started.elapsed() >= SECOND * 15);
    assert!(
        reopened.elapsed() < SECOND * 15,
        "the wait was not restarted"
    );
}

fn callback_definition(timeout_seconds: u64) -> Value {
    json!({
        "StartAt": "Install",
        "States": {
            "Install": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "job", "Payload": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": timeout_seconds,
                "ResultPath": "$.install",
                "End": true
            }
        }
    })
}

#[tokio::test]
async fn a_task_waiting_for_its_token_still_waits_for_it_after_a_restart() {
    // Given
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let machines = vec![machine("m", callback_definition(500))];
    let executor = open(&db, &fakes, machines.clone()).await;
    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    let token = fakes.token("job", 1).await;
    tokio::time::sleep(SECOND * 2).await;

    // When: the server restarts, then the job calls back with the token it was given.
    drop(executor);
    let executor = open(&db, &fakes, machines).await;
    executor
        .send_task_success(&token, json!({"server": "srv-1"}))
        .await
        .unwrap();

    // Then: the function is not called again, and the result arrives.
    let output = succeeded(&finished(&executor, "e").await);
    assert_eq!(output, json!({"rne": "x", "install": {"server": "srv-1"}}));
    assert_eq!(fakes.calls("job").len(), 1);
}

#[tokio::test]
async fn a_token_deadline_is_kept_across_a_restart() {
    // Given: a task that times out 25 seconds (500 ms) after it started.
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let machines = vec![machine("m", callback_definition(25))];
    let executor = open(&db, &fakes, machines.clone()).await;
    executor.start("m", "e", json!({})).await.unwrap();
    fakes.token("job", 1).await;
    tokio::time::sleep(SECOND * 2).await;

    // When: the process is down past that deadline.
    drop(executor);
    tokio::time::sleep(SECOND * 25).await;
    let reopened = Instant::now();
    let executor = open(&db, &fakes, machines).await;

    // Then: it times out at once, not 25 seconds after the restart.
    let (error, _) = failed(&finished(&executor, "e").await);
    assert_eq!(error, "States.Timeout");
    assert!(reopened.elapsed() < SECOND * 20);
    assert_eq!(fakes.calls("job").len(), 1);
}

#[tokio::test]
async fn a_function_being_called_at_the_restart_is_called_again() {
    // Given: the first call never returns (the process dies during it).
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on_async("record", |_, n| async move {
        if n == 1 {
            std::future::pending::<()>().await;
        }
        Ok(json!({"call": n}))
    });
    let definition = json!({
        "StartAt": "Record",
        "States": {"Record": {"Type": "Task", "Resource": "record", "End": true}}
    });
    let machines = vec![machine("m", definition)];
    let executor = open(&db, &fakes, machines.clone()).await;
    executor.start("m", "e", json!({})).await.unwrap();
    fakes.nth_call("record", 1).await;

    // When
    drop(executor);
    let executor = open(&db, &fakes, machines).await;

    // Then: at least once, as Step Functions does with Lambda.
    assert_eq!(
        succeeded(&finished(&executor, "e").await),
        json!({"call": 2})
    );
}

#[tokio::test]
async fn a_retry_backoff_resumes_after_a_restart() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("flaky", |_, n| match n {
        1 => Err(TaskError::new("Lambda.ServiceException", "")),
        _ => Ok(json!("ok")),
    });
    let definition = json!({
        "StartAt": "Call",
        "States": {"Call": {
            "Type": "Task",
            "Resource": "flaky",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 1}],
            "End": true
        }}
    });
    let machines = vec![machine("m", definition)];
    let executor = open(&db, &fakes, machines.clone()).await;
    executor.start("m", "e", json!({})).await.unwrap();
    fakes.nth_call("flaky", 1).await;
    tokio::time::sleep(SECOND * 2).await;

    drop(executor);
    let executor = open(&db, &fakes, machines).await;

    assert_eq!(succeeded(&finished(&executor, "e").await), json!("ok"));
    let calls = fakes.calls("flaky");
    assert_eq!(calls.len(), 2, "the used attempt is remembered");
    assert!(calls[1].at - calls[0].at >= SECOND * 10);
}

// A pair of workflows shaped like the ones in infra/statemachines: status 1, an install job
// that calls back with its token, status 2; a failure anywhere records E1.
const PROVISIONING: &str = r#"{
  "Comment": "Provisions one establishment's BCDI server.",
  "StartAt": "RecordInstalling",
  "TimeoutSeconds": 86400,
  "States": {
    "RecordInstalling": {
      "Type": "Task",
      "Resource": "${RecordStatusFunctionArn}",
      "Parameters": {"rne.$": "$.rne", "attempt.$": "$.attempt", "status": "1"},
      "ResultPath": null,
      "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2}],
      "Next": "InstallServer"
    },
    "InstallServer": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
      "Parameters": {
        "FunctionName": "${StartInstallJobFunctionArn}",
        "Payload": {
          "rne.$": "$.rne",
          "execution.$": "$$.Execution.Name",
          "token.$": "$$.Task.Token"
        }
      },
      "TimeoutSeconds": 3600,
      "HeartbeatSeconds": 900,
      "ResultPath": "$.install",
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "RecordE1"}],
      "Next": "RecordInstalled"
    },
    "RecordInstalled": {
      "Type": "Task",
      "Resource": "${RecordStatusFunctionArn}",
      "Parameters": {"rne.$": "$.rne", "status": "2", "url.$": "$.install.url"},
      "ResultPath": null,
      "Next": "StartMounting"
    },
    "StartMounting": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "${StartWorkflowFunctionArn}", "Payload": {"rne.$": "$.rne", "kind": "mounting"}},
      "ResultSelector": {"started.$": "$.Payload.started"},
      "ResultPath": "$.mounting",
      "Next": "Installed"
    },
    "Installed": {"Type": "Succeed"},
    "RecordE1": {
      "Type": "Task",
      "Resource": "${RecordStatusFunctionArn}",
      "Parameters": {"rne.$": "$.rne", "status": "E1", "error.$": "$.failure.Error"},
      "ResultPath": null,
      "Next": "InstallFailed"
    },
    "InstallFailed": {"Type": "Fail", "Error": "InstallFailed", "Cause": "The install job failed: status E1."}
  }
}"#;

// Mounting: waits for the school to mount its volume, checking every few seconds.
const MOUNTING: &str = r#"{
  "StartAt": "CheckMounted",
  "States": {
    "CheckMounted": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "${CheckMountFunctionArn}", "Payload": {"rne.$": "$.rne"}},
      "ResultSelector": {"mounted.$": "$.Payload.mounted", "checks.$": "$.Payload.checks"},
      "ResultPath": "$.check",
      "Next": "Mounted?"
    },
    "Mounted?": {
      "Type": "Choice",
      "Choices": [
        {"Variable": "$.check.mounted", "BooleanEquals": true, "Next": "RecordMounted"},
        {"Variable": "$.check.checks", "NumericGreaterThanEquals": 5, "Next": "GiveUp"}
      ],
      "Default": "WaitBeforeChecking"
    },
    "WaitBeforeChecking": {"Type": "Wait", "SecondsPath": "$.pollSeconds", "Next": "CheckMounted"},
    "RecordMounted": {
      "Type": "Task",
      "Resource": "${RecordStatusFunctionArn}",
      "Parameters": {"rne.$": "$.rne", "status": "4"},
      "ResultPath": null,
      "End": true
    },
    "GiveUp": {"Type": "Fail", "Error": "NotMounted", "Cause": "The volume was never mounted."}
  }
}"#;

fn realistic_machines() -> Vec<StateMachineSource> {
    let functions = [
        ("RecordStatusFunctionArn", "record-status"),
        ("StartInstallJobFunctionArn", "start-install-job"),
        ("StartWorkflowFunctionArn", "start-workflow"),
        ("CheckMountFunctionArn", "check-mount"),
    ];
    [("provisioning", PROVISIONING), ("mounting", MOUNTING)]
        .into_iter()
        .map(|(name, text)| {
            functions.iter().fold(
                StateMachineSource::new(name, text),
                |source, (placeholder, function)| source.substitute(*placeholder, *function),
            )
        })
        .collect()
}

fn statuses(fakes: &Fakes, rne: &str) -> Vec<String> {
    fakes
        .calls("record-status")
        .iter()
        .filter(|call| call.payload["rne"] == rne)
        .map(|call| call.payload["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_realistic_provisioning_then_mounting_runs_to_the_end() {
    // Given: every function works; the volume is mounted at the third check.
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("record-status", |_, _| Ok(json!({"ok": true})));
    fakes.on("start-install-job", |_, _| Ok(json!({"job": "queued"})));
    fakes.on("start-workflow", |_, _| Ok(json!({"started": true})));
    fakes.on("check-mount", |_, n| {
        Ok(json!({"mounted": n >= 3, "checks": n}))
    });
    let executor = open(&db, &fakes, realistic_machines()).await;

    // When: provisioning runs and the install job reports success with its token.
    let input = json!({"rne": "0750655E", "attempt": 1});
    executor
        .start("provisioning", "0750655E-provisioning-1", input)
        .await
        .unwrap();
    let job = fakes.nth_call("start-install-job", 1).await;
    assert_eq!(job["execution"], "0750655E-provisioning-1");
    executor
        .send_task_success(
            job["token"].as_str().unwrap(),
            json!({"url": "https://bcdi.example/0750655E"}),
        )
        .await
        .unwrap();
    let provisioning = finished(&executor, "0750655E-provisioning-1").await;

    // And mounting runs, polling twice.
    let input = json!({"rne": "0750655E", "pollSeconds": 2});
    executor
        .start("mounting", "0750655E-mounting-1", input)
        .await
        .unwrap();
    let mounting = finished(&executor, "0750655E-mounting-1").await;

    // Then
    let output = succeeded(&provisioning);
    assert_eq!(
        output["install"],
        json!({"url": "https://bcdi.example/0750655E"})
    );
    assert_eq!(output["mounting"], json!({"started": true}));
    succeeded(&mounting);
    assert_eq!(fakes.calls("check-mount").len(), 3);
    assert_eq!(statuses(&fakes, "0750655E"), ["1", "2", "4"]);
}

#[tokio::test]
async fn a_realistic_failed_install_records_e1() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("record-status", |_, _| Ok(json!({"ok": true})));
    fakes.on("start-install-job", |_, _| Ok(json!({"job": "queued"})));
    let executor = open(&db, &fakes, realistic_machines()).await;

    executor
        .start(
            "provisioning",
            "0750655E-provisioning-1",
            json!({"rne": "0750655E", "attempt": 1}),
        )
        .await
        .unwrap();
    let token = fakes.token("start-install-job", 1).await;
    executor
        .send_task_failure(&token, "InstallScriptFailed", "exit status 3")
        .await
        .unwrap();

    let (error, _) = failed(&finished(&executor, "0750655E-provisioning-1").await);
    assert_eq!(error, "InstallFailed");
    assert_eq!(statuses(&fakes, "0750655E"), ["1", "E1"]);
    let e1 = fakes.calls("record-status").last().unwrap().payload.clone();
    assert_eq!(e1["error"], "InstallScriptFailed");
}

#[tokio::test]
async fn many_executions_run_side_by_side() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("record-status", |_, _| Ok(json!({"ok": true})));
    fakes.on("check-mount", |_, n| {
        Ok(json!({"mounted": true, "checks": n}))
    });
    let executor = open(&db, &fakes, realistic_machines()).await;

    let names: Vec<String> = (0..20).map(|i| format!("07{i:05}A-mounting-1")).collect();
    for (i, name) in names.iter().enumerate() {
        let input = json!({"rne": format!("07{i:05}A"), "pollSeconds": 1});
        executor.start("mounting", name, input).await.unwrap();
    }
    for name in &names {
        assert_eq!(finished(&executor, name).await.status, Status::Succeeded);
    }
    assert_eq!(fakes.calls("record-status").len(), 20);
}
