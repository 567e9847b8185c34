//! `ApiError`: every way a request can fail, written as RFC 9457 `application/problem+json`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::Problem;
use common::problem::{PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE};

use crate::engine::EngineError;
use crate::model::Conflict;

/// The one error type of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, wrong types, unknown fields, values out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// No or a wrong bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A worker token used on an operator endpoint.
    #[error("this token may not use this endpoint")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// The request conflicts with the task's state; the kind says how.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A registration under the id of a worker the operator configured or DNS found.
    #[error("{0}")]
    WorkerIdReserved(String),
    /// As many push workers are registered as the master holds.
    #[error("{0}")]
    TooManyWorkers(String),
    /// A push worker's address is outside `--push-allow-cidr`.
    #[error("{0}")]
    PushAddressNotAllowed(String),
    /// The store did not answer; nothing was changed. Logged, not shown.
    #[error("the service is unavailable")]
    Unavailable(String),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::WorkerIdReserved(_) => StatusCode::CONFLICT,
            ApiError::TooManyWorkers(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PushAddressNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The suffix of the problem `type` URI.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(conflict) => conflict.kind(),
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::WorkerIdReserved(_) => "worker-id-reserved",
            ApiError::TooManyWorkers(_) => "too-many-workers",
            ApiError::PushAddressNotAllowed(_) => "push-address-not-allowed",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Conflict(Conflict::LeaseExpired) => "Lease expired",
            ApiError::Conflict(Conflict::LeaseSuperseded) => "Lease superseded",
            ApiError::Conflict(Conflict::TaskFinished(_)) => "Task already finished",
            ApiError::Conflict(Conflict::LeaseEnded) => "Lease already ended",
            ApiError::Conflict(Conflict::LeaseReleased) => "Lease released",
            ApiError::Conflict(Conflict::ResultMismatch) => "Result mismatch",
            ApiError::Conflict(Conflict::WrongWorker) => "Lease held by another worker",
            ApiError::Conflict(Conflict::WrongState(..)) => "Task in the wrong state",
            ApiError::Conflict(Conflict::QueueSealed(_)) => "Queue sealed",
            ApiError::Conflict(Conflict::IdempotencyKeyReused(..)) => "Idempotency key reused",
            ApiError::WorkerIdReserved(_) => "Worker id reserved",
            ApiError::TooManyWorkers(_) => "Too many registered workers",
            ApiError::PushAddressNotAllowed(_) => "Push address not allowed",
            other => other.status_code().canonical_reason().unwrap_or("Error"),
        }
    }
}

impl ApiError {
    /// The problem details this error is written as.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", self.kind()),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: Some(self.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if let ApiError::Unavailable(cause) = &self {
            tracing::error!(%cause, "request failed in the store");
        }
        let problem = self.problem();
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"leasehold\""),
            );
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(detail) => ApiError::InvalidRequest(detail),
            EngineError::TaskNotFound(_) | EngineError::QueueNotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            EngineError::Conflict(conflict) => ApiError::Conflict(conflict),
            EngineError::Store(cause) => ApiError::Unavailable(cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(detail),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail),
            _ => ApiError::InvalidRequest(detail),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::InvalidRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidRequest(rejection.body_text())
    }
}
