//! The one error type of the HTTP boundary, and its mapping to the contract's error body.

use std::collections::BTreeMap;

use http::{header, HeaderValue, StatusCode};

use super::Response;
use crate::ports::{StoreError, WorkflowError};

/// Seconds a client should wait before retrying after a dependency failed.
const RETRY_AFTER_SECONDS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    NotReady,
    PayloadTooLarge,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict | ErrorCode::NotReady => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    /// For 405: the methods the path accepts, sent as the `Allow` header.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fields: BTreeMap::new(),
            allow: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn invalid_fields(fields: BTreeMap<String, String>) -> Self {
        Self {
            fields,
            ..Self::invalid("The request body has invalid fields.")
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "A valid credential is required: send 'Authorization: Bearer <key>'.",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            ErrorCode::Forbidden,
            "This credential may not call this endpoint.",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("No {what} here."))
    }

    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        // The cause goes to the log, not to the client: it may name internal resources.
        tracing::error!(error = %cause, "dependency failed");
        Self::new(
            ErrorCode::Unavailable,
            "A dependency is unavailable; nothing was changed. Retry later.",
        )
    }

    pub fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code.as_str(), "message": self.message });
        if !self.fields.is_empty() {
            body["fields"] = serde_json::json!(self.fields);
        }
        let mut response = super::json(self.code.status(), &body);
        let headers = response.headers_mut();
        match self.code {
            ErrorCode::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ErrorCode::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ErrorCode::MethodNotAllowed => {
                if let Some(allow) = self
                    .allow
                    .as_deref()
                    .and_then(|v| HeaderValue::from_str(v).ok())
                {
                    headers.insert(header::ALLOW, allow);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists | StoreError::Conflict => Self::new(
                ErrorCode::Conflict,
                "The resource changed while the request was handled; retry it.",
            ),
            StoreError::InvalidCursor => Self::invalid_fields(
                [(
                    "cursor".to_owned(),
                    "is not a cursor this listing handed out".to_owned(),
                )]
                .into(),
            )
            // A cursor is only ever a query parameter, never in a body.
            .with_message("The query has invalid parameters."),
            StoreError::Unavailable(_) => Self::unavailable(&error),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> Self {
        Self::unavailable(&error)
    }
}

impl ApiError {
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}
