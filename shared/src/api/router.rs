//! Which endpoint a request is for. API Gateway routes in production; this does the same for
//! the local server and for each Lambda, which answers only its own endpoint.

use std::borrow::Cow;

use http::Method;

use super::{ApiError, ErrorCode};

/// The endpoints, one per Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    GetEstablishment,
    CreateEstablishment,
    GetHistory,
    OpenApi,
    UploadPage,
    UploadAsset,
    CreateUploadSession,
    GetUploadSession,
    CreateUploadFile,
    CreatePartUrls,
    ListUploadParts,
    CompleteUploadFile,
    DeleteUploadFile,
    SubmitUpload,
    ClaimJob,
    HeartbeatJob,
    SucceedJob,
    FailJob,
    ListEstablishments,
    RetryEstablishment,
}

impl Endpoint {
    pub const ALL: [Endpoint; 20] = [
        Endpoint::GetEstablishment,
        Endpoint::CreateEstablishment,
        Endpoint::GetHistory,
        Endpoint::OpenApi,
        Endpoint::UploadPage,
        Endpoint::UploadAsset,
        Endpoint::CreateUploadSession,
        Endpoint::GetUploadSession,
        Endpoint::CreateUploadFile,
        Endpoint::CreatePartUrls,
        Endpoint::ListUploadParts,
        Endpoint::CompleteUploadFile,
        Endpoint::DeleteUploadFile,
        Endpoint::SubmitUpload,
        Endpoint::ClaimJob,
        Endpoint::HeartbeatJob,
        Endpoint::SucceedJob,
        Endpoint::FailJob,
        Endpoint::ListEstablishments,
        Endpoint::RetryEstablishment,
    ];

    /// The method and path template, as in the OpenAPI document and the SAM template.
    pub fn route(self) -> (Method, &'static str) {
        match self {
            Endpoint::GetEstablishment => (Method::GET, "/v1/establishments/{rne}"),
            Endpoint::CreateEstablishment => (Method::POST, "/v1/establishments"),
            Endpoint::GetHistory => (Method::GET, "/v1/establishments/{rne}/history"),
            Endpoint::OpenApi => (Method::GET, "/v1/openapi.json"),
            Endpoint::UploadPage => (Method::GET, "/v1/upload"),
            Endpoint::UploadAsset => (Method::GET, "/v1/upload/assets/{file}"),
            Endpoint::CreateUploadSession => {
                (Method::POST, "/v1/establishments/{rne}/upload-sessions")
            }
            Endpoint::GetUploadSession => (Method::GET, "/v1/upload/session"),
            Endpoint::CreateUploadFile => (Method::POST, "/v1/upload/files"),
            Endpoint::CreatePartUrls => (Method::POST, "/v1/upload/files/{id}/part-urls"),
            Endpoint::ListUploadParts => (Method::GET, "/v1/upload/files/{id}/parts"),
            Endpoint::CompleteUploadFile => (Method::POST, "/v1/upload/files/{id}/complete"),
            Endpoint::DeleteUploadFile => (Method::DELETE, "/v1/upload/files/{id}"),
            Endpoint::SubmitUpload => (Method::POST, "/v1/upload/submit"),
            Endpoint::ClaimJob => (Method::POST, "/v1/agent/jobs/claim"),
            Endpoint::HeartbeatJob => (Method::POST, "/v1/agent/jobs/{id}/heartbeat"),
            Endpoint::SucceedJob => (Method::POST, "/v1/agent/jobs/{id}/succeed"),
            Endpoint::FailJob => (Method::POST, "/v1/agent/jobs/{id}/fail"),
            Endpoint::ListEstablishments => (Method::GET, "/v1/admin/establishments"),
            Endpoint::RetryEstablishment => (Method::POST, "/v1/admin/establishments/{rne}/retry"),
        }
    }

    /// Stable name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::GetEstablishment => "get_establishment",
            Endpoint::CreateEstablishment => "create_establishment",
            Endpoint::GetHistory => "get_history",
            Endpoint::OpenApi => "openapi",
            Endpoint::UploadPage => "upload_page",
            Endpoint::UploadAsset => "upload_asset",
            Endpoint::CreateUploadSession => "create_upload_session",
            Endpoint::GetUploadSession => "get_upload_session",
            Endpoint::CreateUploadFile => "create_upload_file",
            Endpoint::CreatePartUrls => "create_part_urls",
            Endpoint::ListUploadParts => "list_upload_parts",
            Endpoint::CompleteUploadFile => "complete_upload_file",
            Endpoint::DeleteUploadFile => "delete_upload_file",
            Endpoint::SubmitUpload => "submit_upload",
            Endpoint::ClaimJob => "claim_job",
            Endpoint::HeartbeatJob => "heartbeat_job",
            Endpoint::SucceedJob => "succeed_job",
            Endpoint::FailJob => "fail_job",
            Endpoint::ListEstablishments => "list_establishments",
            Endpoint::RetryEstablishment => "retry_establishment",
        }
    }
}

/// A matched request: the endpoint and the path parameters, in template order, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched<'a> {
    pub endpoint: Endpoint,
    pub params: Vec<Cow<'a, str>>,
}

/// The endpoint of `path` (as sent: percent-encoded). Each segment is decoded once before it is
/// matched, as API Gateway does before it routes and fills in path parameters, so that
/// `/v1/establishments/0750655%45` is `/v1/establishments/0750655E` here as there. A segment
/// that is not percent-encoded UTF-8 is a 400; one that decodes to a `/` matches no endpoint
/// (404), since no parameter can hold one.
pub fn match_route<'a>(method: &Method, path: &'a str) -> Result<Matched<'a>, ApiError> {
    let segments = path
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()?;
    if segments.iter().any(|segment| segment.contains('/')) {
        return Err(ApiError::not_found("such path"));
    }
    let mut allowed = Vec::new();
    for endpoint in Endpoint::ALL {
        let (endpoint_method, template) = endpoint.route();
        if let Some(params) = match_template(template, &segments) {
            if endpoint_method == method {
                return Ok(Matched { endpoint, params });
            }
            allowed.push(endpoint_method);
        }
    }
    if allowed.is_empty() {
        Err(ApiError::not_found("such path"))
    } else {
        let allowed = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("This path accepts {allowed} only.");
        Err(ApiError {
            allow: Some(allowed),
            ..ApiError::new(ErrorCode::MethodNotAllowed, message)
        })
    }
}

fn match_template<'a>(template: &str, segments: &[Cow<'a, str>]) -> Option<Vec<Cow<'a, str>>> {
    let mut template_parts = template.split('/');
    let mut path_parts = segments.iter();
    let mut params = Vec::new();
    loop {
        match (template_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) if expected.starts_with('{') && !actual.is_empty() => {
                params.push(actual.clone())
            }
            (Some(expected), Some(actual)) if expected == actual => {}
            _ => return None,
        }
    }
}

/// One path segment with its `%XX` escapes decoded (`+` is a plus sign in a path); borrowed
/// when it has none.
fn decode_segment(segment: &str) -> Result<Cow<'_, str>, ApiError> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let invalid = || {
        ApiError::invalid(
            "The path is not valid: each %XX escape must be two hex digits, and together they \
             must form UTF-8 text.",
        )
    };
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3).ok_or_else(invalid)?;
            if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| invalid())
}

/// `decoded`, a path as API Gateway HTTP APIs hand it to Lambda (`rawPath`, already decoded
/// once), percent-encoded again so that [`match_route`] decodes it back to exactly that: a
/// path is decoded once in all, by API Gateway in AWS and by the router locally. Everything
/// but unreserved characters, sub-delimiters, `:`, `@` and the `/` separators is escaped, `%`
/// first of all: a client's `%2545` reaches Lambda as `%45`, which must stay `%45`.
pub fn encode_decoded_path(decoded: &str) -> String {
    let mut encoded = String::with_capacity(decoded.len());
    for byte in decoded.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_endpoint_and_parameters() {
        let matched = match_route(&Method::GET, "/v1/establishments/0750655E/history").unwrap();
        assert_eq!(matched.endpoint, Endpoint::GetHistory);
        assert_eq!(matched.params, ["0750655E"]);
        let matched = match_route(&Method::POST, "/v1/establishments").unwrap();
        assert_eq!(matched.endpoint, Endpoint::CreateEstablishment);
    }

    #[test]
    fn segments_are_decoded_once_and_bad_escapes_refused() {
        let matched = match_route(&Method::GET, "/v1/establishments/0750655%45").unwrap();
        assert_eq!(matched.params, ["0750655E"]);
        let matched = match_route(&Method::GET, "/v1/establishments/0750655%2545").unwrap();
        assert_eq!(matched.params, ["0750655%45"]);
        for bad in ["%zz", "%4", "%C3", "%FF%FE", "%"] {
            let path = format!("/v1/establishments/{bad}");
            let error = match_route(&Method::GET, &path).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidRequest, "{bad}");
        }
        let error = match_route(&Method::GET, "/v1/establishments/a%2Fb").unwrap_err();
        assert_eq!(error.code, ErrorCode::NotFound);
    }

    #[test]
    fn a_decoded_path_encoded_again_decodes_back_to_itself() {
        for decoded in ["/v1/establishments/0750655E", "/v1/a b/%45/?#/é/+"] {
            let encoded = encode_decoded_path(decoded);
            let segments: Vec<String> = encoded
                .split('/')
                .map(|segment| decode_segment(segment).unwrap().into_owned())
                .collect();
            assert_eq!(segments.join("/"), decoded);
        }
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let error = match_route(&Method::GET, "/v1/establishments/").unwrap_err();
        assert_eq!(error.code, ErrorCode::NotFound);
        let error = match_route(&Method::GET, "/v2/establishments/0750655E").unwrap_err();
        assert_eq!(error.code, ErrorCode::NotFound);
        let error = match_route(&Method::DELETE, "/v1/establishments/0750655E").unwrap_err();
        assert_eq!(error.code, ErrorCode::MethodNotAllowed);
        assert_eq!(error.allow.as_deref(), Some("GET"));
    }
}
