//! Which endpoint a request is for. API Gateway routes in production; this does the same for
//! the local server and for each Lambda, which answers only its own endpoint.

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

/// A matched request: the endpoint and the path parameters, in template order.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched<'a> {
    pub endpoint: Endpoint,
    pub params: Vec<&'a str>,
}

pub fn match_route<'a>(method: &Method, path: &'a str) -> Result<Matched<'a>, ApiError> {
    let mut allowed = Vec::new();
    for endpoint in Endpoint::ALL {
        let (endpoint_method, template) = endpoint.route();
        if let Some(params) = match_template(template, path) {
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

fn match_template<'a>(template: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut template_parts = template.split('/');
    let mut path_parts = path.split('/');
    let mut params = Vec::new();
    loop {
        match (template_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) if expected.starts_with('{') && !actual.is_empty() => {
                params.push(actual)
            }
            (Some(expected), Some(actual)) if expected == actual => {}
            _ => return None,
        }
    }
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
