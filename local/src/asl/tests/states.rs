//! Pass, Succeed, Fail, Wait and Choice in real executions, with their paths.

use std::time::Instant;

use serde_json::json;

use super::{failed, run, single, succeeded, Fakes, SECOND};

#[tokio::test]
async fn pass_parameters_read_the_input_and_the_context_object() {
    // Given
    let definition = single(json!({
        "Type": "Pass",
        "Parameters": {
            "rne.$": "$.rne",
            "literal": "$.kept as is",
            "nested": {"first.$": "$.list[0]", "input.$": "$$.Execution.Input"},
            "execution.$": "$$.Execution.Name",
            "id.$": "$$.Execution.Id",
            "state.$": "$$.State.Name",
            "entered.$": "$$.State.EnteredTime",
            "machine.$": "$$.StateMachine.Name"
        },
        "ResultPath": "$.out.params",
        "End": true
    }));
    let input = json!({"rne": "0750655E", "list": [7, 8]});

    // When
    let output = succeeded(&run(definition, input.clone(), &Fakes::new()).await);

    // Then
    let params = &output["out"]["params"];
    assert_eq!(
        output["rne"], "0750655E",
        "the input is kept around the result"
    );
    assert_eq!(params["rne"], "0750655E");
    assert_eq!(params["literal"], "$.kept as is");
    assert_eq!(params["nested"], json!({"first": 7, "input": input}));
    assert_eq!(params["execution"], "run-1");
    assert!(params["id"]
        .as_str()
        .unwrap()
        .ends_with(":execution:test:run-1"));
    assert_eq!(params["state"], "Only");
    assert!(is_utc_timestamp(params["entered"].as_str().unwrap()));
    assert_eq!(params["machine"], "test");
}

fn is_utc_timestamp(text: &str) -> bool {
    text.ends_with('Z') && text.parse::<jiff::Timestamp>().is_ok()
}

#[tokio::test]
async fn pass_result_replaces_the_input_unless_result_path_places_or_discards_it() {
    let fakes = Fakes::new();
    let replaced = single(json!({"Type": "Pass", "Result": {"x": 1}, "End": true}));
    assert_eq!(
        succeeded(&run(replaced, json!({"a": 1}), &fakes).await),
        json!({"x": 1})
    );

    let placed = single(json!({"Type": "Pass", "Result": 5, "ResultPath": "$.a.b", "End": true}));
    assert_eq!(
        succeeded(&run(placed, json!({"a": {"c": 1}}), &fakes).await),
        json!({"a": {"c": 1, "b": 5}})
    );

    let discarded = single(json!({"Type": "Pass", "Result": 5, "ResultPath": null, "End": true}));
    assert_eq!(
        succeeded(&run(discarded, json!({"a": 1}), &fakes).await),
        json!({"a": 1})
    );

    let passed_through = single(json!({"Type": "Pass", "End": true}));
    assert_eq!(
        succeeded(&run(passed_through, json!([1, 2]), &fakes).await),
        json!([1, 2])
    );
}

#[tokio::test]
async fn input_path_and_output_path_select_and_null_gives_an_empty_object() {
    let fakes = Fakes::new();
    let selected = single(json!({
        "Type": "Pass",
        "InputPath": "$.inner",
        "ResultPath": "$.copy",
        "OutputPath": "$.copy",
        "End": true
    }));
    // The result is placed in the raw input; OutputPath picks it out again.
    assert_eq!(
        succeeded(&run(selected, json!({"inner": {"v": 1}}), &fakes).await),
        json!({"v": 1})
    );

    let nulls =
        single(json!({"Type": "Pass", "InputPath": null, "ResultPath": "$.r", "End": true}));
    assert_eq!(
        succeeded(&run(nulls, json!({"a": 1}), &fakes).await),
        json!({"a": 1, "r": {}})
    );

    let no_output = single(json!({"Type": "Succeed", "OutputPath": null}));
    assert_eq!(
        succeeded(&run(no_output, json!({"a": 1}), &fakes).await),
        json!({})
    );
}

#[tokio::test]
async fn succeed_ends_the_execution_with_its_output() {
    let definition = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Result": {"done": true, "noise": 1}, "Next": "Done"},
            "Done": {"Type": "Succeed", "InputPath": "$.done"}
        }
    });
    assert_eq!(
        succeeded(&run(definition, json!({}), &Fakes::new()).await),
        json!(true)
    );
}

#[tokio::test]
async fn fail_ends_the_execution_with_its_error_and_cause() {
    let fakes = Fakes::new();
    let fixed = single(json!({"Type": "Fail", "Error": "InstallFailed", "Cause": "status E1"}));
    assert_eq!(
        failed(&run(fixed, json!({}), &fakes).await),
        ("InstallFailed".to_owned(), "status E1".to_owned())
    );

    let from_input = single(json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}));
    assert_eq!(
        failed(&run(from_input, json!({"e": "E", "c": "C"}), &fakes).await),
        ("E".to_owned(), "C".to_owned())
    );
}

#[tokio::test]
async fn wait_seconds_and_seconds_path_wait_that_long() {
    let fakes = Fakes::new();
    let fixed = single(json!({"Type": "Wait", "Seconds": 10, "End": true}));
    let started = Instant::now();
    assert_eq!(
        succeeded(&run(fixed, json!({"a": 1}), &fakes).await),
        json!({"a": 1})
    );
    assert!(started.elapsed() >= SECOND * 10);

    let from_input = single(json!({"Type": "Wait", "SecondsPath": "$.delay", "End": true}));
    let started = Instant::now();
    succeeded(&run(from_input, json!({"delay": 8}), &fakes).await);
    assert!(started.elapsed() >= SECOND * 8);

    let not_a_number = single(json!({"Type": "Wait", "SecondsPath": "$.delay", "End": true}));
    let (error, _) = failed(&run(not_a_number, json!({"delay": "soon"}), &fakes).await);
    assert_eq!(error, "States.Runtime");
}

#[tokio::test]
async fn wait_timestamp_and_timestamp_path_wait_until_then() {
    let fakes = Fakes::new();
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(200);
    let soon = soon.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();

    let fixed = single(json!({"Type": "Wait", "Timestamp": soon, "End": true}));
    succeeded(&run(fixed, json!({}), &fakes).await);
    assert!(jiff::Timestamp::now() >= soon.parse::<jiff::Timestamp>().unwrap());

    let past = single(json!({"Type": "Wait", "TimestampPath": "$.at", "End": true}));
    let started = Instant::now();
    succeeded(&run(past, json!({"at": "2020-01-01T00:00:00Z"}), &fakes).await);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

fn choice_machine() -> serde_json::Value {
    json!({
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "OutputPath": "$.status",
                "Choices": [
                    {"Variable": "$.status", "NumericEquals": 1, "Next": "One"},
                    {
                        "And": [
                            {"Variable": "$.status", "IsString": true},
                            {"Variable": "$.status", "StringMatches": "E*"}
                        ],
                        "Next": "Error"
                    },
                    {"Variable": "$.status", "NumericGreaterThanEqualsPath": "$.threshold", "Next": "High"}
                ],
                "Default": "Other"
            },
            "One": {"Type": "Pass", "Result": "one", "End": true},
            "Error": {"Type": "Pass", "Result": "error", "End": true},
            "High": {"Type": "Pass", "Result": "high", "End": true},
            "Other": {"Type": "Pass", "Parameters": {"was.$": "$"}, "End": true}
        }
    })
}

#[tokio::test]
async fn choice_takes_the_first_rule_that_matches_then_the_default() {
    let fakes = Fakes::new();
    let route = |input| async { succeeded(&run(choice_machine(), input, &fakes).await) };

    assert_eq!(
        route(json!({"status": 1, "threshold": 0})).await,
        json!("one")
    );
    assert_eq!(
        route(json!({"status": "E1", "threshold": 0})).await,
        json!("error")
    );
    assert_eq!(
        route(json!({"status": 4, "threshold": 3})).await,
        json!("high")
    );
    // OutputPath of the Choice is what the next state receives.
    assert_eq!(
        route(json!({"status": 2, "threshold": 3})).await,
        json!({"was": 2})
    );
}

#[tokio::test]
async fn choice_without_a_match_or_default_fails_with_no_choice_matched() {
    let definition = single(json!({
        "Type": "Choice",
        "Choices": [{"Variable": "$.status", "NumericEquals": 1, "Next": "Only"}]
    }));
    let (error, _) = failed(&run(definition, json!({"status": 2}), &Fakes::new()).await);
    assert_eq!(error, "States.NoChoiceMatched");
}

#[tokio::test]
async fn a_path_that_finds_nothing_fails_the_execution_with_states_runtime() {
    let fakes = Fakes::new();
    fakes.on("f", |payload, _| Ok(payload));
    // Even a catch-all cannot catch it, as on Step Functions.
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "f",
                "Parameters": {"rne.$": "$.rne"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Succeed"}
        }
    });

    let (error, cause) = failed(&run(definition, json!({}), &fakes).await);

    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("$.rne"), "{cause}");
    assert!(fakes.calls("f").is_empty());
}

#[tokio::test]
async fn an_execution_longer_than_its_timeout_seconds_times_out() {
    let definition = json!({
        "StartAt": "Long",
        "TimeoutSeconds": 3,
        "States": {"Long": {"Type": "Wait", "Seconds": 1000, "End": true}}
    });

    let description = run(definition, json!({}), &Fakes::new()).await;

    assert_eq!(description.status, super::super::Status::TimedOut);
    assert_eq!(description.error.as_deref(), Some("States.Timeout"));
}
