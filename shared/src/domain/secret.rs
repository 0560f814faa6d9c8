//! Keys and tokens: 256 bits from the operating system's CSPRNG, shown once, stored only as
//! SHA-256 digests, compared in constant time. A `Secret` cannot be printed.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::ParseError;

/// A key or token in clear, as handed to its holder once. Not `Debug`-printable, not `Clone`.
pub struct Secret(String);

impl Secret {
    /// A new secret: a readable prefix naming its kind, then 32 random bytes in base64url.
    /// The prefix lets secret scanners and humans tell keys apart; it carries no entropy.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's CSPRNG is available");
        Self(format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A secret as presented by a caller, e.g. from an `Authorization` header.
    pub fn from_presented(value: &str) -> Self {
        Self(value.to_owned())
    }

    pub fn digest(&self) -> Digest {
        Digest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The value in clear, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 digest of a secret: what is stored and configured, never the secret itself.
#[derive(Clone, Copy, Eq)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn parse_hex(input: &str) -> Result<Self, ParseError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(input.trim(), &mut bytes)
            .map_err(|_| ParseError::new("must be 64 hexadecimal digits (a SHA-256 digest)"))?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Constant-time, so that comparing a presented key leaks nothing through timing.
impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not secret, but its prefix is enough to tell two apart in a debugger.
        write!(f, "Digest({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_carry_256_bits() {
        let a = Secret::generate("bcdi_est");
        let b = Secret::generate("bcdi_est");
        assert_ne!(a.expose(), b.expose());
        let encoded = a.expose().strip_prefix("bcdi_est_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap().len(), 32);
    }

    #[test]
    fn digest_matches_sha256_of_the_secret_text() {
        let secret = Secret::from_presented("abc");
        assert_eq!(
            secret.digest().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Digest::parse_hex(&secret.digest().to_hex()).unwrap(),
            secret.digest()
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::generate("bcdi_est");
        assert!(!format!("{secret:?}").contains(&secret.expose()[9..]));
    }

    #[test]
    fn malformed_digests_are_refused() {
        for bad in ["", "zz", &"a".repeat(63), &"a".repeat(65)] {
            assert!(Digest::parse_hex(bad).is_err());
        }
    }
}
