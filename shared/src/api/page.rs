//! The upload page `GET /v1/upload` and its two assets, embedded in the binary: the page is the
//! template `assets/upload/index.html`, the script and style sheet the bundle that
//! `scripts/build-assets` builds from `web/upload/` and commits. No CDN, no npm at build time.
//!
//! Assets are served under names that carry a digest of their bytes, so they can be cached for a
//! year; the page itself is never cached and names the current ones. The page's
//! Content-Security-Policy lets it talk only to this API and to storage, and be framed only by
//! the origins of `ALLOWED_FRAME_ORIGINS`.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest as _, Sha256};

use super::{ApiError, App, Response};
use crate::config::Config;

const TEMPLATE: &str = include_str!("../../assets/upload/index.html");
const SCRIPT: &[u8] = include_bytes!("../../assets/upload/upload.js");
const STYLE: &[u8] = include_bytes!("../../assets/upload/upload.css");

/// A year: the name changes whenever the bytes do.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    name: String,
    bytes: &'static [u8],
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, bytes: &'static [u8], content_type: &'static str) -> Self {
        let digest = hex::encode(Sha256::digest(bytes));
        Self {
            name: format!("{stem}.{}.{extension}", &digest[..16]),
            bytes,
            content_type,
        }
    }
}

struct Page {
    html: Bytes,
    assets: [Asset; 2],
}

/// Built once per process: hashing the bundle takes well under a millisecond.
static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let script = Asset::new("upload", "js", SCRIPT, "text/javascript; charset=utf-8");
    let style = Asset::new("upload", "css", STYLE, "text/css; charset=utf-8");
    let html = TEMPLATE
        .replace("{{script}}", &script.name)
        .replace("{{style}}", &style.name);
    Page {
        html: Bytes::from(html),
        assets: [script, style],
    }
});

impl App {
    /// `GET /v1/upload`: public; the token travels in the fragment, which no server sees.
    pub(super) fn upload_page(&self) -> Response {
        let mut response = Response::new(PAGE.html.clone());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        match HeaderValue::from_str(&content_security_policy(&self.config)) {
            Ok(policy) => {
                headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            }
            // Unreachable with origins filtered by `is_origin`; never serve the page without
            // its policy, which is what keeps it out of foreign frames.
            Err(_) => {
                return ApiError::unavailable(&"the Content-Security-Policy is not a header value")
                    .into_response();
            }
        }
        response
    }

    /// `GET /v1/upload/assets/{file}`: the script or the style sheet under its current name.
    pub(super) fn upload_asset(&self, name: &str) -> Result<Response, ApiError> {
        let asset = PAGE
            .assets
            .iter()
            .find(|asset| asset.name == name)
            .ok_or_else(|| ApiError::not_found("such asset"))?;
        let mut response = Response::new(Bytes::from_static(asset.bytes));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("same-origin"),
        );
        Ok(response)
    }
}

/// The page may load only its own assets, talk only to this API (`'self'`) and to storage
/// (`STORAGE_ORIGIN`; locally storage is served on the API's own origin), and be framed only by
/// `ALLOWED_FRAME_ORIGINS` (none when unset).
pub fn content_security_policy(config: &Config) -> String {
    let mut connect = vec!["'self'"];
    connect.extend(
        config
            .storage_origin
            .iter()
            .map(String::as_str)
            .filter(|o| is_origin(o)),
    );
    let ancestors: Vec<&str> = config
        .allowed_frame_origins
        .iter()
        .map(String::as_str)
        .filter(|origin| {
            let valid = is_origin(origin);
            if !valid {
                tracing::warn!(origin = %origin, "ALLOWED_FRAME_ORIGINS entry is not an origin: ignored");
            }
            valid
        })
        .collect();
    let ancestors = if ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {}; frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'",
        connect.join(" ")
    )
}

/// `scheme://host[:port]` with an http(s) scheme, a host of letters, digits, dots and dashes
/// (a leading `*.` allowed, as CSP allows it) and nothing after the port: anything else could
/// smuggle a directive into the policy.
fn is_origin(candidate: &str) -> bool {
    let Some((scheme, rest)) = candidate.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return false;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())
    });
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .expect("valid configuration")
    }

    #[test]
    fn the_page_may_be_framed_by_no_one_when_no_origin_is_configured() {
        let policy = content_security_policy(&config(&[]));
        assert!(policy.contains("frame-ancestors 'none';"), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "{policy}");
    }

    #[test]
    fn configured_frame_origins_and_storage_origin_appear_space_separated() {
        let policy = content_security_policy(&config(&[
            (
                "ALLOWED_FRAME_ORIGINS",
                "https://cyber.example.org, https://*.cyber.example.org:8443",
            ),
            ("STORAGE_ORIGIN", "https://bases.s3.eu-west-3.amazonaws.com"),
        ]));
        assert!(
            policy.contains(
                "frame-ancestors https://cyber.example.org https://*.cyber.example.org:8443;"
            ),
            "{policy}"
        );
        assert!(
            policy.contains("connect-src 'self' https://bases.s3.eu-west-3.amazonaws.com;"),
            "{policy}"
        );
        assert!(policy.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"));
        assert!(policy.ends_with("base-uri 'none'; form-action 'none'"));
    }

    #[test]
    fn entries_that_are_not_origins_cannot_inject_directives() {
        let policy = content_security_policy(&config(&[(
            "ALLOWED_FRAME_ORIGINS",
            "https://ok.example.org; script-src *, javascript:alert(1), https://a.example/path, *",
        )]));
        assert!(policy.contains("frame-ancestors 'none';"), "{policy}");
        assert_eq!(policy.matches("script-src").count(), 1, "{policy}");
    }

    #[test]
    fn origins_are_recognised() {
        for good in [
            "http://127.0.0.2:8080",
            "https://cyberlibrairie.example.fr",
            "https://*.example.org",
            "http://localhost:3000",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "",
            "example.org",
            "ftp://example.org",
            "https://",
            "https://example.org/",
            "https://example.org:80x",
            "https://exa mple.org",
            "https://example.org;",
            "https://.example.org",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn the_page_links_the_hashed_asset_names_and_every_asset_is_served_under_it() {
        let page = String::from_utf8(PAGE.html.to_vec()).unwrap();
        assert!(!page.contains("{{"), "unreplaced placeholder");
        for name in PAGE.assets.iter().map(|asset| asset.name.as_str()) {
            assert!(page.contains(&format!("upload/assets/{name}")), "{name}");
            assert!(name.starts_with("upload.") && name.len() > "upload..js".len() + 15);
        }
        assert!(page.contains("<html lang=\"fr\">"));
    }
}
