//! The part of JSONPath that Amazon States Language needs: `$`, `$.a.b`, `$.a[0]`,
//! `$['a b']`, and the payload templates whose keys end in `.$`. Everything else JSONPath can
//! say (wildcards, filters, slices, recursive descent) is refused when a definition is loaded.

use serde_json::{Map, Value};

/// One step of a path: a member of an object or an element of an array.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A reference path: it selects at most one node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    text: String,
    segments: Vec<Segment>,
}

impl Path {
    pub(crate) fn root() -> Self {
        Self {
            text: "$".to_owned(),
            segments: Vec::new(),
        }
    }

    /// Parses `$`, `$.name`, `$.list[2]`, `$['odd key']`, in any combination.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("`{text}` is not a path: it must start with `$`"))?;
        if rest.starts_with('$') {
            return Err(format!(
                "`{text}`: a context path (`$$`) is not allowed here"
            ));
        }
        let chars: Vec<char> = rest.chars().collect();
        let mut segments = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(unsupported(text, "recursive descent or an empty name"));
                    }
                    if name == "*" {
                        return Err(unsupported(text, "wildcards"));
                    }
                    if name.contains(['(', ')', '*', '?', ']']) {
                        return Err(unsupported(text, "expressions and functions"));
                    }
                    segments.push(Segment::Key(name));
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == ']')
                        .map(|offset| i + offset)
                        .ok_or_else(|| format!("`{text}`: `[` is never closed"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    segments.push(bracket_segment(text, &inner)?);
                    i = close + 1;
                }
                _ => return Err(format!("`{text}`: expected `.` or `[` after `$`")),
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The node this path selects in `value`, if there is one.
    pub(crate) fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |node, segment| match segment {
                Segment::Key(key) => node.as_object()?.get(key),
                Segment::Index(index) => node.as_array()?.get(*index),
            })
    }

    /// `target` with `value` put where this path points, creating the objects on the way that
    /// do not exist yet, as a ResultPath does.
    pub(crate) fn set(&self, mut target: Value, value: Value) -> Result<Value, String> {
        let Some((last, parents)) = self.segments.split_last() else {
            return Ok(value);
        };
        let mut node = &mut target;
        for segment in parents {
            node = match segment {
                Segment::Key(key) => {
                    let object = node
                        .as_object_mut()
                        .ok_or_else(|| self.not_an_object(key))?;
                    object
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                }
                Segment::Index(index) => self.element(node, *index)?,
            };
        }
        match last {
            Segment::Key(key) => {
                node.as_object_mut()
                    .ok_or_else(|| self.not_an_object(key))?
                    .insert(key.clone(), value);
            }
            Segment::Index(index) => *self.element(node, *index)? = value,
        }
        Ok(target)
    }

    fn element<'a>(&self, node: &'a mut Value, index: usize) -> Result<&'a mut Value, String> {
        node.as_array_mut()
            .and_then(|array| array.get_mut(index))
            .ok_or_else(|| format!("`{}`: there is no element [{index}] to replace", self.text))
    }

    fn not_an_object(&self, key: &str) -> String {
        format!(
            "`{}`: cannot set `{key}` because the value that should hold it is not an object",
            self.text
        )
    }
}

fn bracket_segment(text: &str, inner: &str) -> Result<Segment, String> {
    let quoted = |quote: char| {
        inner
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
    };
    if let Some(key) = quoted('\'').or_else(|| quoted('"')) {
        return Ok(Segment::Key(key.to_owned()));
    }
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        let index = inner
            .parse()
            .map_err(|_| format!("`{text}`: index [{inner}] is too large"))?;
        return Ok(Segment::Index(index));
    }
    let what = if inner.contains('?') || inner.contains('(') {
        "filters and expressions"
    } else if inner.contains(':') {
        "slices"
    } else if inner.contains('*') {
        "wildcards"
    } else if inner.contains(',') {
        "unions"
    } else {
        "this subscript"
    };
    Err(unsupported(text, what))
}

fn unsupported(text: &str, what: &str) -> String {
    format!("`{text}`: JSONPath {what} are not supported by the local executor")
}

/// Where a `.$` value is read from: the state's effective input, or the context object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    Input,
    Context,
}

/// A Parameters, ResultSelector or Payload template, checked once at load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path(Source, Path),
}

/// Why a template was refused: the dotted place in the template, and what is wrong there.
#[derive(Debug, PartialEq)]
pub(crate) struct TemplateError {
    pub(crate) place: String,
    pub(crate) message: String,
}

/// The roots `$$.` may name; Map's `$$.Map` is not among them since Map is not supported.
const CONTEXT_ROOTS: [&str; 4] = ["Execution", "State", "StateMachine", "Task"];

impl Template {
    pub(crate) fn parse(value: &Value) -> Result<Self, TemplateError> {
        Self::parse_at(value, "")
    }

    fn parse_at(value: &Value, place: &str) -> Result<Self, TemplateError> {
        match value {
            Value::Object(object) => {
                let mut fields = Vec::with_capacity(object.len());
                for (key, value) in object {
                    let here = join(place, key);
                    match key.strip_suffix(".$") {
                        Some(name) => fields.push((name.to_owned(), Self::path(value, &here)?)),
                        None => fields.push((key.clone(), Self::parse_at(value, &here)?)),
                    }
                }
                Ok(Self::Object(fields))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| Self::parse_at(item, &format!("{place}[{index}]")))
                .collect::<Result<_, _>>()
                .map(Self::Array),
            other => Ok(Self::Literal(other.clone())),
        }
    }

    fn path(value: &Value, place: &str) -> Result<Self, TemplateError> {
        let error = |message: String| TemplateError {
            place: place.to_owned(),
            message,
        };
        let text = value
            .as_str()
            .ok_or_else(|| error("a field ending in `.$` must hold a path string".to_owned()))?;
        if text.starts_with("States.") {
            let function = text.split('(').next().unwrap_or(text);
            return Err(error(format!(
                "intrinsic functions ({function}) are not supported by the local executor"
            )));
        }
        if let Some(context) = text.strip_prefix('$').filter(|rest| rest.starts_with('$')) {
            let path = Path::parse(context).map_err(error)?;
            let root_known = match path.segments.first() {
                None => true,
                Some(Segment::Key(root)) => CONTEXT_ROOTS.contains(&root.as_str()),
                Some(Segment::Index(_)) => false,
            };
            if !root_known {
                return Err(error(format!(
                    "`{text}`: the context object has only {}",
                    CONTEXT_ROOTS.join(", ")
                )));
            }
            return Ok(Self::Path(Source::Context, path));
        }
        Path::parse(text)
            .map(|path| Self::Path(Source::Input, path))
            .map_err(error)
    }

    /// The template filled from `input` and `context`; the error names the path that found
    /// nothing.
    pub(crate) fn render(&self, input: &Value, context: &Value) -> Result<Value, String> {
        match self {
            Self::Literal(value) => Ok(value.clone()),
            Self::Object(fields) => fields
                .iter()
                .map(|(key, template)| Ok((key.clone(), template.render(input, context)?)))
                .collect::<Result<Map<_, _>, String>>()
                .map(Value::Object),
            Self::Array(items) => items
                .iter()
                .map(|item| item.render(input, context))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Self::Path(Source::Input, path) => path.get(input).cloned().ok_or_else(|| {
                format!(
                    "the JSONPath `{}` could not be found in the input",
                    path.text
                )
            }),
            Self::Path(Source::Context, path) => path.get(context).cloned().ok_or_else(|| {
                format!(
                    "the JSONPath `${}` could not be found in the context object",
                    path.text
                )
            }),
        }
    }

    /// The field of an object template, as the lambda:invoke Parameters need to read them.
    pub(crate) fn field(&self, name: &str) -> Option<&Template> {
        match self {
            Self::Object(fields) => fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, template)| template),
            _ => None,
        }
    }

    /// The names of an object template's fields, `.$` suffix removed.
    pub(crate) fn field_names(&self) -> Vec<&str> {
        match self {
            Self::Object(fields) => fields.iter().map(|(key, _)| key.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

fn join(place: &str, key: &str) -> String {
    if place.is_empty() {
        key.to_owned()
    } else {
        format!("{place}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_members_elements_and_quoted_keys() {
        // Given
        let input = json!({"a": {"b": [10, {"c": "x"}]}, "odd key": 1});

        // Then
        assert_eq!(Path::parse("$").unwrap().get(&input), Some(&input));
        assert_eq!(
            Path::parse("$.a.b[0]").unwrap().get(&input),
            Some(&json!(10))
        );
        assert_eq!(
            Path::parse("$.a.b[1].c").unwrap().get(&input),
            Some(&json!("x"))
        );
        assert_eq!(
            Path::parse("$['odd key']").unwrap().get(&input),
            Some(&json!(1))
        );
        assert_eq!(Path::parse("$.a.missing").unwrap().get(&input), None);
        assert_eq!(Path::parse("$.a.b[7]").unwrap().get(&input), None);
    }

    #[test]
    fn paths_refuse_what_jsonpath_can_say_beyond_one_node() {
        for text in [
            "$..a",
            "$.a.*",
            "$.a[*]",
            "$.a[?(@.b > 1)]",
            "$.a[0:2]",
            "$.a[0,1]",
            "$.a[-1]",
            "a.b",
            "$.a.length()",
            "$.",
        ] {
            assert!(Path::parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn setting_a_path_creates_the_missing_objects() {
        // Given
        let input = json!({"keep": 1, "a": {"other": 2}});

        // When
        let output = Path::parse("$.a.b.c")
            .unwrap()
            .set(input, json!("v"))
            .unwrap();

        // Then
        assert_eq!(
            output,
            json!({"keep": 1, "a": {"other": 2, "b": {"c": "v"}}})
        );
        assert_eq!(Path::root().set(json!(1), json!(2)).unwrap(), json!(2));
    }

    #[test]
    fn setting_a_path_under_a_non_object_fails() {
        assert!(Path::parse("$.a.b")
            .unwrap()
            .set(json!({"a": 3}), json!(1))
            .is_err());
        assert!(Path::parse("$.a")
            .unwrap()
            .set(json!("text"), json!(1))
            .is_err());
        assert!(Path::parse("$.a[3]")
            .unwrap()
            .set(json!({"a": [1]}), json!(1))
            .is_err());
        assert_eq!(
            Path::parse("$.a[0]")
                .unwrap()
                .set(json!({"a": [1]}), json!(9))
                .unwrap(),
            json!({"a": [9]})
        );
    }

    #[test]
    fn templates_fill_paths_context_paths_nested_objects_and_arrays() {
        // Given
        let template = Template::parse(&json!({
            "literal": "$.not.a.path",
            "rne.$": "$.rne",
            "nested": {"token.$": "$$.Task.Token", "list": [{"n.$": "$.n"}, 3]},
            "whole.$": "$"
        }))
        .unwrap();
        let input = json!({"rne": "0750655E", "n": 4});
        let context = json!({"Task": {"Token": "t"}});

        // When
        let rendered = template.render(&input, &context).unwrap();

        // Then
        assert_eq!(
            rendered,
            json!({
                "literal": "$.not.a.path",
                "rne": "0750655E",
                "nested": {"token": "t", "list": [{"n": 4}, 3]},
                "whole": input
            })
        );
    }

    #[test]
    fn templates_name_the_path_that_found_nothing() {
        let template = Template::parse(&json!({"a.$": "$.missing"})).unwrap();
        let error = template.render(&json!({}), &json!({})).unwrap_err();
        assert!(error.contains("$.missing"), "{error}");
    }

    #[test]
    fn templates_refuse_intrinsic_functions_and_unknown_context_roots() {
        let error =
            Template::parse(&json!({"a": {"b.$": "States.Format('x{}', $.y)"}})).unwrap_err();
        assert_eq!(error.place, "a.b.$");
        assert!(error.message.contains("States.Format"), "{}", error.message);

        let error = Template::parse(&json!({"i.$": "$$.Map.Item.Index"})).unwrap_err();
        assert!(
            error.message.contains("context object"),
            "{}",
            error.message
        );

        assert!(Template::parse(&json!({"n.$": 3})).is_err());
    }
}
