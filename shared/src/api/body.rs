//! Reading a JSON request body field by field, so that one 400 names every wrong field and an
//! unknown field is refused rather than ignored.
//!
//! Every endpoint reads its body through [`JsonObject::parse`], so the rules here hold for the
//! whole API: a body that is empty or only whitespace stands for `{}`, and a key given twice in
//! the same object, at any depth, is refused (serde_json would silently keep the last one).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{ApiError, ErrorCode};
use crate::domain::ParseError;

/// Bodies larger than this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct JsonObject {
    fields: Map<String, Value>,
    errors: BTreeMap<String, String>,
}

impl JsonObject {
    /// Parses `body` as a JSON object whose keys are all among `known`.
    pub fn parse(body: &[u8], known: &[&str]) -> Result<Self, ApiError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The request body must be at most {MAX_BODY_BYTES} bytes."),
            ));
        }
        let value = if is_empty_body(body) {
            Value::Object(Map::new())
        } else {
            parse_strict(body)?
        };
        let Value::Object(fields) = value else {
            return Err(ApiError::invalid("The body must be a JSON object."));
        };
        let errors = fields
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .map(|key| (key.clone(), "unknown field".to_owned()))
            .collect();
        Ok(Self { fields, errors })
    }

    /// A required string field, parsed; `None` (and an error recorded) if missing or wrong.
    pub fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        match self.fields.get(name) {
            None | Some(Value::Null) => self.fail(name, "is required"),
            Some(Value::String(text)) => match parse(text) {
                Ok(value) => Some(value),
                Err(error) => self.fail(name, &error.0),
            },
            Some(_) => self.fail(name, "must be a string"),
        }
    }

    /// An optional boolean field; absent or null gives `default`.
    pub fn optional_bool(&mut self, name: &str, default: bool) -> Option<bool> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Some(default),
            Some(Value::Bool(value)) => Some(*value),
            Some(_) => self.fail(name, "must be true or false"),
        }
    }

    fn fail<T>(&mut self, name: &str, problem: &str) -> Option<T> {
        self.errors.insert(name.to_owned(), problem.to_owned());
        None
    }

    /// The 400 naming every wrong field, if any field was wrong.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

/// The one rule for a body that says nothing: empty or only JSON whitespace, it means `{}`.
fn is_empty_body(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// `body` as JSON, refusing a key given twice in one object with a 400 that names it
/// (`parts[0].etag` for a nested one).
fn parse_strict(body: &[u8]) -> Result<Value, ApiError> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = Strict {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (_, Some(path)) => Err(ApiError::invalid_fields(
            [(path, "is given twice".to_owned())].into(),
        )),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(ApiError::invalid(format!(
            "The body is not valid JSON: {error}."
        ))),
    }
}

/// Builds a `Value` like serde_json does, but records the path of the first duplicate key and
/// stops there.
struct Strict<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl Strict<'_> {
    fn child(&self, path: String) -> Self {
        Strict {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(self.child(format!("{}[{}]", self.path, items.len())))?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if fields.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(path);
                return Err(de::Error::custom("a key is given twice"));
            }
            let value = map.next_value_seed(self.child(path))?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rne;

    #[test]
    fn every_wrong_field_is_named_at_once() {
        let body = br#"{"rne": "0750655A", "version": 3, "extra": 1}"#;
        let mut object = JsonObject::parse(body, &["rne", "version", "griffe"]).unwrap();
        assert!(object.required("rne", Rne::parse).is_none());
        assert!(object.required("version", |v| Ok(v.to_owned())).is_none());
        assert!(object.required("griffe", |v| Ok(v.to_owned())).is_none());
        let error = object.finish().unwrap_err();
        let names: Vec<_> = error.fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["extra", "griffe", "rne", "version"]);
    }

    #[test]
    fn non_objects_and_oversized_bodies_are_refused() {
        assert_eq!(
            JsonObject::parse(b"[]", &[]).err().unwrap().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            JsonObject::parse(b"{", &[]).err().unwrap().code,
            ErrorCode::InvalidRequest
        );
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            JsonObject::parse(&huge, &[]).err().unwrap().code,
            ErrorCode::PayloadTooLarge
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let top = JsonObject::parse(br#"{"rne": "0750656F", "rne": "0750657G"}"#, &["rne"]);
        let error = top.err().unwrap();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert_eq!(error.fields["rne"], "is given twice");
        let nested = br#"{"parts": [{"part": 1, "etag": "a"}, {"part": 2, "part": 3}]}"#;
        let error = JsonObject::parse(nested, &["parts"]).err().unwrap();
        assert_eq!(error.fields["parts[1].part"], "is given twice");
        // The same key in sibling objects is not a duplicate.
        let siblings = br#"{"parts": [{"part": 1}, {"part": 2}], "x": {"part": 3}}"#;
        assert!(JsonObject::parse(siblings, &["parts", "x"]).is_ok());
    }

    #[test]
    fn an_empty_or_whitespace_body_stands_for_an_empty_object() {
        for body in [&b""[..], b" ", b"\r\n\t "] {
            assert!(JsonObject::parse(body, &[]).unwrap().finish().is_ok());
        }
        let mut object = JsonObject::parse(b" ", &["rne"]).unwrap();
        assert!(object.required("rne", |v| Ok(v.to_owned())).is_none());
        assert_eq!(object.finish().unwrap_err().fields["rne"], "is required");
    }
}
