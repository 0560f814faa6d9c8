//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): an HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}` with a shared secret, sent as `v1,<base64>`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::ParseError;

/// How the specification writes a secret: this prefix, then the key in standard base64.
const PREFIX: &str = "whsec_";

/// The key lengths the specification recommends: at least 192 bits, at most 512.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// One signing key. Not printable, not `Clone`: it is built once from the configuration.
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A secret written `whsec_<base64>`. Errors never quote the input.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let encoded = input.trim().strip_prefix(PREFIX).ok_or_else(|| {
            ParseError::new("must be written whsec_<base64 key>, as Standard Webhooks prescribes")
        })?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| ParseError::new("must have a standard base64 key after whsec_"))?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(ParseError::new(format!(
                "must hold a key of {} to {} bytes (e.g. whsec_$(openssl rand -base64 32))",
                KEY_BYTES.start(),
                KEY_BYTES.end()
            )));
        }
        Ok(Self(key))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The configured secrets: one, or two during a rotation, when every webhook carries one
/// signature per secret (space-separated, as the specification allows) so that the receiver
/// can switch secrets at its own pace.
#[derive(Debug)]
pub struct Signer(Vec<WebhookSecret>);

impl Signer {
    /// One or two secrets, comma-separated.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let secrets = input
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(WebhookSecret::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match secrets.len() {
            1 | 2 => Ok(Self(secrets)),
            0 => Err(ParseError::new("must hold a secret")),
            _ => Err(ParseError::new(
                "holds at most two secrets (the current one and the next one)",
            )),
        }
    }

    /// The `webhook-signature` header value.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|secret| secret.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_specification_example() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            secret.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn the_signature_covers_id_timestamp_and_body() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let reference = secret.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes());
        assert_ne!(
            secret.sign("msg_other", SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            reference
        );
        assert_ne!(
            secret.sign(SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY.as_bytes()),
            reference
        );
        assert_ne!(secret.sign(SPEC_ID, SPEC_TIMESTAMP, b"{}"), reference);
    }

    #[test]
    fn secrets_must_be_prefixed_base64_of_a_sound_length() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        let short = format!("whsec_{}", STANDARD.encode([7u8; 16]));
        assert!(WebhookSecret::parse(&short).is_err());
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert!(WebhookSecret::parse(&long).is_err());
        let good = format!(" whsec_{} ", STANDARD.encode([7u8; 32]));
        assert!(WebhookSecret::parse(&good).is_ok());
    }

    #[test]
    fn errors_and_debug_output_never_show_the_secret() {
        let error = WebhookSecret::parse("whsec_c2VjcmV0").err().unwrap();
        assert!(!error.to_string().contains("c2VjcmV0"));
        let error = Signer::parse("sk_live_abcdef").err().unwrap();
        assert!(!error.to_string().contains("abcdef"));
        let signer = Signer::parse(SPEC_SECRET).unwrap();
        let printed = format!("{signer:?}");
        assert!(!printed.contains("MfKQ9r8"), "{printed}");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let other = format!("whsec_{}", STANDARD.encode([9u8; 32]));
        let signer = Signer::parse(&format!("{SPEC_SECRET}, {other}")).unwrap();
        let header = signer.signature(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes());
        let signatures: Vec<&str> = header.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert_eq!(signatures[0], SPEC_SIGNATURE);
        assert!(signatures[1].starts_with("v1,"));
        assert_ne!(signatures[1], SPEC_SIGNATURE);

        let three = [SPEC_SECRET, &other, SPEC_SECRET].join(",");
        assert!(Signer::parse(&three).is_err());
        assert!(Signer::parse(" , ").is_err());
    }
}
