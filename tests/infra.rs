//! The deployment agrees with the code: `template.yaml` deploys every Lambda binary and nothing
//! else, routes each endpoint to the function that serves it, gives the state machines every
//! function their Task states name, sets for each function exactly the environment it reads,
//! and defines the table the DynamoDB store creates. `cfn-lint` and `sam validate --lint` check
//! the template itself (`scripts/test`).
//!
//! The template is YAML with CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, …);
//! [`template`] turns them into their long JSON form, so the checks below read plain JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bcdi_shared::api::Endpoint;
use bcdi_shared::config;
use serde_json::{json, Map, Value};

/// Types of the resources the checks look at.
const FUNCTION: &str = "AWS::Serverless::Function";
const STATE_MACHINE: &str = "AWS::Serverless::StateMachine";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Reading the template

/// `template.yaml` as JSON, short-form tags in long form (`!Ref X` → `{"Ref": "X"}`).
fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("template.yaml is YAML");
    to_json(yaml)
}

fn to_json(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(value) => Value::Bool(value),
        Yaml::Number(number) => serde_json::to_value(&number).expect("a YAML number is JSON"),
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(key) => key,
                        other => panic!("a mapping key that is not a string: {other:?}"),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            let long = match name {
                "Ref" | "Condition" => name.to_owned(),
                _ => format!("Fn::{name}"),
            };
            // `!GetAtt A.B` is the short form of `{"Fn::GetAtt": ["A", "B"]}`.
            let value = match (name, value) {
                ("GetAtt", Value::String(dotted)) => {
                    let (resource, attribute) = dotted
                        .split_once('.')
                        .unwrap_or_else(|| panic!("!GetAtt {dotted} has no attribute"));
                    json!([resource, attribute])
                }
                (_, value) => value,
            };
            json!({ long: value })
        }
    }
}

fn resources(template: &Value) -> &Map<String, Value> {
    template["Resources"].as_object().expect("Resources")
}

fn of_type<'a>(
    template: &'a Value,
    kind: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    resources(template)
        .iter()
        .filter(move |(_, resource)| resource["Type"] == kind)
}

/// A property of a function, or the `Globals.Function` default.
fn function_property<'a>(template: &'a Value, function: &'a Value, name: &str) -> &'a Value {
    match &function["Properties"][name] {
        Value::Null => &template["Globals"]["Function"][name],
        value => value,
    }
}

/// The environment of a function: `Globals` merged with its own, as SAM does.
fn environment(template: &Value, function: &Value) -> BTreeMap<String, Value> {
    let mut variables = BTreeMap::new();
    for source in [&template["Globals"]["Function"], &function["Properties"]] {
        if let Some(own) = source["Environment"]["Variables"].as_object() {
            for (name, value) in own {
                variables.insert(name.clone(), value.clone());
            }
        }
    }
    variables
}

/// `get-establishment` → `GetEstablishmentFunction`: the template's name of a binary.
fn logical_id(binary: &str) -> String {
    let mut id: String = binary
        .split(['-', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

// ---------------------------------------------------------------------------------------------
// Reading the code

/// The Lambda binaries: `functions/src/bin/<name>.rs` or `functions/src/bin/<name>/main.rs`,
/// with their source.
fn binaries() -> BTreeMap<String, String> {
    let dir = root().join("functions/src/bin");
    let mut binaries = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("functions/src/bin") {
        let path = entry.expect("a directory entry").path();
        let (name, source) = if path.is_dir() {
            let name = path.file_name().and_then(|name| name.to_str());
            (name.map(str::to_owned), path.join("main.rs"))
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let name = path.file_stem().and_then(|name| name.to_str());
            (name.map(str::to_owned), path.clone())
        } else {
            continue;
        };
        let name = name.unwrap_or_else(|| panic!("{} has no UTF-8 name", path.display()));
        let source = std::fs::read_to_string(&source)
            .unwrap_or_else(|error| panic!("{}: {error}", source.display()));
        binaries.insert(name, source);
    }
    binaries
}

/// The endpoints a binary serves: the `Endpoint::X` its `main` names.
fn endpoints_in(source: &str) -> Vec<Endpoint> {
    Endpoint::ALL
        .into_iter()
        .filter(|endpoint| {
            let name = format!("Endpoint::{endpoint:?}");
            source.match_indices(&name).any(|(at, _)| {
                let after = source[at + name.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .collect()
}

/// The entry point a binary's `main` calls: `x::y` in `bcdi_shared::lambda::x::y(…)`, comments
/// left out.
fn entry_point(source: &str) -> Option<&str> {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .find_map(|line| {
            let start = line.find("lambda::")? + "lambda::".len();
            let rest = &line[start..];
            let end = rest.find('(')?;
            Some(&rest[..end])
        })
}

/// The `${Name}` placeholders of a text (an ASL file).
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find('}') {
            names.insert(rest[..end].to_owned());
            rest = &rest[end + 1..];
        }
    }
    names
}

fn state_machine_files() -> Vec<PathBuf> {
    let dir = root().join("infra/statemachines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.to_string_lossy().ends_with(".asl.json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// Functions and routes

#[test]
fn every_lambda_binary_is_a_function_of_the_template_and_every_function_a_binary() {
    let template = template();
    let binaries = binaries();
    assert!(!binaries.is_empty(), "no binary in functions/src/bin");
    let mut problems = Vec::new();

    let mut deployed = BTreeSet::new();
    for (id, function) in of_type(&template, FUNCTION) {
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str();
        let Some(binary) = binary else {
            problems.push(format!("{id}: no Metadata.BuildProperties.Binary"));
            continue;
        };
        if function["Metadata"]["BuildMethod"] != "rust-cargolambda" {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is not rust-cargolambda"
            ));
        }
        if !binaries.contains_key(binary) {
            problems.push(format!("{id}: binary {binary} is not in functions/src/bin"));
        }
        if *id != logical_id(binary) {
            problems.push(format!(
                "{id}: the function of {binary} is named {}",
                logical_id(binary)
            ));
        }
        if function_property(&template, function, "CodeUri") != "functions/" {
            problems.push(format!(
                "{id}: CodeUri is not functions/ (the crate of the binaries)"
            ));
        }
        for (property, wanted) in [
            ("Runtime", json!("provided.al2023")),
            ("Handler", json!("bootstrap")),
            ("Architectures", json!(["arm64"])),
        ] {
            if *function_property(&template, function, property) != wanted {
                problems.push(format!("{id}: {property} is not {wanted}"));
            }
        }
        // Logs as JSON lines into a log group of the template, which has a retention.
        let logging = &function["Properties"]["LoggingConfig"];
        if logging["LogFormat"] != "JSON" {
            problems.push(format!("{id}: LoggingConfig.LogFormat is not JSON"));
        }
        let group = logging["LogGroup"]["Ref"].as_str();
        let group = group.and_then(|group| resources(&template).get(group));
        match group {
            Some(group)
                if group["Type"] == "AWS::Logs::LogGroup"
                    && !group["Properties"]["RetentionInDays"].is_null() => {}
            _ => problems.push(format!(
                "{id}: LoggingConfig.LogGroup is not a log group of the template with a retention"
            )),
        }
        deployed.insert(binary.to_owned());
    }
    for binary in binaries.keys() {
        if !deployed.contains(binary) {
            problems.push(format!(
                "functions/src/bin/{binary}: no function in template.yaml (add {})",
                logical_id(binary)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_endpoint_is_routed_to_the_one_function_that_serves_it() {
    let template = template();
    let mut problems = Vec::new();
    let mut served: BTreeMap<String, Vec<String>> = BTreeMap::new();

    for (binary, source) in binaries() {
        let id = logical_id(&binary);
        let endpoints = endpoints_in(&source);
        for endpoint in &endpoints {
            served
                .entry(format!("{endpoint:?}"))
                .or_default()
                .push(binary.clone());
        }
        let wanted: BTreeSet<(String, String)> = endpoints
            .iter()
            .map(|endpoint| {
                let (method, path) = endpoint.route();
                (method.to_string(), path.to_owned())
            })
            .collect();

        let Some(function) = resources(&template).get(&id) else {
            continue; // reported by the test above
        };
        let mut routed = BTreeSet::new();
        for (name, event) in function["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let properties = &event["Properties"];
            if properties["ApiId"] != json!({"Ref": "Api"}) {
                problems.push(format!("{id}.Events.{name}: ApiId is not !Ref Api"));
            }
            if properties["PayloadFormatVersion"] != "2.0" {
                problems.push(format!(
                    "{id}.Events.{name}: PayloadFormatVersion is not \"2.0\""
                ));
            }
            let method = properties["Method"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase();
            let path = properties["Path"].as_str().unwrap_or_default().to_owned();
            routed.insert((method, path));
        }
        for (method, path) in wanted.difference(&routed) {
            problems.push(format!(
                "{id}: serves {method} {path} but has no HttpApi event for it"
            ));
        }
        for (method, path) in routed.difference(&wanted) {
            problems.push(format!(
                "{id}: routes {method} {path}, an endpoint it does not serve"
            ));
        }
    }
    for endpoint in Endpoint::ALL {
        match served.get(&format!("{endpoint:?}")).map(Vec::as_slice) {
            Some([_]) => {}
            Some(several) => problems.push(format!(
                "Endpoint::{endpoint:?} is served by several binaries: {several:?}"
            )),
            None => problems.push(format!("Endpoint::{endpoint:?} is served by no binary")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// State machines

#[test]
fn every_task_of_the_state_machines_is_a_function_of_the_template() {
    let template = template();
    let files = state_machine_files();
    assert!(!files.is_empty(), "no infra/statemachines/*.asl.json");
    let machines: Vec<(&String, &Value)> = of_type(&template, STATE_MACHINE).collect();
    let mut problems = Vec::new();

    for file in &files {
        let relative = file
            .strip_prefix(root())
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).expect("an ASL file");
        if let Err(error) = serde_json::from_str::<Value>(&text) {
            problems.push(format!("{relative}: not JSON: {error}"));
        }
        let deploying: Vec<_> = machines
            .iter()
            .filter(|(_, machine)| machine["Properties"]["DefinitionUri"] == relative.as_str())
            .collect();
        let [(id, machine)] = deploying.as_slice() else {
            problems.push(format!(
                "{relative}: deployed by {} state machines of the template, not one",
                deploying.len()
            ));
            continue;
        };
        let substitutions = machine["Properties"]["DefinitionSubstitutions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let wanted = placeholders(&text);

        // Each `${Name}` is replaced by the ARN of a function of the template.
        let mut tasks = BTreeSet::new();
        for name in &wanted {
            let function = substitutions
                .get(name)
                .and_then(|value| value["Fn::GetAtt"].as_array())
                .filter(|parts| parts.len() == 2 && parts[1] == "Arn")
                .and_then(|parts| parts[0].as_str());
            let Some(function) = function else {
                problems.push(format!(
                    "{id}: DefinitionSubstitutions.{name} (used by {relative}) is not \
                     !GetAtt <function>.Arn"
                ));
                continue;
            };
            if resources(&template).get(function).map(|f| &f["Type"]) != Some(&json!(FUNCTION)) {
                problems.push(format!("{id}: ${{{name}}} is {function}, not a function"));
            }
            tasks.insert(function.to_owned());
        }
        for name in substitutions.keys() {
            if !wanted.contains(name) {
                problems.push(format!(
                    "{id}: DefinitionSubstitutions.{name} is not used by {relative}"
                ));
            }
        }

        // The machine may invoke exactly its task functions, and do nothing else.
        let mut invoked = BTreeSet::new();
        for policy in machine["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_array().into_iter().flatten() {
                let actions = match &statement["Action"] {
                    Value::String(action) => vec![action.clone()],
                    Value::Array(actions) => actions
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                if !actions
                    .iter()
                    .any(|action| action == "lambda:InvokeFunction")
                {
                    continue;
                }
                if actions.len() != 1 {
                    problems.push(format!(
                        "{id}: a statement allows more than lambda:InvokeFunction"
                    ));
                }
                let resources = match &statement["Resource"] {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                for resource in resources {
                    match functions_named(&resource) {
                        Some(function) => {
                            invoked.insert(function);
                        }
                        None => problems.push(format!(
                            "{id}: lambda:InvokeFunction on {resource}, not on one function"
                        )),
                    }
                }
            }
        }
        if invoked != tasks {
            problems.push(format!(
                "{id}: may invoke {invoked:?}, but its tasks are {tasks:?}"
            ));
        }
    }
    for (id, machine) in &machines {
        let uri = machine["Properties"]["DefinitionUri"]
            .as_str()
            .unwrap_or_default();
        if !files.iter().any(|file| file.ends_with(uri)) {
            problems.push(format!(
                "{id}: DefinitionUri {uri} is not an infra/statemachines/*.asl.json"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The function a policy resource names: `!GetAtt F.Arn` or `!Sub "${F.Arn}:*"` (its versions).
fn functions_named(resource: &Value) -> Option<String> {
    if let Some([function, attribute]) = resource["Fn::GetAtt"].as_array().map(Vec::as_slice) {
        return (attribute == "Arn").then(|| function.as_str().map(str::to_owned))?;
    }
    let sub = resource["Fn::Sub"].as_str()?;
    let function = sub.strip_prefix("${")?.strip_suffix(".Arn}:*")?;
    Some(function.to_owned())
}

// ---------------------------------------------------------------------------------------------
// IAM

/// The only actions a policy may allow on every resource (`"*"`): IAM gives them no resource
/// type, so a statement naming a resource would never match and the call would be denied.
/// Each is here for a reason of this stack; anything else on `"*"` fails the test below.
const ALLOWED_ON_EVERY_RESOURCE: &[(&str, &str)] = &[
    // The job functions answer the task token a workflow is waiting on (claim, heartbeat,
    // succeed, fail): task tokens are not IAM resources.
    ("states:SendTaskSuccess", "task tokens are not resources"),
    ("states:SendTaskFailure", "task tokens are not resources"),
    ("states:SendTaskHeartbeat", "task tokens are not resources"),
    // Lambda's reading of the table's stream for the stream notifier: listing stream ARNs has
    // no resource type (the records themselves are read on the stream's ARN only).
    ("dynamodb:ListStreams", "lists stream ARNs only"),
    // A state machine's logging to its log group: Step Functions sets up the log delivery with
    // these, none of which has a resource type (Step Functions' documentation).
    ("logs:CreateLogDelivery", "state machine logging"),
    ("logs:GetLogDelivery", "state machine logging"),
    ("logs:UpdateLogDelivery", "state machine logging"),
    ("logs:DeleteLogDelivery", "state machine logging"),
    ("logs:ListLogDeliveries", "state machine logging"),
    ("logs:PutResourcePolicy", "state machine logging"),
    ("logs:DescribeResourcePolicies", "state machine logging"),
    ("logs:DescribeLogGroups", "state machine logging"),
];

/// A string or a list of strings (a policy's `Action`, an alarm's `Metrics`), as a list.
fn one_or_many(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Every statement of every policy of the template, with where it is: the roles' inline
/// policies, SAM's `Policies` of functions and state machines, bucket and other policies. A
/// role's trust policy (who may assume it) is not a permission and is left out.
fn policy_statements(template: &Value) -> Vec<(String, Value)> {
    fn walk(value: &Value, at: &str, found: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    match key.as_str() {
                        "AssumeRolePolicyDocument" => {}
                        "Statement" => {
                            for statement in one_or_many(inner) {
                                found.push((at.to_owned(), statement));
                            }
                        }
                        _ => walk(inner, &format!("{at}.{key}"), found),
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{index}]"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for (id, resource) in resources(template) {
        walk(&resource["Properties"], id, &mut found);
    }
    walk(&template["Globals"], "Globals", &mut found);
    found
}

/// Least privilege: no statement allows an action on every resource unless IAM leaves no other
/// choice for that action (`ALLOWED_ON_EVERY_RESOURCE`), and none allows a wildcard action.
#[test]
fn no_policy_allows_every_resource_unless_iam_requires_it() {
    let template = template();
    let statements = policy_statements(&template);
    assert!(
        statements.len() > 28,
        "only {} statements found: the walk misses policies",
        statements.len()
    );
    let mut problems = Vec::new();
    for (at, statement) in &statements {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let actions = one_or_many(&statement["Action"]);
        for action in &actions {
            if action.as_str().is_none_or(|action| action.contains('*')) {
                problems.push(format!("{at}: allows {action}, not one named action"));
            }
        }
        if statement.get("NotResource").is_some() || statement.get("NotAction").is_some() {
            problems.push(format!(
                "{at}: NotResource/NotAction allow almost everything"
            ));
        }
        let every_resource = one_or_many(&statement["Resource"])
            .iter()
            .any(|resource| resource.as_str().is_some_and(|text| text.contains('*')));
        if !every_resource {
            continue;
        }
        for action in actions.iter().filter_map(Value::as_str) {
            if !ALLOWED_ON_EVERY_RESOURCE
                .iter()
                .any(|(allowed, _)| *allowed == action)
            {
                problems.push(format!(
                    "{at}: allows {action} on \"*\": name the resources (or, if IAM gives the \
                     action no resource type, add it with its reason to ALLOWED_ON_EVERY_RESOURCE)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each function runs with a role of the template, its own, with inline policies only: a role
/// SAM makes gets the managed AWSLambdaBasicExecutionRole (logs on `"*"`), and a managed policy
/// is not read by the test above. The role writes logs to the function's own log group, and
/// to no other.
#[test]
fn every_function_has_its_own_role_which_logs_only_to_its_own_log_group() {
    let template = template();
    let mut problems = Vec::new();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for forbidden in ["Role", "Policies"] {
        if !template["Globals"]["Function"][forbidden].is_null() {
            problems.push(format!(
                "Globals.Function.{forbidden}: each function has its own role"
            ));
        }
    }
    for (id, function) in of_type(&template, FUNCTION) {
        if !function["Properties"]["Policies"].is_null() {
            problems.push(format!(
                "{id}: Policies belong in its role (SAM would make a role)"
            ));
        }
        let role = function["Properties"]["Role"]["Fn::GetAtt"]
            .as_array()
            .filter(|parts| parts.len() == 2 && parts[1] == "Arn")
            .and_then(|parts| parts[0].as_str());
        let Some(role) = role else {
            problems.push(format!(
                "{id}: no Role: !GetAtt <role>.Arn, so SAM makes one with logs on \"*\""
            ));
            continue;
        };
        let Some(definition) = resources(&template)
            .get(role)
            .filter(|resource| resource["Type"] == "AWS::IAM::Role")
        else {
            problems.push(format!(
                "{id}: its Role {role} is not an AWS::IAM::Role of the template"
            ));
            continue;
        };
        if let Some(other) = owners.insert(role.to_owned(), id.clone()) {
            problems.push(format!("{id}: shares its role {role} with {other}"));
        }
        for forbidden in ["ManagedPolicyArns", "PermissionsBoundary"] {
            if !definition["Properties"][forbidden].is_null() {
                problems.push(format!("{role}: {forbidden}: inline policies only"));
            }
        }
        let log_group = function_property(&template, function, "LoggingConfig")["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_default();
        if resources(&template)
            .get(log_group)
            .map(|group| &group["Type"])
            != Some(&json!("AWS::Logs::LogGroup"))
        {
            problems.push(format!(
                "{id}: LoggingConfig.LogGroup is not a log group of the template"
            ));
            continue;
        }
        let own = json!({"Fn::GetAtt": [log_group, "Arn"]});
        let mut writes = BTreeSet::new();
        for (_, statement) in policy_statements(&json!({"Resources": {role: definition}})) {
            let actions = one_or_many(&statement["Action"]);
            let logs: Vec<String> = actions
                .iter()
                .filter_map(Value::as_str)
                .filter(|action| action.starts_with("logs:"))
                .map(str::to_owned)
                .collect();
            if logs.is_empty() {
                continue;
            }
            if one_or_many(&statement["Resource"]) != [own.clone()] {
                problems.push(format!(
                    "{role}: {logs:?} on {}, not only on its function's log group {log_group}",
                    statement["Resource"]
                ));
            }
            writes.extend(logs);
        }
        for needed in ["logs:CreateLogStream", "logs:PutLogEvents"] {
            if !writes.contains(needed) {
                problems.push(format!(
                    "{role}: no {needed} on {log_group}: {id} would log nothing"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A role that reads objects may also list the bucket: S3 answers a read of a missing object
/// 404 only to a caller with `s3:ListBucket`, and 403 to others, which the code cannot tell
/// from a refusal (a deleted archive would read as "storage unavailable" instead of
/// `archive_missing`). Presigned URLs act with their signer's role, so this holds for them too.
#[test]
fn every_role_that_reads_objects_may_list_their_bucket() {
    let template = template();
    let mut problems = Vec::new();
    let mut readers = 0;
    for (id, role) in of_type(&template, "AWS::IAM::Role") {
        let statements = policy_statements(&json!({"Resources": {id: role}}));
        let allows = |action: &str| -> Vec<Value> {
            statements
                .iter()
                .filter(|(_, statement)| statement["Effect"] == "Allow")
                .filter(|(_, statement)| one_or_many(&statement["Action"]).contains(&json!(action)))
                .flat_map(|(_, statement)| one_or_many(&statement["Resource"]))
                .collect()
        };
        if allows("s3:GetObject").is_empty() {
            continue;
        }
        readers += 1;
        if !allows("s3:ListBucket").contains(&json!({"Fn::GetAtt": ["BasesBucket", "Arn"]})) {
            problems.push(format!(
                "{id}: may read objects but not list BasesBucket: a missing archive reads as 403"
            ));
        }
    }
    assert!(
        readers >= 2,
        "only {readers} roles read objects: the check reads no role"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Alarms

/// Every alarm on a metric of ours watches one the code publishes: a metric filter's (from a
/// message the code logs, checked below) or an embedded-metric-format gauge of
/// `lambda::metrics`, in the namespace the publishing function is given.
#[test]
fn every_alarm_watches_a_metric_that_is_published() {
    let template = template();
    let ours = json!({"Fn::Sub": "BCDI/${AWS::StackName}"});
    let mut published: BTreeSet<String> = of_type(&template, "AWS::Logs::MetricFilter")
        .flat_map(|(_, filter)| {
            one_or_many(&filter["Properties"]["MetricTransformations"])
                .into_iter()
                .filter(|transformation| transformation["MetricNamespace"] == ours)
                .filter_map(|transformation| {
                    transformation["MetricName"].as_str().map(str::to_owned)
                })
        })
        .collect();
    let mut problems = Vec::new();
    let publishers: Vec<&String> = of_type(&template, FUNCTION)
        .filter(|(_, function)| {
            environment(&template, function).get("METRICS_NAMESPACE") == Some(&ours)
        })
        .map(|(id, _)| id)
        .collect();
    if publishers.len() == 1 {
        published.extend(
            bcdi_shared::lambda::metrics::PUBLISHED
                .iter()
                .map(|name| (*name).to_owned()),
        );
    } else {
        problems.push(format!(
            "{} functions have METRICS_NAMESPACE = BCDI/${{AWS::StackName}}, not one (the \
             scheduled sweeper): {publishers:?}",
            publishers.len()
        ));
    }

    let mut watched = 0;
    for (id, alarm) in of_type(&template, "AWS::CloudWatch::Alarm") {
        let properties = &alarm["Properties"];
        let mut metrics = vec![(
            properties["Namespace"].clone(),
            properties["MetricName"].clone(),
        )];
        for query in one_or_many(&properties["Metrics"]) {
            let metric = &query["MetricStat"]["Metric"];
            if !metric.is_null() {
                metrics.push((metric["Namespace"].clone(), metric["MetricName"].clone()));
            }
        }
        for (namespace, name) in metrics {
            if namespace != ours {
                continue;
            }
            watched += 1;
            let name = name.as_str().unwrap_or_default();
            if !published.contains(name) {
                problems.push(format!(
                    "{id}: watches {name}, which nothing publishes (published: {published:?})"
                ));
            }
        }
    }
    assert!(watched >= 4, "only {watched} alarm metrics of ours found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Environment

/// Values for parameters that have no default (a deployment must give them).
const SAMPLE_PARAMETERS: &[(&str, &str)] = &[
    (
        "CyberKeySha256",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ),
    (
        "OperatorKeySha256",
        "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
    ),
    ("AllowedFrameOrigins", "https://cyberlibrairie.example"),
];

/// What a value of the template is at deployment, near enough for a function to start: a
/// parameter's default (or sample), a resource's name or ARN.
fn resolve(template: &Value, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Object(object) if object.contains_key("Ref") => {
            let name = object["Ref"].as_str().unwrap_or_default();
            if let Some(parameter) = template["Parameters"].get(name) {
                if let Some(default) = parameter.get("Default") {
                    return resolve(template, default);
                }
                return SAMPLE_PARAMETERS
                    .iter()
                    .find(|(sample, _)| *sample == name)
                    .map(|(_, value)| (*value).to_owned())
                    .ok_or(format!(
                        "parameter {name} has no default: add a sample to this test"
                    ));
            }
            if resources(template).contains_key(name) {
                return Ok(format!("arn:aws:test:eu-west-3:123456789012:{name}"));
            }
            Err(format!("!Ref {name} names nothing"))
        }
        Value::Object(object) if object.contains_key("Fn::GetAtt") => Ok(format!(
            "arn:aws:test:eu-west-3:123456789012:{}",
            object["Fn::GetAtt"][0]
        )),
        Value::Object(object) if object.contains_key("Fn::Sub") => {
            let text = object["Fn::Sub"].as_str().ok_or("a !Sub with variables")?;
            let mut resolved = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                resolved.push_str(&rest[..start]);
                let end = rest[start..].find('}').ok_or("an unclosed ${ in a !Sub")? + start;
                let name = &rest[start + 2..end];
                resolved.push_str(&match name.split_once('.') {
                    Some((resource, _)) => format!("{}.test", resource.to_lowercase()),
                    None => resolve(template, &json!({"Ref": name}))
                        .unwrap_or_else(|_| format!("{}-test", name.to_lowercase())),
                });
                rest = &rest[end + 1..];
            }
            resolved.push_str(rest);
            Ok(resolved)
        }
        other => Err(format!("cannot resolve {other}")),
    }
}

/// Starts each function the way its binary does, with exactly the environment the template gives
/// it, and compares what the start-up read (`config::var` notes it) with what the template sets:
/// a variable read but not set would be missing in production, and one set but not read is
/// configuration nobody uses (or a secret given to a function that does not need it).
#[tokio::test(flavor = "current_thread")]
async fn every_function_is_given_exactly_the_environment_it_reads() {
    let template = template();
    let binaries = binaries();
    // What the Lambda runtime sets for every function: the region, no instance metadata.
    std::env::set_var("AWS_REGION", "eu-west-3");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let mut problems = Vec::new();

    for (id, function) in of_type(&template, FUNCTION) {
        let Some(binary) = function["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue; // reported by the binaries' test
        };
        let Some(source) = binaries.get(binary) else {
            continue;
        };
        let variables = environment(&template, function);
        let mut values = BTreeMap::new();
        for (name, value) in &variables {
            match resolve(&template, value) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(error) => problems.push(format!("{id}: {name}: {error}")),
            }
        }

        for (name, value) in &values {
            std::env::set_var(name, value);
        }
        config::take_names_read();
        let started = start(entry_point(source)).await;
        let read = config::take_names_read();
        for name in values.keys() {
            std::env::remove_var(name);
        }

        if let Err(error) = started {
            problems.push(format!("{id} ({binary}): does not start: {error}"));
            continue;
        }
        let set: BTreeSet<String> = values.keys().cloned().collect();
        for name in read.difference(&set) {
            problems.push(format!(
                "{id} ({binary}): reads {name}, which the template does not set"
            ));
        }
        for name in set.difference(&read) {
            problems.push(format!(
                "{id} ({binary}): the template sets {name}, which it never reads"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What a binary's `main` does before it serves: the start-up of its entry point.
async fn start(entry: Option<&str>) -> Result<(), String> {
    match entry {
        Some("run" | "run_endpoints") => bcdi_shared::lambda::app_from_env()
            .await
            .map(drop)
            .map_err(|error| error.to_string()),
        Some("steps::run_step") => bcdi_shared::lambda::steps::steps_from_env()
            .await
            .map(drop)
            .map_err(|error| error.to_string()),
        Some("notifications::run_stream_notifier") => {
            bcdi_shared::lambda::notifications::notifier_from_env()
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        }
        Some("notifications::run_sweeper") => {
            bcdi_shared::lambda::notifications::sweeper_from_env()
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        }
        other => Err(format!(
            "its main calls lambda::{}, which tests/infra.rs does not know how to start: add it \
             to `start`",
            other.unwrap_or("?")
        )),
    }
}

/// Code that runs in Lambda reads the environment through `config::var` only, so the test above
/// sees every read. `telemetry.rs` is the exception: it reads the runtime's own log settings.
#[test]
fn lambda_code_reads_the_environment_only_through_config_var() {
    let mut problems = Vec::new();
    let mut stack = vec![root().join("shared/src"), root().join("functions/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let allowed = ["config.rs", "telemetry.rs"];
            if path.extension().is_none_or(|extension| extension != "rs")
                || allowed.iter().any(|name| path.ends_with(name))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for (number, line) in text.lines().enumerate() {
                if line.contains("env::var(") || line.contains("env::vars(") {
                    problems.push(format!(
                        "{}:{}: reads the environment directly; use bcdi_shared::config::var",
                        path.strip_prefix(root()).unwrap_or(&path).display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Table and references

/// The table of the template is the one `create_table` makes for the tests: created in moto,
/// described, and compared key by key.
#[tokio::test]
async fn the_table_is_the_one_the_dynamodb_store_creates() {
    let template = template();
    let client = bcdi_tests::moto::dynamodb_client().await;
    let name = bcdi_tests::moto::unique_table_name("infra");
    bcdi_shared::adapters::dynamodb::create_table(&client, &name)
        .await
        .expect("create_table");
    let described = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("a table");

    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Value {
        schema
            .iter()
            .map(|key| json!({"AttributeName": key.attribute_name(), "KeyType": key.key_type().as_str()}))
            .collect()
    };
    let mut attributes: Vec<Value> = described
        .attribute_definitions()
        .iter()
        .map(|a| json!({"AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str()}))
        .collect();
    attributes.sort_by_key(|a| a.to_string());
    let indexes: Vec<Value> = described
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            json!({
                "IndexName": index.index_name(),
                "KeySchema": keys(index.key_schema()),
                "Projection": {"ProjectionType": index.projection().and_then(|p| p.projection_type()).map(|t| t.as_str())},
            })
        })
        .collect();

    let table = of_type(&template, "AWS::DynamoDB::Table")
        .map(|(_, table)| &table["Properties"])
        .next()
        .expect("a DynamoDB table in the template");
    let mut declared = table["AttributeDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    declared.sort_by_key(|a| a.to_string());
    assert_eq!(declared, attributes, "AttributeDefinitions");
    assert_eq!(
        table["KeySchema"],
        keys(described.key_schema()),
        "KeySchema"
    );
    assert_eq!(
        table["GlobalSecondaryIndexes"],
        json!(indexes),
        "GlobalSecondaryIndexes"
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert!(table["LocalSecondaryIndexes"].is_null());
}

/// The time-to-live attribute is one the DynamoDB adapters write.
#[test]
fn the_table_expires_items_by_an_attribute_the_adapters_write() {
    let template = template();
    let (_, table) = of_type(&template, "AWS::DynamoDB::Table")
        .next()
        .expect("a table");
    let ttl = &table["Properties"]["TimeToLiveSpecification"];
    assert_eq!(ttl["Enabled"], true);
    let attribute = ttl["AttributeName"].as_str().expect("a TTL attribute");
    let dir = root().join("shared/src/adapters/dynamodb");
    let quoted = format!("\"{attribute}\"");
    let written = std::fs::read_dir(&dir)
        .expect("the DynamoDB adapters")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .any(|text| text.contains(&quoted));
    assert!(
        written,
        "no DynamoDB adapter writes {quoted}, the table's TTL attribute"
    );
}

/// Every `Ref`, `GetAtt` and `${…}` names a parameter, a resource or a pseudo parameter (cfn-lint
/// does not look inside IAM policies).
#[test]
fn every_reference_of_the_template_names_something() {
    let template = template();
    let mut known: BTreeSet<String> = resources(&template).keys().cloned().collect();
    known.extend(
        template["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone()),
    );
    let mut problems = Vec::new();
    let mut check = |name: &str, at: &str| {
        let base = name.split('.').next().unwrap_or_default();
        if !base.starts_with("AWS::") && !known.contains(base) {
            problems.push(format!("{at}: {name} names nothing"));
        }
    };
    fn walk(value: &Value, at: &str, check: &mut dyn FnMut(&str, &str)) {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    match (key.as_str(), inner) {
                        ("Ref", Value::String(name)) => check(name, at),
                        ("Fn::GetAtt", Value::Array(parts)) => {
                            check(parts[0].as_str().unwrap_or_default(), at)
                        }
                        ("Fn::Sub", sub) => {
                            let text = match sub {
                                Value::Array(parts) => parts[0].as_str().unwrap_or_default(),
                                other => other.as_str().unwrap_or_default(),
                            };
                            let local: BTreeSet<&str> = match sub {
                                Value::Array(parts) => parts
                                    .get(1)
                                    .and_then(Value::as_object)
                                    .map(|m| m.keys().map(String::as_str).collect())
                                    .unwrap_or_default(),
                                _ => BTreeSet::new(),
                            };
                            for name in placeholders(text) {
                                if !local.contains(name.as_str()) && !name.starts_with('!') {
                                    check(&name, at);
                                }
                            }
                            if let Value::Array(parts) = sub {
                                for part in parts.iter().skip(1) {
                                    walk(part, at, check);
                                }
                            }
                        }
                        _ => walk(inner, &format!("{at}.{key}"), check),
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{index}]"), check);
                }
            }
            _ => {}
        }
    }
    walk(&template["Resources"], "Resources", &mut check);
    walk(&template["Outputs"], "Outputs", &mut check);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// No resource depends on itself through others: CloudFormation refuses such a template, and
/// neither cfn-lint nor `sam validate` sees the cycles SAM makes. Besides the references
/// written in the template, SAM makes an HTTP API refer to every function routed from it.
#[test]
fn the_template_has_no_circular_dependency() {
    let template = template();
    let resources = resources(&template);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, resource) in resources {
        let mut names = BTreeSet::new();
        collect_references(&resource["Properties"], &mut names);
        match &resource["DependsOn"] {
            Value::String(name) => {
                names.insert(name.clone());
            }
            Value::Array(list) => {
                names.extend(list.iter().filter_map(|n| n.as_str().map(str::to_owned)))
            }
            _ => {}
        }
        // A function's event is the source's business (the API's routes), not the function's.
        names.retain(|name| name != id && resources.contains_key(name));
        if resource["Type"] == FUNCTION {
            for event in resource["Properties"]["Events"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, e)| e)
            {
                if let Some(api) = event["Properties"]["ApiId"]["Ref"].as_str() {
                    names.remove(api);
                    edges.entry(api.to_owned()).or_default().insert(id.clone());
                }
            }
        }
        edges.entry(id.clone()).or_default().extend(names);
    }

    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("circular dependency: {}", cycle.join(" -> "));
        }
    }
}

/// The resources and parameters a value refers to (`Ref`, `Fn::GetAtt`, `${…}` of `Fn::Sub`).
fn collect_references(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("Ref", Value::String(name)) => {
                        names.insert(name.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        names.extend(parts.first().and_then(Value::as_str).map(str::to_owned));
                    }
                    ("Fn::Sub", Value::String(text)) => {
                        for name in placeholders(text) {
                            names.insert(name.split('.').next().unwrap_or_default().to_owned());
                        }
                    }
                    ("Fn::Sub", Value::Array(parts)) => {
                        for name in placeholders(parts[0].as_str().unwrap_or_default()) {
                            names.insert(name.split('.').next().unwrap_or_default().to_owned());
                        }
                        parts
                            .iter()
                            .skip(1)
                            .for_each(|part| collect_references(part, names));
                    }
                    _ => collect_references(inner, names),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_references(item, names)),
        _ => {}
    }
}

/// A metric filter counts log lines the code writes: each `$.message = "…"` of a filter pattern
/// is the message of a `tracing` event in the code that runs in Lambda.
#[test]
fn every_metric_filter_matches_a_message_the_code_logs() {
    let template = template();
    let mut sources = String::new();
    let mut stack = vec![root().join("shared/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).expect("a source file"));
            }
        }
    }
    let mut problems = Vec::new();
    let filters: Vec<_> = of_type(&template, "AWS::Logs::MetricFilter").collect();
    for (id, filter) in &filters {
        let pattern = filter["Properties"]["FilterPattern"]
            .as_str()
            .unwrap_or_default();
        let messages: Vec<&str> = pattern
            .split("$.message = \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        if messages.is_empty() {
            problems.push(format!("{id}: its pattern names no $.message"));
        }
        for message in messages {
            if !sources.contains(&format!("\"{message}\"")) {
                problems.push(format!("{id}: no code logs \"{message}\""));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
