//! What a definition may use: everything else is refused at load, naming state and field.

use serde_json::{json, Value};

use super::super::definition::{Machine, Resource, State};
use super::super::{validate, LoadError, StateMachineSource};
use super::{machine, single};

fn refused(definition: Value) -> LoadError {
    validate(&machine("m", definition)).expect_err("the definition is refused")
}

fn assert_refused(definition: Value, state: &str, field: &str, says: &str) {
    let error = refused(definition);
    assert_eq!(error.state.as_deref(), Some(state), "{error}");
    assert_eq!(error.field, field, "{error}");
    assert!(error.message.contains(says), "{error}");
}

fn task(extra: Value) -> Value {
    let mut state = json!({"Type": "Task", "Resource": "record-status", "End": true});
    for (key, value) in extra.as_object().unwrap() {
        state[key] = value.clone();
    }
    single(state)
}

#[test]
fn map_and_parallel_states_are_refused() {
    assert_refused(
        single(json!({"Type": "Map", "ItemProcessor": {}, "End": true})),
        "Only",
        "Type",
        "Map states are not supported",
    );
    assert_refused(
        single(json!({"Type": "Parallel", "Branches": [], "End": true})),
        "Only",
        "Type",
        "Parallel states are not supported",
    );
}

#[test]
fn intrinsic_functions_are_refused_wherever_they_hide() {
    assert_refused(
        task(json!({"Parameters": {"message.$": "States.Format('Hello {}', $.name)"}})),
        "Only",
        "Parameters.message.$",
        "States.Format",
    );
    assert_refused(
        task(json!({"ResultSelector": {"a": {"b.$": "States.StringToJson($.x)"}}})),
        "Only",
        "ResultSelector.a.b.$",
        "States.StringToJson",
    );
    assert_refused(
        single(
            json!({"Type": "Pass", "InputPath": "States.JsonMerge($.a, $.b, false)", "End": true}),
        ),
        "Only",
        "InputPath",
        "intrinsic functions",
    );
    assert_refused(
        single(json!({"Type": "Fail", "CausePath": "States.Format('x {}', $.y)"})),
        "Only",
        "CausePath",
        "intrinsic functions",
    );
}

#[test]
fn jsonata_and_variables_are_refused() {
    let error = refused(json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Only",
        "States": {"Only": {"Type": "Succeed"}}
    }));
    assert_eq!((error.state, error.field.as_str()), (None, "QueryLanguage"));

    assert_refused(
        single(json!({"Type": "Pass", "QueryLanguage": "JSONata", "End": true})),
        "Only",
        "QueryLanguage",
        "JSONata",
    );
    assert_refused(
        task(json!({"Arguments": {"a": "{% $states.input.a %}"}})),
        "Only",
        "Arguments",
        "JSONata",
    );
    assert_refused(
        task(json!({"Assign": {"x.$": "$.x"}})),
        "Only",
        "Assign",
        "variables",
    );
    // JSONPath said out loud is fine.
    validate(&machine(
        "m",
        json!({
            "QueryLanguage": "JSONPath",
            "StartAt": "Only",
            "States": {"Only": {"Type": "Succeed", "QueryLanguage": "JSONPath"}}
        }),
    ))
    .unwrap();
}

#[test]
fn unknown_placeholders_are_refused_naming_where_they_are() {
    let definition = json!({
        "StartAt": "Record",
        "States": {
            "Record": {"Type": "Task", "Resource": "${RecordStatusFunctionArn}", "Next": "Install"},
            "Install": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": "${StartInstallJobFunctionArn}",
                    "Payload": {"token.$": "$$.Task.Token"}
                },
                "End": true
            }
        }
    });
    let source = StateMachineSource::new("provisioning", definition.to_string())
        .substitute("RecordStatusFunctionArn", "record-status");

    let error = validate(&source).unwrap_err();

    assert_eq!(error.state.as_deref(), Some("Install"));
    assert_eq!(error.field, "Parameters.FunctionName");
    assert!(
        error.message.contains("${StartInstallJobFunctionArn}"),
        "{error}"
    );
    assert!(error
        .to_string()
        .starts_with("state machine `provisioning`, state `Install`"));
}

#[test]
fn placeholders_are_replaced_in_the_text_as_sam_does() {
    let source = StateMachineSource::new(
        "m",
        json!({
            "StartAt": "Record",
            "States": {"Record": {"Type": "Task", "Resource": "${Fn}", "TimeoutSeconds": 5, "End": true}}
        })
        .to_string()
        .replace("5", "${Timeout}"),
    )
    .substitute("Fn", "arn:aws:lambda:eu-west-3:123456789012:function:record-status")
    .substitute("Timeout", "30")
    .substitute("Unused", "is fine");

    let machine = Machine::load(&source).unwrap();

    let State::Task(task) = &machine.states["Record"] else {
        panic!("Record is a Task");
    };
    assert_eq!(
        task.resource,
        Resource::Function("arn:aws:lambda:eu-west-3:123456789012:function:record-status".into())
    );
}

#[test]
fn resources_other_than_lambda_functions_are_refused() {
    for resource in [
        "arn:aws:states:::dynamodb:putItem",
        "arn:aws:states:::lambda:invoke.sync",
        "arn:aws:states:::states:startExecution.sync:2",
        "arn:aws:states:eu-west-3:123456789012:activity:install",
        "arn:aws:sns:eu-west-3:123456789012:topic",
    ] {
        assert_refused(
            task(json!({"Resource": resource})),
            "Only",
            "Resource",
            "not supported",
        );
    }
}

#[test]
fn transitions_must_name_existing_states_and_reach_every_state() {
    assert_refused(
        single(json!({"Type": "Pass", "Next": "Nowhere"})),
        "Only",
        "Next",
        "no state `Nowhere`",
    );
    assert_refused(
        single(json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "Only"}],
            "Default": "Nowhere"
        })),
        "Only",
        "Default",
        "no state `Nowhere`",
    );
    assert_refused(
        task(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Nowhere"}]})),
        "Only",
        "Catch[0].Next",
        "no state `Nowhere`",
    );
    assert_refused(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Succeed"}}}),
        "B",
        "",
        "no transition leads",
    );
    let error = refused(json!({"StartAt": "Z", "States": {"A": {"Type": "Succeed"}}}));
    assert_eq!(error.field, "StartAt");
    assert_refused(single(json!({"Type": "Pass"})), "Only", "Next", "End");
    assert_refused(
        single(json!({"Type": "Pass", "Next": "Only", "End": true})),
        "Only",
        "End",
        "not both",
    );
}

#[test]
fn fields_the_executor_does_not_know_are_refused() {
    assert_refused(
        task(json!({"Credentials": {"RoleArn": "x"}})),
        "Only",
        "Credentials",
        "Credentials",
    );
    assert_refused(
        task(json!({"ItemsPath": "$.items"})),
        "Only",
        "ItemsPath",
        "not supported",
    );
    assert_refused(
        single(json!({"Type": "Succeed", "ResultPath": "$.x"})),
        "Only",
        "ResultPath",
        "not supported in a Succeed state",
    );
    assert_refused(
        task(json!({"Retry": [{"ErrorEquals": ["X"], "Backoff": 2}]})),
        "Only",
        "Retry[0].Backoff",
        "not a field",
    );
    let error =
        refused(json!({"StartAt": "Only", "States": {"Only": {"Type": "Succeed"}}, "Foo": 1}));
    assert_eq!(error.field, "Foo");
}

#[test]
fn lambda_invoke_takes_only_function_name_and_payload() {
    assert_refused(
        task(json!({
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload": {}, "InvocationType": "Event"}
        })),
        "Only",
        "Parameters.InvocationType",
        "only FunctionName and Payload",
    );
    assert_refused(
        task(json!({"Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"Payload": {}}})),
        "Only",
        "Parameters.FunctionName",
        "needs a FunctionName",
    );
    assert_refused(
        task(json!({
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "f", "Payload": {"rne.$": "$.rne"}}
        })),
        "Only",
        "Parameters",
        "$$.Task.Token",
    );
}

#[test]
fn retry_and_catch_follow_the_rules_on_states_all() {
    assert_refused(
        task(json!({"Retry": [{"ErrorEquals": ["States.ALL", "X"]}]})),
        "Only",
        "Retry[0].ErrorEquals",
        "alone",
    );
    assert_refused(
        task(json!({"Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]})),
        "Only",
        "Retry[0].ErrorEquals",
        "last",
    );
    assert_refused(
        task(json!({"Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]})),
        "Only",
        "Retry[0].BackoffRate",
        "1.0",
    );
    assert_refused(
        task(json!({"Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "SOME"}]})),
        "Only",
        "Retry[0].JitterStrategy",
        "FULL or NONE",
    );
    assert_refused(
        task(json!({"Catch": [{"ErrorEquals": []}]})),
        "Only",
        "Catch[0].Next",
        "needs Next",
    );
}

#[test]
fn timeouts_and_heartbeats_are_checked() {
    let callback = |extra: Value| {
        let mut fields = json!({
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}}
        });
        for (key, value) in extra.as_object().unwrap() {
            fields[key] = value.clone();
        }
        task(fields)
    };
    assert_refused(
        callback(json!({"TimeoutSeconds": 10, "HeartbeatSeconds": 10})),
        "Only",
        "HeartbeatSeconds",
        "smaller than TimeoutSeconds",
    );
    assert_refused(
        task(json!({"HeartbeatSeconds": 10})),
        "Only",
        "HeartbeatSeconds",
        "waitForTaskToken",
    );
    assert_refused(
        callback(json!({"TimeoutSeconds": 10, "TimeoutSecondsPath": "$.t"})),
        "Only",
        "TimeoutSecondsPath",
        "cannot both",
    );
    assert_refused(
        callback(json!({"TimeoutSeconds": 0})),
        "Only",
        "TimeoutSeconds",
        "integer",
    );
    validate(&machine(
        "m",
        callback(json!({"TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.h"})),
    ))
    .unwrap();
}

#[test]
fn paths_beyond_a_single_node_are_refused() {
    assert_refused(
        single(json!({"Type": "Pass", "ResultPath": "$.items[*]", "End": true})),
        "Only",
        "ResultPath",
        "wildcards",
    );
    assert_refused(
        single(json!({"Type": "Pass", "InputPath": "$..name", "End": true})),
        "Only",
        "InputPath",
        "recursive descent",
    );
    assert_refused(
        single(json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.a[?(@.b)]", "IsPresent": true, "Next": "Only"}]
        })),
        "Only",
        "Choices[0].Variable",
        "filters",
    );
}

#[test]
fn choice_and_wait_states_are_checked() {
    assert_refused(
        single(json!({"Type": "Choice", "Choices": [], "Default": "Only"})),
        "Only",
        "Choices",
        "non-empty",
    );
    assert_refused(
        single(json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.a", "NumericEquals": "one", "Next": "Only"}]
        })),
        "Only",
        "Choices[0].NumericEquals",
        "number",
    );
    assert_refused(
        single(json!({"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true})),
        "Only",
        "Seconds",
        "exactly one",
    );
    assert_refused(
        single(json!({"Type": "Wait", "Timestamp": "tomorrow", "End": true})),
        "Only",
        "Timestamp",
        "RFC 3339",
    );
}

#[test]
fn a_definition_that_is_not_json_is_refused() {
    let error = validate(&StateMachineSource::new("m", "{ not json")).unwrap_err();
    assert!(error.message.contains("not valid JSON"), "{error}");
}

/// Whatever `infra/statemachines/` holds must load: they are what the local server runs.
#[test]
fn the_infra_state_machines_load() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/statemachines");
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let Some(name) = file.strip_suffix(".asl.json") else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        // Every placeholder gets a function name, as the local server will give them.
        let mut source = StateMachineSource::new(name, text.clone());
        for placeholder in text.split("${").skip(1) {
            if let Some(end) = placeholder.find('}') {
                let key = &placeholder[..end];
                source = source.substitute(key, format!("local-{key}"));
            }
        }
        if let Err(error) = validate(&source) {
            panic!("{file}: {error}");
        }
    }
}
