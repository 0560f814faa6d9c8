//! Task states: the three kinds of resource, Retry, Catch, timeouts and task tokens.

use std::time::Duration;

use serde_json::{json, Value};

use super::super::{Status, TaskError, TokenError};
use super::{
    failed, finished, machine, open, open_with_second, run, single, succeeded, Fakes, TempDb,
    SECOND,
};

const INVOKE: &str = "arn:aws:states:::lambda:invoke";
const CALLBACK: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";

/// A waitForTaskToken task calling `job` with the token, then `Done`; errors go to `Caught`.
fn callback_machine(task_fields: Value) -> Value {
    let mut task = json!({
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {
            "FunctionName": "job",
            "Payload": {"rne.$": "$.rne", "token.$": "$$.Task.Token"}
        },
        "ResultPath": "$.job",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Caught"}],
        "Next": "Done"
    });
    for (key, value) in task_fields.as_object().unwrap() {
        task[key] = value.clone();
    }
    json!({
        "StartAt": "Job",
        "States": {
            "Job": task,
            "Done": {"Type": "Succeed"},
            "Caught": {"Type": "Succeed"}
        }
    })
}

#[tokio::test]
async fn a_function_resource_outputs_what_the_function_returns() {
    // Given
    let fakes = Fakes::new();
    fakes.on("record-status", |payload, _| {
        Ok(json!({"recorded": payload["status"], "at": "now"}))
    });
    let definition = single(json!({
        "Type": "Task",
        "Resource": "record-status",
        "Parameters": {"rne.$": "$.rne", "status": 1},
        "ResultSelector": {"status.$": "$.recorded"},
        "ResultPath": "$.record",
        "End": true
    }));

    // When
    let output = succeeded(&run(definition, json!({"rne": "0750655E"}), &fakes).await);

    // Then
    assert_eq!(
        fakes.calls("record-status")[0].payload,
        json!({"rne": "0750655E", "status": 1})
    );
    assert_eq!(output, json!({"rne": "0750655E", "record": {"status": 1}}));
}

#[tokio::test]
async fn without_parameters_the_function_gets_the_effective_input() {
    let fakes = Fakes::new();
    fakes.on("f", |payload, _| Ok(payload));
    let definition =
        single(json!({"Type": "Task", "Resource": "f", "InputPath": "$.a", "End": true}));
    assert_eq!(
        succeeded(&run(definition, json!({"a": {"b": 1}}), &fakes).await),
        json!({"b": 1})
    );
}

#[tokio::test]
async fn lambda_invoke_wraps_the_return_value_in_payload() {
    let fakes = Fakes::new();
    fakes.on("mount-check", |payload, _| {
        Ok(json!({"mounted": payload["rne"] == "0750655E"}))
    });
    let definition = single(json!({
        "Type": "Task",
        "Resource": INVOKE,
        "Parameters": {"FunctionName": "mount-check", "Payload": {"rne.$": "$.rne"}},
        "End": true
    }));

    let output = succeeded(&run(definition, json!({"rne": "0750655E"}), &fakes).await);

    assert_eq!(
        output,
        json!({"Payload": {"mounted": true}, "StatusCode": 200})
    );
}

#[tokio::test]
async fn retry_backs_off_between_attempts_then_succeeds() {
    // Given: two failures before a success.
    let fakes = Fakes::new();
    fakes.on("flaky", |_, n| match n {
        1 | 2 => Err(TaskError::new("Lambda.ServiceException", "try again")),
        _ => Ok(json!("ok")),
    });
    let definition = single(json!({
        "Type": "Task",
        "Resource": "flaky",
        "Parameters": {"retries.$": "$$.State.RetryCount"},
        "Retry": [{
            "ErrorEquals": ["Lambda.ServiceException"],
            "IntervalSeconds": 2,
            "BackoffRate": 3,
            "MaxAttempts": 3
        }],
        "End": true
    }));

    // When
    let output = succeeded(&run(definition, json!({}), &fakes).await);

    // Then: 2 then 6 seconds between attempts, and the context counts retries.
    assert_eq!(output, json!("ok"));
    let calls = fakes.calls("flaky");
    assert_eq!(calls.len(), 3);
    assert!(calls[1].at - calls[0].at >= SECOND * 2);
    assert!(calls[2].at - calls[1].at >= SECOND * 6);
    let retries: Vec<&Value> = calls.iter().map(|call| &call.payload["retries"]).collect();
    assert_eq!(retries, [&json!(0), &json!(1), &json!(2)]);
}

#[tokio::test]
async fn retry_gives_up_after_max_attempts_and_catch_takes_over() {
    let fakes = Fakes::new();
    fakes.on("broken", |_, _| {
        Err(TaskError::new("InstallError", "disk full"))
    });
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "broken",
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["InstallError"], "ResultPath": "$.error", "Next": "Recover"}],
                "End": true
            },
            "Recover": {"Type": "Pass", "End": true}
        }
    });

    let output = succeeded(&run(definition, json!({"rne": "0750655E"}), &fakes).await);

    assert_eq!(fakes.calls("broken").len(), 3, "one call and two retries");
    assert_eq!(
        output,
        json!({"rne": "0750655E", "error": {"Error": "InstallError", "Cause": "disk full"}})
    );
}

#[tokio::test]
async fn max_attempts_zero_never_retries_and_an_uncaught_error_fails_the_execution() {
    let fakes = Fakes::new();
    fakes.on("broken", |_, _| {
        Err(TaskError::new("InstallError", "disk full"))
    });
    let definition = single(json!({
        "Type": "Task",
        "Resource": "broken",
        "Retry": [
            {"ErrorEquals": ["InstallError"], "MaxAttempts": 0},
            {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}
        ],
        "End": true
    }));

    let (error, cause) = failed(&run(definition, json!({}), &fakes).await);

    // The first retrier that matches decides, even with no attempts to give.
    assert_eq!(fakes.calls("broken").len(), 1);
    assert_eq!(
        (error.as_str(), cause.as_str()),
        ("InstallError", "disk full")
    );
}

#[tokio::test]
async fn max_delay_seconds_caps_the_backoff() {
    let fakes = Fakes::new();
    fakes.on("flaky", |_, n| match n {
        1..=3 => Err(TaskError::new("E", "")),
        _ => Ok(json!(null)),
    });
    let definition = single(json!({
        "Type": "Task",
        "Resource": "flaky",
        "Retry": [{
            "ErrorEquals": ["E"],
            "IntervalSeconds": 2,
            "BackoffRate": 50,
            "MaxDelaySeconds": 3,
            "MaxAttempts": 3,
            "JitterStrategy": "FULL"
        }],
        "End": true
    }));

    succeeded(&run(definition, json!({}), &fakes).await);

    // Uncapped, the last delay alone would be 5000 seconds (100 s here).
    let calls = fakes.calls("flaky");
    assert!(calls[3].at - calls[0].at < SECOND * 9 + Duration::from_secs(2));
}

#[tokio::test]
async fn task_failed_matches_errors_but_not_timeouts() {
    let fakes = Fakes::new();
    fakes.on_async("slow", |_, _| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(json!(null))
    });
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "slow",
                "TimeoutSeconds": 2,
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 3}],
                "Catch": [
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "Wrong"},
                    {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timeout", "Next": "TimedOut"}
                ],
                "End": true
            },
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
            "TimedOut": {"Type": "Succeed"}
        }
    });

    let output = succeeded(&run(definition, json!({}), &fakes).await);

    assert_eq!(
        fakes.calls("slow").len(),
        1,
        "no retry of a timeout by States.TaskFailed"
    );
    assert_eq!(output["timeout"]["Error"], "States.Timeout");
}

#[tokio::test]
async fn catch_without_result_path_replaces_the_input_with_the_error() {
    let fakes = Fakes::new();
    fakes.on("broken", |_, _| {
        Err(TaskError::new("InstallError", "disk full"))
    });
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "broken",
                "Catch": [
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Recover"}
                ],
                "End": true
            },
            "Wrong": {"Type": "Fail"},
            "Recover": {"Type": "Pass", "End": true}
        }
    });

    let output = succeeded(&run(definition, json!({"rne": "x"}), &fakes).await);

    assert_eq!(
        output,
        json!({"Error": "InstallError", "Cause": "disk full"})
    );
}

#[tokio::test]
async fn wait_for_task_token_completes_with_send_task_success() {
    // Given
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!("accepted")));
    let executor = open(&db, &fakes, vec![machine("m", callback_machine(json!({})))]).await;

    // When
    executor
        .start("m", "e", json!({"rne": "0750655E"}))
        .await
        .unwrap();
    let token = fakes.token("job", 1).await;
    tokio::time::sleep(SECOND * 3).await;
    assert_eq!(
        executor
            .describe("e")
            .await
            .unwrap()
            .unwrap()
            .current_state
            .as_deref(),
        Some("Job"),
        "the task waits for its token"
    );
    executor
        .send_task_success(&token, json!({"server": "srv-1"}))
        .await
        .unwrap();

    // Then
    let output = succeeded(&finished(&executor, "e").await);
    assert_eq!(
        output,
        json!({"rne": "0750655E", "job": {"server": "srv-1"}})
    );
    assert_eq!(fakes.calls("job")[0].payload["rne"], "0750655E");
    assert!(matches!(
        executor.send_task_success(&token, json!({})).await,
        Err(TokenError::TaskTimedOut)
    ));
}

#[tokio::test]
async fn send_task_failure_fails_the_task_with_its_error() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let executor = open(&db, &fakes, vec![machine("m", callback_machine(json!({})))]).await;

    executor
        .start("m", "e", json!({"rne": "0750655E"}))
        .await
        .unwrap();
    let token = fakes.token("job", 1).await;
    executor
        .send_task_failure(&token, "InstallFailed", "the script exited 3")
        .await
        .unwrap();

    let output = succeeded(&finished(&executor, "e").await);
    assert_eq!(
        output["failure"],
        json!({"Error": "InstallFailed", "Cause": "the script exited 3"})
    );
    assert!(matches!(
        executor.send_task_failure(&token, "Again", "").await,
        Err(TokenError::TaskTimedOut)
    ));
}

#[tokio::test]
async fn the_function_failing_fails_a_wait_for_task_token_task() {
    let fakes = Fakes::new();
    fakes.on("job", |_, _| {
        Err(TaskError::new("Lambda.TooManyRequestsException", "busy"))
    });

    let output = succeeded(&run(callback_machine(json!({})), json!({"rne": "x"}), &fakes).await);

    assert_eq!(
        output["failure"]["Error"],
        "Lambda.TooManyRequestsException"
    );
}

#[tokio::test]
async fn a_callback_that_comes_before_the_function_returns_is_kept() {
    // Given: the function hands its token on and takes a while to return.
    let db = TempDb::new();
    let fakes = Fakes::new();
    let (tokens, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    fakes.on_async("job", move |payload, _| {
        let tokens = tokens.clone();
        async move {
            tokens
                .send(payload["token"].as_str().unwrap().to_owned())
                .unwrap();
            tokio::time::sleep(SECOND * 5).await;
            Ok(json!(null))
        }
    });
    let executor = open(&db, &fakes, vec![machine("m", callback_machine(json!({})))]).await;

    // When
    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    let token = received.recv().await.unwrap();
    executor
        .send_task_success(&token, json!("early"))
        .await
        .unwrap();

    // Then
    assert_eq!(succeeded(&finished(&executor, "e").await)["job"], "early");
}

#[tokio::test]
async fn wait_for_task_token_times_out_after_timeout_seconds() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let definition = callback_machine(json!({"TimeoutSecondsPath": "$.timeout"}));
    let executor = open(&db, &fakes, vec![machine("m", definition)]).await;

    executor
        .start("m", "e", json!({"rne": "x", "timeout": 5}))
        .await
        .unwrap();
    let token = fakes.token("job", 1).await;
    let output = succeeded(&finished(&executor, "e").await);

    assert_eq!(output["failure"]["Error"], "States.Timeout");
    assert!(matches!(
        executor.send_task_success(&token, json!({})).await,
        Err(TokenError::TaskTimedOut)
    ));
    assert!(matches!(
        executor.send_task_heartbeat(&token).await,
        Err(TokenError::TaskTimedOut)
    ));
}

#[tokio::test]
async fn a_missed_heartbeat_times_out_the_task() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let definition = callback_machine(json!({
        "TimeoutSeconds": 1000,
        "HeartbeatSeconds": 4,
        "Catch": [
            {"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.failure", "Next": "Caught"}
        ]
    }));
    let executor = open(&db, &fakes, vec![machine("m", definition)]).await;

    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    let output = succeeded(&finished(&executor, "e").await);

    assert_eq!(output["failure"]["Error"], "States.HeartbeatTimeout");
}

#[tokio::test]
async fn heartbeats_keep_a_task_alive_past_its_heartbeat_seconds() {
    // Given: a heartbeat every 100 ms for a task that must beat every 300 ms.
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let definition = callback_machine(json!({"TimeoutSeconds": 100, "HeartbeatSeconds": 6}));
    let second = Duration::from_millis(50);
    let executor = open_with_second(&db, &fakes, vec![machine("m", definition)], second).await;
    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    let token = fakes.token("job", 1).await;

    // When: it runs three heartbeat periods long.
    for _ in 0..9 {
        tokio::time::sleep(second * 2).await;
        executor.send_task_heartbeat(&token).await.unwrap();
    }
    let status = executor.describe("e").await.unwrap().unwrap().status;
    executor
        .send_task_success(&token, json!("done"))
        .await
        .unwrap();

    // Then
    assert_eq!(status, Status::Running);
    assert_eq!(succeeded(&finished(&executor, "e").await)["job"], "done");
}

#[tokio::test]
async fn tokens_never_issued_are_invalid() {
    let db = TempDb::new();
    let executor = open(&db, &Fakes::new(), vec![]).await;
    let never_issued = "ab".repeat(32);

    for token in ["", "not-a-token", never_issued.as_str()] {
        assert!(matches!(
            executor.send_task_success(token, json!({})).await,
            Err(TokenError::InvalidToken)
        ));
        assert!(matches!(
            executor.send_task_failure(token, "E", "").await,
            Err(TokenError::InvalidToken)
        ));
        assert!(matches!(
            executor.send_task_heartbeat(token).await,
            Err(TokenError::InvalidToken)
        ));
    }
}

#[tokio::test]
async fn each_attempt_gets_a_new_token() {
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let definition = callback_machine(json!({
        "Retry": [{"ErrorEquals": ["InstallFailed"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    }));
    let executor = open(&db, &fakes, vec![machine("m", definition)]).await;

    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    let first = fakes.token("job", 1).await;
    executor
        .send_task_failure(&first, "InstallFailed", "")
        .await
        .unwrap();
    let second = fakes.token("job", 2).await;
    executor.send_task_success(&second, json!(2)).await.unwrap();

    assert_ne!(first, second);
    assert_eq!(succeeded(&finished(&executor, "e").await)["job"], 2);
}

/// Polls `condition` until it holds, failing the test after `PATIENCE`.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < super::PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn executions_waiting_for_their_token_keep_no_runner_in_memory() {
    // Given: 50 executions whose task waits for its token, each given its token.
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!("accepted")));
    let definition = callback_machine(json!({"TimeoutSeconds": 1000, "HeartbeatSeconds": 500}));
    let executor = open(&db, &fakes, vec![machine("m", definition)]).await;
    for i in 0..50 {
        executor
            .start("m", &format!("e{i}"), json!({"rne": format!("r{i}")}))
            .await
            .unwrap();
    }
    let mut tokens = Vec::new();
    for n in 1..=50 {
        let payload = fakes.nth_call("job", n).await;
        let rne = payload["rne"].as_str().unwrap().to_owned();
        tokens.push((rne, payload["token"].as_str().unwrap().to_owned()));
    }

    // When: they wait.
    eventually("every waiting execution leaves memory", || {
        executor.runners_in_memory() == 0
    })
    .await;

    // Then: each is still running in the store, and goes on with its token.
    assert_eq!(
        executor.describe("e7").await.unwrap().unwrap().status,
        Status::Running
    );
    for (rne, token) in &tokens {
        executor
            .send_task_success(token, json!({"server": rne}))
            .await
            .unwrap();
    }
    for i in 0..50 {
        let output = succeeded(&finished(&executor, &format!("e{i}")).await);
        assert_eq!(output["job"]["server"], format!("r{i}"));
    }
    eventually("finished executions leave memory", || {
        executor.runners_in_memory() == 0
    })
    .await;
}

#[tokio::test]
async fn an_execution_timeout_ends_a_task_waiting_for_its_token() {
    // Given: an execution that may last 5 seconds, whose task would wait far longer.
    let db = TempDb::new();
    let fakes = Fakes::new();
    fakes.on("job", |_, _| Ok(json!(null)));
    let mut definition = callback_machine(json!({"TimeoutSeconds": 1000, "HeartbeatSeconds": 900}));
    definition["TimeoutSeconds"] = json!(5);
    let executor = open(&db, &fakes, vec![machine("m", definition)]).await;

    // When
    executor.start("m", "e", json!({"rne": "x"})).await.unwrap();
    let token = fakes.token("job", 1).await;

    // Then
    let description = finished(&executor, "e").await;
    assert_eq!(description.status, Status::TimedOut);
    assert!(matches!(
        executor.send_task_success(&token, json!({})).await,
        Err(TokenError::TaskTimedOut)
    ));
}
