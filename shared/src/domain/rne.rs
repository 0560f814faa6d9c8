//! The establishment identifier, RNE or UAI: seven digits and a check letter.

use std::fmt;

use super::ParseError;

/// The 23 letters of the check alphabet: I, O and Q are left out.
const CHECK_LETTERS: &[u8; 23] = b"ABCDEFGHJKLMNPRSTUVWXYZ";

/// A valid RNE/UAI code, always upper case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rne(String);

impl Rne {
    /// Parses a code, accepting lower case; the prefix is not checked (schools abroad use
    /// prefixes of their own), the check letter is.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let code = input.to_ascii_uppercase();
        let bytes = code.as_bytes();
        if bytes.len() != 8 {
            return Err(ParseError::new(
                "must be 8 characters: 7 digits and a check letter",
            ));
        }
        let (digits, letter) = bytes.split_at(7);
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::new("the first 7 characters must be digits"));
        }
        let number: u32 = code[..7].parse().expect("seven ASCII digits fit in a u32");
        let expected = CHECK_LETTERS[(number % 23) as usize];
        if letter[0] != expected {
            return Err(ParseError::new(
                "the check letter does not match the digits",
            ));
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Rne {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Rne {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rne({})", self.0)
    }
}

impl serde::Serialize for Rne {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real codes from public directories (domain.md).
    const VALID: &[&str] = &[
        "0750655E", "0750654D", "0160010Z", "0752526N", "0752538B", "6200001G", "6200002H",
        "7200009X", "7200021K", "9710002A", "9710003B", "9740787M",
    ];

    #[test]
    fn real_codes_pass_the_check() {
        for code in VALID {
            assert_eq!(Rne::parse(code).unwrap().as_str(), *code);
        }
    }

    #[test]
    fn lower_case_is_normalised() {
        assert_eq!(Rne::parse("0750655e").unwrap().as_str(), "0750655E");
    }

    #[test]
    fn a_typo_seen_in_the_wild_fails_the_check() {
        assert!(Rne::parse("0120010Z").is_err());
    }

    #[test]
    fn every_other_check_letter_is_refused() {
        for letter in b'A'..=b'Z' {
            let code = format!("0750655{}", letter as char);
            assert_eq!(Rne::parse(&code).is_ok(), letter == b'E', "{code}");
        }
    }

    #[test]
    fn malformed_codes_are_refused_without_panicking() {
        for input in [
            "",
            "0750655",
            "0750655EE",
            "A750655E",
            "075065éE",
            "07506 5E",
            "٠٧٥٠٦٥٥E",
        ] {
            assert!(Rne::parse(input).is_err(), "{input:?}");
        }
    }
}
