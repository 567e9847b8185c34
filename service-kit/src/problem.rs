//! The one writer of RFC 9457 problem responses. Each service maps its own errors to a
//! [`Problem`] (status, `type`, title); this writes it out the same way for both.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::Problem;
use common::problem::PROBLEM_CONTENT_TYPE;

/// A problem body as an `application/problem+json` response whose status is the problem's.
/// The caller adds the headers its error needs (`Retry-After`, `WWW-Authenticate`, ...).
#[derive(Debug)]
pub struct ProblemJson(pub Problem);

impl IntoResponse for ProblemJson {
    fn into_response(self) -> Response {
        // A status outside 100..=999 is a bug in the mapping, not the client's doing.
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.0)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    #[tokio::test]
    async fn a_problem_is_written_with_its_status_and_the_problem_content_type() {
        let problem = Problem {
            type_uri: "https://leasehold.dev/problems/lease-expired".into(),
            title: "Lease expired".into(),
            status: 409,
            detail: Some("the lease expired before this request arrived".into()),
        };

        let response = ProblemJson(problem.clone()).into_response();

        assert_eq!(response.status(), StatusCode::CONFLICT);
        let content_type = &response.headers()[header::CONTENT_TYPE];
        assert_eq!(content_type, "application/problem+json");
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let written: Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(written, problem);
    }
}
