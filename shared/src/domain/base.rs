//! A school's bases: one ZIP archive per base, uploaded, then checked and mounted.

use super::ParseError;

/// Where a base stands, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BaseState {
    /// Received, not yet mounted.
    Uploaded,
    /// Mounted and valid.
    Installed,
    /// Could not be used.
    Error,
}

impl BaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseState::Uploaded => "UPLOADED",
            BaseState::Installed => "INSTALLED",
            BaseState::Error => "ERROR",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "UPLOADED" => Ok(BaseState::Uploaded),
            "INSTALLED" => Ok(BaseState::Installed),
            "ERROR" => Ok(BaseState::Error),
            _ => Err(ParseError::new("must be UPLOADED, INSTALLED or ERROR")),
        }
    }
}

/// One base of the establishment, as shown in `GET /v1/establishments/{rne}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Base {
    /// The uploaded file it came from.
    pub id: String,
    /// The name the school gave it, e.g. `Principale`.
    pub name: String,
    pub state: BaseState,
    pub size: u64,
    /// Whether this is the base exported to the school's e-sidoc portal.
    pub esidoc_export: bool,
    /// Why it could not be used, in English, when `state` is `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A base's name as the school gives it: 1 to 64 characters, no control characters.
pub fn parse_base_name(input: &str) -> Result<String, ParseError> {
    let name = input.trim();
    let chars = name.chars().count();
    if !(1..=64).contains(&chars) {
        return Err(ParseError::new("must be 1 to 64 characters"));
    }
    if name.chars().any(char::is_control) || name.contains(['/', '\\']) {
        return Err(ParseError::new(
            "must not contain control characters or slashes",
        ));
    }
    Ok(name.to_owned())
}
