//! Loading a state machine: `${Name}` placeholders replaced in the text as SAM's
//! DefinitionSubstitutions do, then every state checked against what this executor implements.
//! Whatever it does not implement is refused here, naming the state and the field, so that a
//! definition never silently behaves differently on a laptop and on Step Functions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use serde_json::{Map, Value};

use super::choice::{parse_timestamp, Rule};
use super::path::{Path, Source, Template, TemplateError};

/// One state machine as the caller hands it over: its name, the text of its `.asl.json` file,
/// and the values of its `${Name}` placeholders.
#[derive(Debug, Clone)]
pub struct StateMachineSource {
    pub name: String,
    pub definition: String,
    pub substitutions: HashMap<String, String>,
}

impl StateMachineSource {
    pub fn new(name: impl Into<String>, definition: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            definition: definition.into(),
            substitutions: HashMap::new(),
        }
    }

    /// Adds the value of the placeholder `${name}`.
    pub fn substitute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.substitutions.insert(name.into(), value.into());
        self
    }
}

/// Why a definition was refused: where (state machine, state, field) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub machine: String,
    pub state: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "state machine `{}`", self.machine)?;
        if let Some(state) = &self.state {
            write!(f, ", state `{state}`")?;
        }
        if !self.field.is_empty() {
            write!(f, ", field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// Loads `source` without running anything: what `Executor::open` does to each machine.
/// Tests of the definition files can call it directly.
pub fn validate(source: &StateMachineSource) -> Result<(), LoadError> {
    Machine::load(source).map(|_| ())
}

#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) name: String,
    pub(crate) start_at: String,
    pub(crate) states: HashMap<String, State>,
    pub(crate) timeout_seconds: Option<u64>,
}

#[derive(Debug)]
pub(crate) enum State {
    Pass(Pass),
    Task(Task),
    Choice(Choice),
    Wait(Wait),
    Succeed(Io),
    Fail(Fail),
}

/// InputPath and OutputPath; `None` is an explicit `null`, which stands for `{}`.
#[derive(Debug)]
pub(crate) struct Io {
    pub(crate) input_path: Option<Path>,
    pub(crate) output_path: Option<Path>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    Next(String),
    End,
}

#[derive(Debug)]
pub(crate) struct Pass {
    pub(crate) io: Io,
    pub(crate) parameters: Option<Template>,
    pub(crate) result: Option<Value>,
    /// `None` is `"ResultPath": null`: the state's input passes through.
    pub(crate) result_path: Option<Path>,
    pub(crate) transition: Transition,
}

#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) io: Io,
    pub(crate) resource: Resource,
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    pub(crate) result_path: Option<Path>,
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
    pub(crate) timeout: Option<Seconds>,
    pub(crate) heartbeat: Option<Seconds>,
    pub(crate) transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resource {
    /// A function called directly; its return value is the task's result.
    Function(String),
    /// `arn:aws:states:::lambda:invoke`: the result is `{"Payload": …, "StatusCode": 200}`.
    Invoke,
    /// `arn:aws:states:::lambda:invoke.waitForTaskToken`.
    InvokeWaitForTaskToken,
}

#[derive(Debug, Clone)]
pub(crate) enum Seconds {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub(crate) errors: Vec<String>,
    pub(crate) interval_seconds: u64,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<u64>,
    pub(crate) full_jitter: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub(crate) errors: Vec<String>,
    pub(crate) next: String,
    pub(crate) result_path: Option<Path>,
}

#[derive(Debug)]
pub(crate) struct Choice {
    pub(crate) io: Io,
    pub(crate) choices: Vec<(Rule, String)>,
    pub(crate) default: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Wait {
    pub(crate) io: Io,
    pub(crate) until: WaitFor,
    pub(crate) transition: Transition,
}

#[derive(Debug)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    /// Unix milliseconds.
    Timestamp(i64),
    TimestampPath(Path),
}

#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) error: Option<Text>,
    pub(crate) cause: Option<Text>,
}

#[derive(Debug)]
pub(crate) enum Text {
    Literal(String),
    Path(Path),
}

const INVOKE: &str = "lambda:invoke";
const INVOKE_WAIT: &str = "lambda:invoke.waitForTaskToken";

/// The largest value the States Language allows for seconds, about three years.
const MAX_SECONDS: u64 = 99_999_999;

struct Ctx<'a> {
    machine: &'a str,
    state: Option<&'a str>,
}

impl Ctx<'_> {
    fn error(&self, field: impl Into<String>, message: impl Into<String>) -> LoadError {
        LoadError {
            machine: self.machine.to_owned(),
            state: self.state.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        }
    }

    fn template(&self, field: &str, value: &Value) -> Result<Template, LoadError> {
        Template::parse(value).map_err(|TemplateError { place, message }| {
            self.error(format!("{field}.{place}").trim_end_matches('.'), message)
        })
    }
}

impl Machine {
    pub(crate) fn load(source: &StateMachineSource) -> Result<Self, LoadError> {
        let ctx = Ctx {
            machine: &source.name,
            state: None,
        };
        let text = substitute(&source.name, &source.definition, &source.substitutions)?;
        let root: Value = serde_json::from_str(&text)
            .map_err(|error| ctx.error("", format!("not valid JSON: {error}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| ctx.error("", "a state machine is a JSON object"))?;
        check_fields(
            &ctx,
            root,
            &[
                "Comment",
                "StartAt",
                "States",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ],
            "a state machine",
        )?;
        if let Some(version) = root.get("Version") {
            if version != "1.0" {
                return Err(ctx.error("Version", "only version 1.0 exists"));
            }
        }
        let timeout_seconds = seconds_field(&ctx, root, "TimeoutSeconds", true)?;
        let start_at = root
            .get("StartAt")
            .and_then(Value::as_str)
            .ok_or_else(|| ctx.error("StartAt", "must name the first state"))?
            .to_owned();
        let states_json = root
            .get("States")
            .and_then(Value::as_object)
            .filter(|states| !states.is_empty())
            .ok_or_else(|| ctx.error("States", "must be a non-empty object"))?;

        let mut states = HashMap::new();
        for (name, value) in states_json {
            let ctx = Ctx {
                machine: &source.name,
                state: Some(name),
            };
            states.insert(name.clone(), parse_state(&ctx, value)?);
        }
        let machine = Self {
            name: source.name.clone(),
            start_at,
            states,
            timeout_seconds,
        };
        machine.check_transitions()?;
        Ok(machine)
    }

    /// Every Next names a state, and every state can be reached, as Step Functions requires.
    fn check_transitions(&self) -> Result<(), LoadError> {
        let ctx = Ctx {
            machine: &self.name,
            state: None,
        };
        if !self.states.contains_key(&self.start_at) {
            return Err(ctx.error("StartAt", format!("there is no state `{}`", self.start_at)));
        }
        let mut names: Vec<&String> = self.states.keys().collect();
        names.sort();
        for name in &names {
            for (field, target) in self.states[*name].targets() {
                if !self.states.contains_key(target) {
                    return Err(LoadError {
                        machine: self.name.clone(),
                        state: Some((*name).clone()),
                        field,
                        message: format!("there is no state `{target}`"),
                    });
                }
            }
        }

        let mut reached = HashSet::from([self.start_at.as_str()]);
        let mut queue = VecDeque::from([self.start_at.as_str()]);
        while let Some(name) = queue.pop_front() {
            for (_, target) in self.states[name].targets() {
                if reached.insert(target) {
                    queue.push_back(target);
                }
            }
        }
        match names
            .into_iter()
            .find(|name| !reached.contains(name.as_str()))
        {
            Some(name) => Err(LoadError {
                machine: self.name.clone(),
                state: Some(name.clone()),
                field: String::new(),
                message: "no transition leads to this state".to_owned(),
            }),
            None => Ok(()),
        }
    }
}

impl State {
    /// The states this one can go to, with the field that names each.
    fn targets(&self) -> Vec<(String, &str)> {
        fn next(transition: &Transition) -> Vec<(String, &str)> {
            match transition {
                Transition::Next(next) => vec![("Next".to_owned(), next.as_str())],
                Transition::End => Vec::new(),
            }
        }
        match self {
            State::Pass(pass) => next(&pass.transition),
            State::Wait(wait) => next(&wait.transition),
            State::Task(task) => {
                let mut targets = next(&task.transition);
                for (i, catcher) in task.catch.iter().enumerate() {
                    targets.push((format!("Catch[{i}].Next"), catcher.next.as_str()));
                }
                targets
            }
            State::Choice(choice) => {
                let mut targets: Vec<_> = choice
                    .choices
                    .iter()
                    .enumerate()
                    .map(|(i, (_, next))| (format!("Choices[{i}].Next"), next.as_str()))
                    .collect();
                if let Some(default) = &choice.default {
                    targets.push(("Default".to_owned(), default.as_str()));
                }
                targets
            }
            State::Succeed(_) | State::Fail(_) => Vec::new(),
        }
    }
}

/// Replaces every `${Name}` by its value, as text, the way SAM does before deploying.
fn substitute(
    machine: &str,
    text: &str,
    substitutions: &HashMap<String, String>,
) -> Result<String, LoadError> {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap_or(after.len());
        let name = &after[..end];
        match substitutions.get(name).filter(|_| end < after.len()) {
            Some(value) => output.push_str(value),
            None => {
                let placeholder = format!("${{{name}}}");
                let (state, field) = locate(text, &placeholder);
                return Err(LoadError {
                    machine: machine.to_owned(),
                    state,
                    field,
                    message: format!("no value was given for the placeholder {placeholder}"),
                });
            }
        }
        rest = &after[(end + 1).min(after.len())..];
    }
    output.push_str(rest);
    Ok(output)
}

/// The state and field whose string holds `needle`, to say where an unknown placeholder is.
fn locate(text: &str, needle: &str) -> (Option<String>, String) {
    fn search(value: &Value, needle: &str, place: String) -> Option<String> {
        match value {
            Value::String(s) if s.contains(needle) => Some(place),
            Value::Object(object) => object.iter().find_map(|(key, value)| {
                let here = if place.is_empty() {
                    key.clone()
                } else {
                    format!("{place}.{key}")
                };
                search(value, needle, here)
            }),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| search(item, needle, format!("{place}[{i}]"))),
            _ => None,
        }
    }
    let Ok(root) = serde_json::from_str::<Value>(text) else {
        return (None, String::new());
    };
    if let Some(states) = root.get("States").and_then(Value::as_object) {
        for (name, state) in states {
            if let Some(field) = search(state, needle, String::new()) {
                return (Some(name.clone()), field);
            }
        }
    }
    (
        None,
        search(&root, needle, String::new()).unwrap_or_default(),
    )
}

fn parse_state(ctx: &Ctx, value: &Value) -> Result<State, LoadError> {
    let object = value
        .as_object()
        .ok_or_else(|| ctx.error("", "a state must be a JSON object"))?;
    let kind = object
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.error("Type", "every state needs a Type"))?;
    const COMMON: [&str; 3] = ["Type", "Comment", "QueryLanguage"];
    let allowed: &[&str] = match kind {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "Result",
            "ResultPath",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
        ],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default"],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Map" | "Parallel" => {
            return Err(ctx.error(
                "Type",
                format!("{kind} states are not supported by the local executor"),
            ))
        }
        other => return Err(ctx.error("Type", format!("`{other}` is not a state type"))),
    };
    let allowed: Vec<&str> = COMMON.iter().chain(allowed).copied().collect();
    check_fields(ctx, object, &allowed, &format!("a {kind} state"))?;

    Ok(match kind {
        "Pass" => State::Pass(Pass {
            io: io(ctx, object)?,
            parameters: object
                .get("Parameters")
                .map(|value| ctx.template("Parameters", value))
                .transpose()?,
            result: object.get("Result").cloned(),
            result_path: result_path(ctx, object, "ResultPath")?,
            transition: transition(ctx, object)?,
        }),
        "Task" => State::Task(parse_task(ctx, object)?),
        "Choice" => State::Choice(parse_choice(ctx, object)?),
        "Wait" => State::Wait(parse_wait(ctx, object)?),
        "Succeed" => State::Succeed(io(ctx, object)?),
        _ => State::Fail(Fail {
            error: text_field(ctx, object, "Error")?,
            cause: text_field(ctx, object, "Cause")?,
        }),
    })
}

fn check_fields(
    ctx: &Ctx,
    object: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<(), LoadError> {
    for (key, value) in object {
        if key == "QueryLanguage" {
            if value != "JSONPath" {
                return Err(ctx.error(
                    key.as_str(),
                    "only JSONPath is supported by the local executor, not JSONata",
                ));
            }
            continue;
        }
        if allowed.contains(&key.as_str()) {
            continue;
        }
        let message = match key.as_str() {
            "Assign" => {
                "workflow variables (Assign) are not supported by the local executor".to_owned()
            }
            "Arguments" | "Output" | "Condition" => {
                format!("{key} belongs to JSONata, which the local executor does not support")
            }
            "Credentials" => {
                "cross-account Credentials are not supported by the local executor".to_owned()
            }
            _ => format!("{key} is not supported in {what} by the local executor"),
        };
        return Err(ctx.error(key.as_str(), message));
    }
    Ok(())
}

fn io(ctx: &Ctx, object: &Map<String, Value>) -> Result<Io, LoadError> {
    Ok(Io {
        input_path: result_path(ctx, object, "InputPath")?,
        output_path: result_path(ctx, object, "OutputPath")?,
    })
}

/// A path field that may be absent (`$`) or `null` (`None`).
fn result_path(
    ctx: &Ctx,
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Path>, LoadError> {
    match object.get(field) {
        None => Ok(Some(Path::root())),
        Some(Value::Null) => Ok(None),
        Some(value) => path(ctx, field, value).map(Some),
    }
}

fn path(ctx: &Ctx, field: &str, value: &Value) -> Result<Path, LoadError> {
    let text = value
        .as_str()
        .ok_or_else(|| ctx.error(field, "must be a path string"))?;
    if text.starts_with("States.") {
        return Err(ctx.error(
            field,
            "intrinsic functions are not supported by the local executor",
        ));
    }
    Path::parse(text).map_err(|message| ctx.error(field, message))
}

fn transition(ctx: &Ctx, object: &Map<String, Value>) -> Result<Transition, LoadError> {
    let end = match object.get("End") {
        None => false,
        Some(Value::Bool(end)) => *end,
        Some(_) => return Err(ctx.error("End", "must be true or false")),
    };
    match (object.get("Next"), end) {
        (Some(Value::String(next)), false) => Ok(Transition::Next(next.clone())),
        (Some(Value::String(_)), true) => {
            Err(ctx.error("End", "a state has Next or End, not both"))
        }
        (Some(_), _) => Err(ctx.error("Next", "must be a state name")),
        (None, true) => Ok(Transition::End),
        (None, false) => Err(ctx.error("Next", "needs Next, or End: true")),
    }
}

fn seconds_field(
    ctx: &Ctx,
    object: &Map<String, Value>,
    field: &str,
    positive: bool,
) -> Result<Option<u64>, LoadError> {
    let Some(value) = object.get(field) else {
        return Ok(None);
    };
    let minimum = u64::from(positive);
    match value.as_u64() {
        Some(seconds) if (minimum..=MAX_SECONDS).contains(&seconds) => Ok(Some(seconds)),
        _ => Err(ctx.error(
            field,
            format!("must be an integer from {minimum} to {MAX_SECONDS}"),
        )),
    }
}

/// `TimeoutSeconds` or `TimeoutSecondsPath` (or the Heartbeat pair), at most one of the two.
fn seconds_or_path(
    ctx: &Ctx,
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Seconds>, LoadError> {
    let path_field = format!("{field}Path");
    let fixed = seconds_field(ctx, object, field, true)?;
    let by_path = object
        .get(&path_field)
        .map(|value| path(ctx, &path_field, value))
        .transpose()?;
    match (fixed, by_path) {
        (Some(_), Some(_)) => Err(ctx.error(
            path_field.as_str(),
            format!("{field} and {path_field} cannot both be given"),
        )),
        (Some(seconds), None) => Ok(Some(Seconds::Fixed(seconds))),
        (None, Some(path)) => Ok(Some(Seconds::Path(path))),
        (None, None) => Ok(None),
    }
}

fn parse_task(ctx: &Ctx, object: &Map<String, Value>) -> Result<Task, LoadError> {
    let resource = object
        .get("Resource")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.error("Resource", "a Task needs a Resource"))?;
    let resource = parse_resource(ctx, resource)?;
    let parameters = object
        .get("Parameters")
        .map(|value| ctx.template("Parameters", value))
        .transpose()?;

    if !matches!(resource, Resource::Function(_)) {
        check_invoke_parameters(ctx, parameters.as_ref(), &resource)?;
    }

    let timeout = seconds_or_path(ctx, object, "TimeoutSeconds")?;
    let heartbeat = seconds_or_path(ctx, object, "HeartbeatSeconds")?;
    if heartbeat.is_some() && resource != Resource::InvokeWaitForTaskToken {
        return Err(ctx.error(
            "HeartbeatSeconds",
            "heartbeats are only supported on lambda:invoke.waitForTaskToken tasks, \
             whose callers can send them",
        ));
    }
    if let (Some(Seconds::Fixed(timeout)), Some(Seconds::Fixed(heartbeat))) = (&timeout, &heartbeat)
    {
        if heartbeat >= timeout {
            return Err(ctx.error("HeartbeatSeconds", "must be smaller than TimeoutSeconds"));
        }
    }

    Ok(Task {
        io: io(ctx, object)?,
        resource,
        parameters,
        result_selector: object
            .get("ResultSelector")
            .map(|value| ctx.template("ResultSelector", value))
            .transpose()?,
        result_path: result_path(ctx, object, "ResultPath")?,
        retry: parse_retriers(ctx, object.get("Retry"))?,
        catch: parse_catchers(ctx, object.get("Catch"))?,
        timeout,
        heartbeat,
        transition: transition(ctx, object)?,
    })
}

/// The resources this executor can call: Lambda functions, directly or through the two
/// lambda:invoke integrations. Every other integration, activity or service is refused.
fn parse_resource(ctx: &Ctx, resource: &str) -> Result<Resource, LoadError> {
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    let refuse = |what: &str| {
        Err(ctx.error(
            "Resource",
            format!("{what} `{resource}` is not supported by the local executor"),
        ))
    };
    match parts.as_slice() {
        ["arn", _partition, "states", "", "", integration] => match *integration {
            INVOKE => Ok(Resource::Invoke),
            INVOKE_WAIT => Ok(Resource::InvokeWaitForTaskToken),
            _ => refuse("the service integration"),
        },
        ["arn", _partition, "states", _, _, activity] if activity.starts_with("activity:") => {
            refuse("the activity")
        }
        ["arn", _partition, "lambda", _, _, function] if function.starts_with("function:") => {
            Ok(Resource::Function(resource.to_owned()))
        }
        ["arn", ..] => refuse("the resource"),
        _ if resource.is_empty() => Err(ctx.error("Resource", "must not be empty")),
        // A name given through a placeholder for the local functions, such as `record-status`.
        _ => Ok(Resource::Function(resource.to_owned())),
    }
}

fn check_invoke_parameters(
    ctx: &Ctx,
    parameters: Option<&Template>,
    resource: &Resource,
) -> Result<(), LoadError> {
    let parameters = parameters.ok_or_else(|| {
        ctx.error(
            "Parameters",
            "lambda:invoke needs Parameters with FunctionName and Payload",
        )
    })?;
    if !matches!(parameters, Template::Object(_)) {
        return Err(ctx.error("Parameters", "must be an object"));
    }
    for name in parameters.field_names() {
        if !matches!(name, "FunctionName" | "Payload") {
            return Err(ctx.error(
                format!("Parameters.{name}"),
                "only FunctionName and Payload are supported for lambda:invoke by the local \
                 executor",
            ));
        }
    }
    match parameters.field("FunctionName") {
        Some(Template::Literal(Value::String(_))) | Some(Template::Path(..)) => {}
        Some(_) => {
            return Err(ctx.error("Parameters.FunctionName", "must be a function name or ARN"))
        }
        None => {
            return Err(ctx.error(
                "Parameters.FunctionName",
                "lambda:invoke needs a FunctionName",
            ))
        }
    }
    if *resource == Resource::InvokeWaitForTaskToken && !mentions_task_token(parameters) {
        return Err(ctx.error(
            "Parameters",
            "a waitForTaskToken task must pass $$.Task.Token to its function, or nothing \
             could ever complete it",
        ));
    }
    Ok(())
}

fn mentions_task_token(template: &Template) -> bool {
    match template {
        Template::Path(Source::Context, path) => path.as_str() == "$.Task.Token",
        Template::Path(..) | Template::Literal(_) => false,
        Template::Object(fields) => fields.iter().any(|(_, t)| mentions_task_token(t)),
        Template::Array(items) => items.iter().any(mentions_task_token),
    }
}

fn error_equals(
    ctx: &Ctx,
    field: &str,
    object: &Map<String, Value>,
) -> Result<Vec<String>, LoadError> {
    let field = format!("{field}.ErrorEquals");
    let errors: Vec<String> = object
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|errors| !errors.is_empty())
        .and_then(|errors| {
            errors
                .iter()
                .map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| ctx.error(field.as_str(), "must be a non-empty array of error names"))?;
    if errors.len() > 1 && errors.iter().any(|e| e == "States.ALL") {
        return Err(ctx.error(field, "States.ALL must appear alone"));
    }
    Ok(errors)
}

fn array_of_objects<'a>(
    ctx: &Ctx,
    field: &str,
    value: Option<&'a Value>,
) -> Result<Vec<&'a Map<String, Value>>, LoadError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .as_array()
        .and_then(|items| items.iter().map(Value::as_object).collect())
        .ok_or_else(|| ctx.error(field, "must be an array of objects"))
}

/// States.ALL must be the last retrier or catcher: after it, none could ever apply.
fn all_is_last(ctx: &Ctx, field: &str, lists: &[&Vec<String>]) -> Result<(), LoadError> {
    let last = lists.len().saturating_sub(1);
    match lists
        .iter()
        .position(|errors| errors.iter().any(|e| e == "States.ALL"))
    {
        Some(i) if i != last => Err(ctx.error(
            format!("{field}[{i}].ErrorEquals"),
            format!("States.ALL must be in the last element of {field}"),
        )),
        _ => Ok(()),
    }
}

fn parse_retriers(ctx: &Ctx, value: Option<&Value>) -> Result<Vec<Retrier>, LoadError> {
    let mut retriers = Vec::new();
    for (i, object) in array_of_objects(ctx, "Retry", value)?
        .into_iter()
        .enumerate()
    {
        let here = format!("Retry[{i}]");
        let local = |field: &str| format!("{here}.{field}");
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "ErrorEquals"
                    | "IntervalSeconds"
                    | "MaxAttempts"
                    | "BackoffRate"
                    | "MaxDelaySeconds"
                    | "JitterStrategy"
                    | "Comment"
            ) {
                return Err(ctx.error(local(key), "is not a field of a retrier"));
            }
        }
        let integer = |field: &str, minimum: u64, default: u64| -> Result<u64, LoadError> {
            match object.get(field) {
                None => Ok(default),
                Some(value) => value
                    .as_u64()
                    .filter(|n| (minimum..=MAX_SECONDS).contains(n))
                    .ok_or_else(|| {
                        ctx.error(
                            local(field),
                            format!("must be an integer from {minimum} to {MAX_SECONDS}"),
                        )
                    }),
            }
        };
        let backoff_rate = match object.get("BackoffRate") {
            None => 2.0,
            Some(value) => value
                .as_f64()
                .filter(|rate| *rate >= 1.0)
                .ok_or_else(|| ctx.error(local("BackoffRate"), "must be a number ≥ 1.0"))?,
        };
        let full_jitter = match object.get("JitterStrategy") {
            None => false,
            Some(value) if value == "NONE" => false,
            Some(value) if value == "FULL" => true,
            Some(_) => return Err(ctx.error(local("JitterStrategy"), "must be FULL or NONE")),
        };
        retriers.push(Retrier {
            errors: error_equals(ctx, &here, object)?,
            interval_seconds: integer("IntervalSeconds", 1, 1)?,
            max_attempts: u32::try_from(integer("MaxAttempts", 0, 3)?).unwrap_or(u32::MAX),
            backoff_rate,
            max_delay_seconds: object
                .get("MaxDelaySeconds")
                .map(|_| integer("MaxDelaySeconds", 1, 1))
                .transpose()?,
            full_jitter,
        });
    }
    all_is_last(
        ctx,
        "Retry",
        &retriers.iter().map(|r| &r.errors).collect::<Vec<_>>(),
    )?;
    Ok(retriers)
}

fn parse_catchers(ctx: &Ctx, value: Option<&Value>) -> Result<Vec<Catcher>, LoadError> {
    let mut catchers = Vec::new();
    for (i, object) in array_of_objects(ctx, "Catch", value)?
        .into_iter()
        .enumerate()
    {
        let here = format!("Catch[{i}]");
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "ErrorEquals" | "Next" | "ResultPath" | "Comment"
            ) {
                let message = match key.as_str() {
                    "Assign" | "Output" => format!("{key} is not supported by the local executor"),
                    _ => "is not a field of a catcher".to_owned(),
                };
                return Err(ctx.error(format!("{here}.{key}"), message));
            }
        }
        let next = object
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| ctx.error(format!("{here}.Next"), "a catcher needs Next"))?;
        let result_path = match object.get("ResultPath") {
            None => Some(Path::root()),
            Some(Value::Null) => None,
            Some(value) => Some(path(ctx, &format!("{here}.ResultPath"), value)?),
        };
        catchers.push(Catcher {
            errors: error_equals(ctx, &here, object)?,
            next: next.to_owned(),
            result_path,
        });
    }
    all_is_last(
        ctx,
        "Catch",
        &catchers.iter().map(|c| &c.errors).collect::<Vec<_>>(),
    )?;
    Ok(catchers)
}

fn parse_choice(ctx: &Ctx, object: &Map<String, Value>) -> Result<Choice, LoadError> {
    let rules = object
        .get("Choices")
        .and_then(Value::as_array)
        .filter(|rules| !rules.is_empty())
        .ok_or_else(|| ctx.error("Choices", "must be a non-empty array of rules"))?;
    let choices = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            Rule::parse_top(rule, &format!("Choices[{i}]"))
                .map_err(|error| ctx.error(error.field, error.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let default = match object.get("Default") {
        None => None,
        Some(Value::String(default)) => Some(default.clone()),
        Some(_) => return Err(ctx.error("Default", "must be a state name")),
    };
    Ok(Choice {
        io: io(ctx, object)?,
        choices,
        default,
    })
}

fn parse_wait(ctx: &Ctx, object: &Map<String, Value>) -> Result<Wait, LoadError> {
    let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|field| object.contains_key(*field))
        .collect();
    let [field] = given.as_slice() else {
        return Err(ctx.error(
            "Seconds",
            "a Wait needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
        ));
    };
    let value = &object[*field];
    let until = match *field {
        "Seconds" => {
            WaitFor::Seconds(seconds_field(ctx, object, "Seconds", false)?.unwrap_or_default())
        }
        "Timestamp" => {
            let timestamp = value
                .as_str()
                .and_then(parse_timestamp)
                .ok_or_else(|| ctx.error("Timestamp", "must be an RFC 3339 timestamp"))?;
            WaitFor::Timestamp(timestamp.as_millisecond())
        }
        "SecondsPath" => WaitFor::SecondsPath(path(ctx, field, value)?),
        _ => WaitFor::TimestampPath(path(ctx, field, value)?),
    };
    Ok(Wait {
        io: io(ctx, object)?,
        until,
        transition: transition(ctx, object)?,
    })
}

/// `Error`/`ErrorPath` or `Cause`/`CausePath` of a Fail state.
fn text_field(
    ctx: &Ctx,
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Text>, LoadError> {
    let path_field = format!("{field}Path");
    match (object.get(field), object.get(&path_field)) {
        (Some(_), Some(_)) => Err(ctx.error(
            path_field.as_str(),
            format!("{field} and {path_field} cannot both be given"),
        )),
        (Some(Value::String(text)), None) => Ok(Some(Text::Literal(text.clone()))),
        (Some(_), None) => Err(ctx.error(field, "must be a string")),
        (None, Some(value)) => Ok(Some(Text::Path(path(ctx, &path_field, value)?))),
        (None, None) => Ok(None),
    }
}
