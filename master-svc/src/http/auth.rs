//! The metrics token (`--metrics-token`): when set, it alone opens `/metrics`; unset,
//! `/metrics` is open, as the probes are. Every other guarded route goes through roles and
//! scoped tokens ([`super::access`]).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Middleware: lets the request through if no metrics token is set or it presents that token.
pub(super) async fn require_metrics_token(
    State(token): State<Option<String>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = token {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(common::auth::bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        if !bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}
