//! Who is calling: the contract's parties, recognised by the digest of their bearer credential.

use http::{header, HeaderMap};

use super::{ApiError, App};
use crate::domain::{Instant, Rne, Secret};

/// Longer credentials are refused before hashing: ours are under 100 characters.
const MAX_CREDENTIAL_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Cyber,
    Operator,
    Establishment(Rne),
    /// A school's upload page, through an upload session of one establishment: may use the
    /// upload API only.
    Upload {
        rne: Rne,
        expires_at: Instant,
    },
}

impl App {
    /// The caller, or 401 for a missing, malformed or unknown credential.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let presented = bearer(headers).ok_or_else(ApiError::unauthorized)?;
        let digest = Secret::from_presented(presented).digest();

        // Every configured digest is compared, so timing does not tell which one matched.
        let is_cyber = self
            .config
            .cyber_keys
            .iter()
            .fold(false, |hit, key| hit | (*key == digest));
        let is_operator = self
            .config
            .operator_keys
            .iter()
            .fold(false, |hit, key| hit | (*key == digest));
        if is_cyber {
            return Ok(Caller::Cyber);
        }
        if is_operator {
            return Ok(Caller::Operator);
        }
        // The prefix of upload tokens is public: branching on it reveals nothing.
        if presented.starts_with(super::uploads::UPLOAD_TOKEN_PREFIX) {
            return self
                .upload_session_caller(&Secret::from_presented(presented))
                .await?
                .ok_or_else(ApiError::unauthorized);
        }
        match self.store.find_by_key(&digest).await? {
            Some(rne) => Ok(Caller::Establishment(rne)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

impl Caller {
    /// Cyber may read any establishment, an establishment only its own: another's is answered
    /// 404, as if it did not exist. Operators have their own endpoints.
    pub fn may_read(&self, rne: &Rne) -> Result<(), ApiError> {
        match self {
            Caller::Cyber => Ok(()),
            Caller::Establishment(own) if own == rne => Ok(()),
            Caller::Establishment(_) => Err(ApiError::not_found("establishment")),
            Caller::Operator | Caller::Upload { .. } => Err(ApiError::forbidden()),
        }
    }

    pub fn must_be_cyber(&self) -> Result<(), ApiError> {
        match self {
            Caller::Cyber => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }
}

/// The credential of `Authorization: Bearer <credential>`, if well formed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !credential.is_empty()
        && credential.len() <= MAX_CREDENTIAL_LEN
        && credential.bytes().all(|b| b.is_ascii_graphic());
    well_formed.then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_well_formed_bearer_credentials_are_read() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer abc")), Some("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "Bearer a b"] {
            assert_eq!(bearer(&headers(bad)), None, "{bad}");
        }
        assert_eq!(
            bearer(&headers(&format!("Bearer {}", "a".repeat(513)))),
            None
        );
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
