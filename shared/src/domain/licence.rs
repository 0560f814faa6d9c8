//! The BCDI licence: its `griffe`, its `code` and the product version.
//!
//! `griffe` and `code` are the establishment's licence secrets: neither type prints its value
//! through `Debug`, so neither can reach a log by accident.

use std::fmt;

use super::ParseError;

/// The licence's signature as shown in BCDI, kept exactly as given but for outer whitespace.
#[derive(Clone, PartialEq, Eq)]
pub struct Griffe(String);

impl Griffe {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(ParseError::new("must not be empty"));
        }
        if chars > Self::MAX_CHARS {
            return Err(ParseError::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ParseError::new("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Griffe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Griffe(<redacted>)")
    }
}

/// The licence's installation code: 4 to 64 characters of `[A-Za-z0-9-]`, kept verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenceCode(String);

impl LicenceCode {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if !(4..=64).contains(&input.len()) {
            return Err(ParseError::new("must be 4 to 64 characters"));
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ParseError::new("may contain only letters, digits and '-'"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LicenceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LicenceCode(<redacted>)")
    }
}

/// The BCDI product: `CL` (Collège-Lycée) or `SP` (Spécial, for non-school libraries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Version {
    #[serde(rename = "CL")]
    CollegeLycee,
    #[serde(rename = "SP")]
    Special,
}

impl Version {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "CL" => Ok(Self::CollegeLycee),
            "SP" => Ok(Self::Special),
            _ => Err(ParseError::new("must be \"CL\" or \"SP\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CollegeLycee => "CL",
            Self::Special => "SP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn griffe_keeps_inner_text_and_trims_outer_whitespace() {
        let griffe = Griffe::parse("  Collège Jean Moulin – CDI  ").unwrap();
        assert_eq!(griffe.expose(), "Collège Jean Moulin – CDI");
    }

    #[test]
    fn griffe_length_is_counted_in_characters() {
        assert!(Griffe::parse(&"é".repeat(200)).is_ok());
        assert!(Griffe::parse(&"é".repeat(201)).is_err());
        assert!(Griffe::parse("   ").is_err());
        assert!(Griffe::parse("a\u{0}b").is_err());
    }

    #[test]
    fn licence_code_is_kept_verbatim_within_its_alphabet() {
        assert_eq!(LicenceCode::parse("abCD-12").unwrap().expose(), "abCD-12");
        for bad in ["abc", "ABCD EFGH", "ABCDÉFGH", &"A".repeat(65)] {
            assert!(LicenceCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let text = format!(
            "{:?} {:?}",
            Griffe::parse("SECRET-GRIFFE").unwrap(),
            LicenceCode::parse("SECRETCODE").unwrap()
        );
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn version_is_cl_or_sp_only() {
        assert_eq!(Version::parse("CL").unwrap(), Version::CollegeLycee);
        assert_eq!(Version::parse("SP").unwrap(), Version::Special);
        assert!(Version::parse("cl").is_err());
        assert!(Version::parse("").is_err());
    }
}
