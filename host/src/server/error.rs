//! One error type for the JSON APIs: every refusal answers with the same
//! shape, `{"error": {"code", "message", "issues"?}}`, and a status that
//! fits it; `issues` lists `{path, message}` where the content is at fault.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::EngineError;
use crate::engine::agents::Refusal;
use crate::storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable and machine-readable: `not_found`, `conflict`, ...
    pub code: &'static str,
    pub message: String,
    /// Where the request is wrong, when its content is at fault (a flow's
    /// validation errors, each with its path).
    pub issues: Vec<crate::flow::Issue>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            issues: Vec::new(),
        }
    }

    pub fn with_issues(mut self, issues: Vec<crate::flow::Issue>) -> Self {
        self.issues = issues;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.issues.is_empty() {
            error["issues"] = json!(self.issues);
        }
        let body = json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if let StorageError::NotOwner(partition) = e {
            // Not a fault: several nodes share the database and another
            // one runs this conversation (see the README's "Storage").
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "other_node",
                format!(
                    "another node runs this conversation now (partition {partition}); \
                     send the request to that node"
                ),
            );
        }
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Storage(e) => e.into(),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "engine",
                other.to_string(),
            ),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::NotFound(_) => Self::not_found(message),
            Refusal::Conflict(_) => Self::conflict(message),
            Refusal::Forbidden(_) => Self::forbidden(message),
            Refusal::WindowClosed { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "window_closed", message)
            }
            Refusal::Translation(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "translation_failed", message)
            }
            Refusal::Engine(e) => e.into(),
        }
    }
}

/// `Json` whose refusals (not JSON, a wrong or unknown field) answer in the
/// API's error shape, saying where the body is wrong.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad_request",
                rejection.body_text(),
            )),
        }
    }
}
