//! Choice rules: every comparison operator of the States Language, with its `…Path` form, and
//! And, Or, Not. A rule is checked when loaded, so that evaluating it can only fail on the
//! data: a Variable that is not there.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::path::Path;

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: Path, test: Test },
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Compare {
        kind: Kind,
        relation: Relation,
        operand: Operand,
    },
    BooleanEquals(Operand),
    StringMatches(Vec<PatternToken>),
    Is(TypeTest, bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Value(Value),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatternToken {
    Star,
    Char(char),
}

/// What a rule failed on when loaded: the field inside the rule, and why.
#[derive(Debug)]
pub(crate) struct RuleError {
    pub(crate) field: String,
    pub(crate) message: String,
}

const LOGICAL: [&str; 3] = ["And", "Or", "Not"];

impl Rule {
    /// A top-level rule of `Choices`: it must name its Next state.
    pub(crate) fn parse_top(value: &Value, place: &str) -> Result<(Rule, String), RuleError> {
        let object = as_rule_object(value, place)?;
        let next = match object.get("Next") {
            Some(Value::String(next)) => next.clone(),
            Some(_) => return Err(rule_error(place, "Next", "must be a state name")),
            None => {
                return Err(rule_error(
                    place,
                    "Next",
                    "a top-level choice rule needs Next",
                ))
            }
        };
        Ok((Self::parse_object(object, place)?, next))
    }

    fn parse_nested(value: &Value, place: &str) -> Result<Rule, RuleError> {
        let object = as_rule_object(value, place)?;
        if object.contains_key("Next") {
            return Err(rule_error(
                place,
                "Next",
                "only top-level choice rules have Next",
            ));
        }
        Self::parse_object(object, place)
    }

    fn parse_object(object: &Map<String, Value>, place: &str) -> Result<Rule, RuleError> {
        let operators: Vec<&String> = object
            .keys()
            .filter(|key| !matches!(key.as_str(), "Variable" | "Next" | "Comment"))
            .collect();
        let [operator] = operators.as_slice() else {
            return Err(rule_error(
                place,
                "",
                &format!(
                    "a choice rule needs exactly one operator, found {}",
                    if operators.is_empty() {
                        "none".to_owned()
                    } else {
                        operators
                            .iter()
                            .map(|o| o.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        };
        let operator = operator.as_str();
        let value = &object[operator];

        if LOGICAL.contains(&operator) {
            if object.contains_key("Variable") {
                return Err(rule_error(
                    place,
                    "Variable",
                    "And, Or and Not take no Variable",
                ));
            }
            let here = format!("{}{operator}", prefix(place));
            return match operator {
                "Not" => Ok(Rule::Not(Box::new(Self::parse_nested(value, &here)?))),
                _ => {
                    let items = value
                        .as_array()
                        .filter(|items| !items.is_empty())
                        .ok_or_else(|| {
                            rule_error(place, operator, "must be a non-empty array of rules")
                        })?;
                    let rules = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| Self::parse_nested(item, &format!("{here}[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(if operator == "And" {
                        Rule::And(rules)
                    } else {
                        Rule::Or(rules)
                    })
                }
            };
        }

        if operator == "Condition" {
            return Err(rule_error(
                place,
                operator,
                "Condition belongs to JSONata, which the local executor does not support",
            ));
        }
        let test =
            parse_test(operator, value).map_err(|message| rule_error(place, operator, &message))?;
        let variable = match object.get("Variable") {
            Some(Value::String(text)) => {
                Path::parse(text).map_err(|message| rule_error(place, "Variable", &message))?
            }
            Some(_) => return Err(rule_error(place, "Variable", "must be a path string")),
            None => {
                return Err(rule_error(
                    place,
                    "Variable",
                    "a comparison needs a Variable",
                ))
            }
        };
        Ok(Rule::Test { variable, test })
    }

    /// Whether the rule holds for `input`; an error when a path it reads is not there.
    pub(crate) fn evaluate(&self, input: &Value) -> Result<bool, String> {
        match self {
            Rule::And(rules) => {
                for rule in rules {
                    if !rule.evaluate(input)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for rule in rules {
                    if rule.evaluate(input)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(rule) => Ok(!rule.evaluate(input)?),
            Rule::Test { variable, test } => {
                let value = variable.get(input);
                if let Test::Is(TypeTest::Present, expected) = test {
                    return Ok(value.is_some() == *expected);
                }
                let value = value.ok_or_else(|| {
                    format!(
                        "the choice rule's Variable `{}` could not be found in the input",
                        variable.as_str()
                    )
                })?;
                test.holds(value, input)
            }
        }
    }
}

fn parse_test(operator: &str, value: &Value) -> Result<Test, String> {
    let (base, by_path) = match operator.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let operand = |check: fn(&Value) -> bool, what: &str| -> Result<Operand, String> {
        if by_path {
            let text = value.as_str().ok_or("must be a path string")?;
            return Path::parse(text).map(Operand::Path);
        }
        if check(value) {
            Ok(Operand::Value(value.clone()))
        } else {
            Err(format!("must be {what}"))
        }
    };

    if let Some(test) = type_test(base) {
        if by_path {
            return Err("type tests have no Path form".to_owned());
        }
        let expected = value.as_bool().ok_or("must be true or false")?;
        return Ok(Test::Is(test, expected));
    }
    match base {
        "BooleanEquals" => Ok(Test::BooleanEquals(operand(
            Value::is_boolean,
            "a boolean",
        )?)),
        "StringMatches" if !by_path => {
            let pattern = value.as_str().ok_or("must be a string pattern")?;
            Ok(Test::StringMatches(parse_pattern(pattern)))
        }
        _ => {
            let (kind, rest) = [
                ("String", Kind::String),
                ("Numeric", Kind::Numeric),
                ("Timestamp", Kind::Timestamp),
            ]
            .into_iter()
            .find_map(|(prefix, kind)| base.strip_prefix(prefix).map(|rest| (kind, rest)))
            .ok_or_else(|| format!("`{operator}` is not a choice operator"))?;
            let relation = match rest {
                "Equals" => Relation::Equals,
                "LessThan" => Relation::LessThan,
                "GreaterThan" => Relation::GreaterThan,
                "LessThanEquals" => Relation::LessThanEquals,
                "GreaterThanEquals" => Relation::GreaterThanEquals,
                _ => return Err(format!("`{operator}` is not a choice operator")),
            };
            let operand = match kind {
                Kind::String => operand(Value::is_string, "a string")?,
                Kind::Numeric => operand(Value::is_number, "a number")?,
                Kind::Timestamp => operand(
                    |v| v.as_str().and_then(parse_timestamp).is_some(),
                    "an RFC 3339 timestamp",
                )?,
            };
            Ok(Test::Compare {
                kind,
                relation,
                operand,
            })
        }
    }
}

fn type_test(base: &str) -> Option<TypeTest> {
    Some(match base {
        "IsNull" => TypeTest::Null,
        "IsPresent" => TypeTest::Present,
        "IsNumeric" => TypeTest::Numeric,
        "IsString" => TypeTest::String,
        "IsBoolean" => TypeTest::Boolean,
        "IsTimestamp" => TypeTest::Timestamp,
        _ => return None,
    })
}

impl Test {
    /// Whether `value` passes; a value of another type than the operator compares is simply
    /// not a match, while an operand path that finds nothing is an error.
    fn holds(&self, value: &Value, input: &Value) -> Result<bool, String> {
        let operand = |operand: &Operand| -> Result<Value, String> {
            match operand {
                Operand::Value(value) => Ok(value.clone()),
                Operand::Path(path) => path.get(input).cloned().ok_or_else(|| {
                    format!(
                        "the choice rule's path `{}` could not be found in the input",
                        path.as_str()
                    )
                }),
            }
        };
        Ok(match self {
            Test::Is(test, expected) => {
                let is = match test {
                    TypeTest::Null => value.is_null(),
                    TypeTest::Present => true,
                    TypeTest::Numeric => value.is_number(),
                    TypeTest::String => value.is_string(),
                    TypeTest::Boolean => value.is_boolean(),
                    TypeTest::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
                };
                is == *expected
            }
            Test::BooleanEquals(expected) => {
                matches!((value.as_bool(), operand(expected)?.as_bool()), (Some(a), Some(b)) if a == b)
            }
            Test::StringMatches(pattern) => value.as_str().is_some_and(|s| matches(pattern, s)),
            Test::Compare {
                kind,
                relation,
                operand: expected,
            } => {
                let expected = operand(expected)?;
                let ordering = match kind {
                    Kind::String => match (value.as_str(), expected.as_str()) {
                        (Some(a), Some(b)) => Some(a.cmp(b)),
                        _ => None,
                    },
                    Kind::Numeric => match (value.as_f64(), expected.as_f64()) {
                        (Some(a), Some(b)) => a.partial_cmp(&b),
                        _ => None,
                    },
                    Kind::Timestamp => {
                        let parse = |v: &Value| v.as_str().and_then(parse_timestamp);
                        match (parse(value), parse(&expected)) {
                            (Some(a), Some(b)) => Some(a.cmp(&b)),
                            _ => None,
                        }
                    }
                };
                ordering.is_some_and(|ordering| relation.accepts(ordering))
            }
        })
    }
}

impl Relation {
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Relation::Equals => ordering == Ordering::Equal,
            Relation::LessThan => ordering == Ordering::Less,
            Relation::GreaterThan => ordering == Ordering::Greater,
            Relation::LessThanEquals => ordering != Ordering::Greater,
            Relation::GreaterThanEquals => ordering != Ordering::Less,
        }
    }
}

/// An RFC 3339 timestamp as the States Language writes them (`2016-03-14T01:59:00Z`).
pub(crate) fn parse_timestamp(text: &str) -> Option<jiff::Timestamp> {
    text.contains('T')
        .then(|| text.parse::<jiff::Timestamp>().ok())
        .flatten()
}

/// `*` matches any run of characters; `\*` is a star and `\\` a backslash.
fn parse_pattern(pattern: &str) -> Vec<PatternToken> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => tokens.push(PatternToken::Char(escaped)),
                None => tokens.push(PatternToken::Char('\\')),
            },
            '*' => tokens.push(PatternToken::Star),
            c => tokens.push(PatternToken::Char(c)),
        }
    }
    tokens
}

fn matches(pattern: &[PatternToken], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // Greedy match with backtracking to the last star: linear in practice, quadratic at worst.
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(PatternToken::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(PatternToken::Star) => {
                last_star = Some((p, t));
                p += 1;
            }
            _ => match last_star {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    last_star = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..]
        .iter()
        .all(|token| *token == PatternToken::Star)
}

fn as_rule_object<'a>(value: &'a Value, place: &str) -> Result<&'a Map<String, Value>, RuleError> {
    value
        .as_object()
        .ok_or_else(|| rule_error(place, "", "a choice rule must be an object"))
}

fn prefix(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!("{place}.")
    }
}

fn rule_error(place: &str, field: &str, message: &str) -> RuleError {
    let field = match (place.is_empty(), field.is_empty()) {
        (_, true) => place.to_owned(),
        (true, false) => field.to_owned(),
        (false, false) => format!("{place}.{field}"),
    };
    RuleError {
        field,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(rule: Value, input: Value) -> bool {
        let (rule, _) = Rule::parse_top(&rule, "Choices[0]").expect("rule loads");
        rule.evaluate(&input).expect("rule evaluates")
    }

    fn with_next(mut rule: Value) -> Value {
        rule["Next"] = json!("X");
        rule
    }

    fn check(variable_value: Value, operator: &str, operand: Value) -> bool {
        holds(
            with_next(json!({"Variable": "$.v", operator: operand})),
            json!({"v": variable_value, "other": operand}),
        )
    }

    fn check_path(variable_value: Value, operator: &str, operand: Value) -> bool {
        holds(
            with_next(json!({"Variable": "$.v", format!("{operator}Path"): "$.other"})),
            json!({"v": variable_value, "other": operand}),
        )
    }

    #[test]
    fn string_comparisons_and_their_path_forms() {
        for check in [check, check_path] {
            assert!(check(json!("b"), "StringEquals", json!("b")));
            assert!(!check(json!("b"), "StringEquals", json!("c")));
            assert!(check(json!("a"), "StringLessThan", json!("b")));
            assert!(!check(json!("b"), "StringLessThan", json!("b")));
            assert!(check(json!("c"), "StringGreaterThan", json!("b")));
            assert!(check(json!("b"), "StringLessThanEquals", json!("b")));
            assert!(!check(json!("c"), "StringLessThanEquals", json!("b")));
            assert!(check(json!("b"), "StringGreaterThanEquals", json!("b")));
            assert!(!check(json!("a"), "StringGreaterThanEquals", json!("b")));
        }
    }

    #[test]
    fn numeric_comparisons_and_their_path_forms() {
        for check in [check, check_path] {
            assert!(check(json!(2), "NumericEquals", json!(2.0)));
            assert!(!check(json!(2), "NumericEquals", json!(3)));
            assert!(check(json!(1.5), "NumericLessThan", json!(2)));
            assert!(check(json!(3), "NumericGreaterThan", json!(2)));
            assert!(check(json!(2), "NumericLessThanEquals", json!(2)));
            assert!(check(json!(2), "NumericGreaterThanEquals", json!(2)));
            assert!(!check(json!(1), "NumericGreaterThanEquals", json!(2)));
        }
    }

    #[test]
    fn boolean_and_timestamp_comparisons_and_their_path_forms() {
        let early = json!("2025-12-03T10:00:00Z");
        let late = json!("2025-12-03T12:00:00+01:00");
        for check in [check, check_path] {
            assert!(check(json!(true), "BooleanEquals", json!(true)));
            assert!(!check(json!(false), "BooleanEquals", json!(true)));
            assert!(check(early.clone(), "TimestampLessThan", late.clone()));
            assert!(check(late.clone(), "TimestampGreaterThan", early.clone()));
            assert!(check(
                json!("2025-12-03T11:00:00Z"),
                "TimestampEquals",
                late.clone()
            ));
            assert!(check(
                early.clone(),
                "TimestampLessThanEquals",
                early.clone()
            ));
            assert!(check(
                late.clone(),
                "TimestampGreaterThanEquals",
                early.clone()
            ));
            assert!(!check(
                early.clone(),
                "TimestampGreaterThanEquals",
                late.clone()
            ));
        }
    }

    #[test]
    fn a_value_of_another_type_is_not_a_match() {
        assert!(!check(json!(1), "StringEquals", json!("1")));
        assert!(!check(json!("1"), "NumericEquals", json!(1)));
        assert!(!check(json!("yes"), "BooleanEquals", json!(true)));
        assert!(!check(
            json!("not a date"),
            "TimestampEquals",
            json!("2025-12-03T10:00:00Z")
        ));
        assert!(!check_path(json!("a"), "StringEquals", json!(3)));
    }

    #[test]
    fn string_matches_takes_stars_and_escapes() {
        assert!(check(
            json!("install-0750655E.log"),
            "StringMatches",
            json!("install-*.log")
        ));
        assert!(check(json!("anything"), "StringMatches", json!("*")));
        assert!(check(json!(""), "StringMatches", json!("*")));
        assert!(check(json!("a*b"), "StringMatches", json!("a\\*b")));
        assert!(!check(json!("axb"), "StringMatches", json!("a\\*b")));
        assert!(check(json!("a\\b"), "StringMatches", json!("a\\\\b")));
        assert!(check(json!("abcbd"), "StringMatches", json!("a*b*d")));
        assert!(!check(json!("abc"), "StringMatches", json!("a*d")));
        assert!(!check(json!(3), "StringMatches", json!("*")));
    }

    #[test]
    fn type_tests_and_presence() {
        let input = json!({"n": null, "i": 1, "s": "x", "b": false, "t": "2025-12-03T10:00:00Z"});
        let rule = |operator: &str, variable: &str, expected: bool| {
            holds(
                with_next(json!({"Variable": variable, operator: expected})),
                input.clone(),
            )
        };
        assert!(rule("IsNull", "$.n", true));
        assert!(rule("IsNull", "$.i", false));
        assert!(rule("IsNumeric", "$.i", true));
        assert!(rule("IsNumeric", "$.s", false));
        assert!(rule("IsString", "$.s", true));
        assert!(rule("IsBoolean", "$.b", true));
        assert!(rule("IsTimestamp", "$.t", true));
        assert!(rule("IsTimestamp", "$.s", false));
        assert!(rule("IsPresent", "$.n", true));
        assert!(rule("IsPresent", "$.missing", false));
        assert!(!rule("IsPresent", "$.missing", true));
    }

    #[test]
    fn and_or_not_combine_rules() {
        let input = json!({"status": 1, "name": "x"});
        let one = json!({"Variable": "$.status", "NumericEquals": 1});
        let other = json!({"Variable": "$.name", "StringEquals": "y"});
        assert!(!holds(
            with_next(json!({"And": [one, other]})),
            input.clone()
        ));
        assert!(holds(with_next(json!({"Or": [one, other]})), input.clone()));
        assert!(holds(with_next(json!({"Not": other})), input.clone()));
        assert!(holds(
            with_next(json!({"And": [one, {"Not": other}]})),
            input.clone()
        ));
    }

    #[test]
    fn a_missing_variable_is_an_error_except_for_is_present() {
        let (rule, _) = Rule::parse_top(
            &with_next(json!({"Variable": "$.missing", "IsNull": true})),
            "Choices[0]",
        )
        .unwrap();
        assert!(rule.evaluate(&json!({})).is_err());

        let (rule, _) = Rule::parse_top(
            &with_next(json!({"Variable": "$.v", "StringEqualsPath": "$.missing"})),
            "Choices[0]",
        )
        .unwrap();
        assert!(rule.evaluate(&json!({"v": "a"})).is_err());
    }

    #[test]
    fn rules_are_checked_when_loaded() {
        let refused = |rule: Value| Rule::parse_top(&rule, "Choices[0]").unwrap_err();

        let error = refused(json!({"Variable": "$.v", "StringEquals": 1, "Next": "X"}));
        assert_eq!(error.field, "Choices[0].StringEquals");
        assert!(
            refused(json!({"Variable": "$.v", "NumericEquals": "1", "Next": "X"}))
                .message
                .contains("number")
        );
        assert!(
            refused(json!({"Variable": "$.v", "TimestampEquals": "today", "Next": "X"}))
                .message
                .contains("timestamp")
        );
        assert!(
            refused(json!({"Variable": "$.v", "StringSounds": "x", "Next": "X"}))
                .message
                .contains("not a choice operator")
        );
        assert!(refused(json!({"Variable": "$.v", "Next": "X"}))
            .message
            .contains("exactly one operator"));
        assert!(refused(json!({"Variable": "$.v", "IsNull": true}))
            .message
            .contains("Next"));
        assert!(refused(json!({"Condition": "{% true %}", "Next": "X"}))
            .message
            .contains("JSONata"));
        let nested =
            refused(json!({"Not": {"Variable": "$.v", "IsNull": true, "Next": "X"}, "Next": "X"}));
        assert_eq!(nested.field, "Choices[0].Not.Next");
    }
}
