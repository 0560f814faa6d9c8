//! Reading a JSON request body field by field, so that one 400 names every wrong field and an
//! unknown field is refused rather than ignored.
//!
//! Every endpoint reads its body through [`JsonObject::parse`], so the rules here hold for the
//! whole API: a body that is empty or only whitespace stands for `{}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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
            serde_json::from_slice(body).map_err(|error| {
                ApiError::invalid(format!("The body is not valid JSON: {error}."))
            })?
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
    fn an_empty_or_whitespace_body_stands_for_an_empty_object() {
        for body in [&b""[..], b" ", b"\r\n\t "] {
            assert!(JsonObject::parse(body, &[]).unwrap().finish().is_ok());
        }
        let mut object = JsonObject::parse(b" ", &["rne"]).unwrap();
        assert!(object.required("rne", |v| Ok(v.to_owned())).is_none());
        assert_eq!(object.finish().unwrap_err().fields["rne"], "is required");
    }
}
