//! `ApiError`: every way a request can fail, written as RFC 9457 `application/problem+json`.

use std::error::Error;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::Problem;
use common::problem::PROBLEM_TYPE_BASE;
use leasehold_service_kit::ProblemJson;
use tower_http::timeout::TimeoutError;

use crate::chain::Chain;
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
    /// The token's role does not include the route's action.
    #[error("token `{name}` has role `{role}`, which may not {action}")]
    RoleForbids {
        name: String,
        role: &'static str,
        action: &'static str,
    },
    /// The request concerns a queue outside the token's queue scope; the message says which.
    #[error("{0}")]
    OutOfScope(String),
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
    /// A request line longer than hyper takes.
    #[error("the request's URI is too long")]
    UriTooLong,
    /// A request head larger than the read buffer, or with too many headers.
    #[error("the request's headers are too large: at most 8 KiB and 100 headers")]
    HeadersTooLarge,
    /// The body did not arrive in full within `--body-read-timeout-secs`.
    #[error("the request body did not arrive in full within --body-read-timeout-secs")]
    BodyTimeout,
    /// As many connections are open as `--max-connections` allows.
    #[error("the master has {0} connections open, as many as it takes; try again shortly")]
    TooManyConnections(usize),
    /// The store did not answer; nothing was changed. Logged, not shown.
    #[error("the service is unavailable")]
    Unavailable(#[source] EngineError),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RoleForbids { .. } | ApiError::OutOfScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::WorkerIdReserved(_) => StatusCode::CONFLICT,
            ApiError::TooManyWorkers(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PushAddressNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyConnections(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The suffix of the problem `type` URI.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RoleForbids { .. } => "forbidden-by-role",
            ApiError::OutOfScope(_) => "forbidden-by-queue-scope",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(conflict) => conflict.kind(),
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::WorkerIdReserved(_) => "worker-id-reserved",
            ApiError::TooManyWorkers(_) => "too-many-workers",
            ApiError::PushAddressNotAllowed(_) => "push-address-not-allowed",
            ApiError::UriTooLong => "uri-too-long",
            ApiError::HeadersTooLarge => "request-header-fields-too-large",
            ApiError::BodyTimeout => "request-timeout",
            ApiError::TooManyConnections(_) => "too-many-connections",
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
            ApiError::RoleForbids { .. } => "Forbidden by the token's role",
            ApiError::OutOfScope(_) => "Outside the token's queue scope",
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
            detail: Some(elide_middle(self.to_string())),
        }
    }
}

/// Longest `detail` written. serde's and axum's messages quote the input they choke on, whole:
/// a string of a megabyte in the wrong place would come back as a megabyte.
const MAX_DETAIL_CHARS: usize = 600;
/// How much of an over-long detail is kept before the cut; the rest is kept from its end, which
/// says where the input went wrong (serde's "at line 1 column N").
const DETAIL_HEAD_CHARS: usize = 400;

/// `detail` cut to at most about [`MAX_DETAIL_CHARS`], its middle left out.
fn elide_middle(detail: String) -> String {
    let length = detail.chars().count();
    if length <= MAX_DETAIL_CHARS {
        return detail;
    }
    let tail_chars = MAX_DETAIL_CHARS - DETAIL_HEAD_CHARS;
    let head: String = detail.chars().take(DETAIL_HEAD_CHARS).collect();
    let tail: String = detail.chars().skip(length - tail_chars).collect();
    let left_out = length - DETAIL_HEAD_CHARS - tail_chars;
    format!("{head}… ({left_out} characters left out) …{tail}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if let ApiError::Unavailable(cause) = &self {
            tracing::error!(cause = %Chain(cause), "request failed in the store");
        }
        let mut response = ProblemJson(self.problem()).into_response();
        let headers = response.headers_mut();
        if let ApiError::BodyTimeout | ApiError::TooManyConnections(_) = &self {
            // The connection is closed after the answer: a body cut short leaves its rest
            // unread, and a refused client must come back on a new connection.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::TooManyConnections(_) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
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
            EngineError::TaskNotFound(_)
            | EngineError::QueueNotFound(_)
            | EngineError::OperationNotFound(_) => ApiError::NotFound(e.to_string()),
            EngineError::Conflict(conflict) => ApiError::Conflict(conflict),
            EngineError::Store(_) | EngineError::Interrupted => {
                crate::metrics::store_error();
                ApiError::Unavailable(e)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if body_timed_out(&rejection) {
            return ApiError::BodyTimeout;
        }
        let detail = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(detail),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail),
            _ => ApiError::InvalidRequest(detail),
        }
    }
}

/// Whether the body failed because the router's body timeout ran out (its error is somewhere in
/// the chain of the rejection's sources, under axum's and the body limit's wrappers).
fn body_timed_out(rejection: &JsonRejection) -> bool {
    let first: &(dyn Error + 'static) = rejection;
    std::iter::successors(Some(first), |&e| e.source()).any(|e| e.is::<TimeoutError>())
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

#[cfg(test)]
mod tests {
    use super::{MAX_DETAIL_CHARS, elide_middle};

    #[test]
    fn a_short_detail_is_kept_whole() {
        let detail = "x".repeat(MAX_DETAIL_CHARS);
        assert_eq!(elide_middle(detail.clone()), detail);
    }

    #[test]
    fn a_long_detail_keeps_its_start_and_its_end() {
        let detail = format!(
            "invalid type: string \"{}\", at line 1 column 9",
            "é".repeat(1 << 20)
        );
        let elided = elide_middle(detail);
        assert!(elided.starts_with("invalid type: string \"é"));
        assert!(elided.ends_with("\", at line 1 column 9"));
        assert!(elided.contains("characters left out"));
        assert!(elided.chars().count() < MAX_DETAIL_CHARS + 50);
    }
}
