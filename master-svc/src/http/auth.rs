//! Bearer tokens. An operator token (`--api-token`) opens every endpoint; a worker token
//! (`--worker-token`) opens only the workers' endpoints: leases, and registering and withdrawing
//! a push worker (listing and removing push workers are the operator's, see `router`). An
//! endpoint group with no token that could open it stays open. Probes are always open;
//! `/metrics` is open unless a metrics token (`--metrics-token`) is set, which then opens it
//! alone.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub api: Option<String>,
    pub worker: Option<String>,
    /// Opens `/metrics`, and only it; unset, `/metrics` is open.
    pub metrics: Option<String>,
}

impl Tokens {
    /// The tokens that open `/metrics`: only the metrics token, as an operator's.
    pub fn for_metrics(&self) -> Tokens {
        Tokens {
            api: self.metrics.clone(),
            ..Tokens::default()
        }
    }
}

/// Who an endpoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Audience {
    Operators,
    Workers,
}

impl Tokens {
    fn check(&self, audience: Audience, presented: Option<&str>) -> Result<(), ApiError> {
        let worker_token = self
            .worker
            .as_deref()
            .filter(|_| audience == Audience::Workers);
        if self.api.is_none() && worker_token.is_none() {
            return Ok(());
        }
        let presented = presented.ok_or(ApiError::Unauthorized)?;
        if matches(self.api.as_deref(), presented) || matches(worker_token, presented) {
            return Ok(());
        }
        if matches(self.worker.as_deref(), presented) {
            return Err(ApiError::Forbidden);
        }
        Err(ApiError::Unauthorized)
    }
}

fn matches(expected: Option<&str>, presented: &str) -> bool {
    expected.is_some_and(|token| bool::from(token.as_bytes().ct_eq(presented.as_bytes())))
}

/// Middleware: lets the request through if its bearer token opens `audience`'s endpoints.
pub(super) async fn require(
    State((tokens, audience)): State<(Tokens, Audience)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(common::auth::bearer_token);
    tokens.check(audience, presented)?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            api: Some("op".into()),
            worker: Some("wk".into()),
            metrics: None,
        }
    }

    #[test]
    fn the_operator_token_opens_everything() {
        assert!(tokens().check(Audience::Operators, Some("op")).is_ok());
        assert!(tokens().check(Audience::Workers, Some("op")).is_ok());
    }

    #[test]
    fn the_worker_token_opens_only_worker_endpoints() {
        assert!(tokens().check(Audience::Workers, Some("wk")).is_ok());
        assert!(matches!(
            tokens().check(Audience::Operators, Some("wk")),
            Err(ApiError::Forbidden)
        ));
    }

    #[test]
    fn a_missing_or_wrong_token_is_unauthorized() {
        assert!(matches!(
            tokens().check(Audience::Workers, None),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            tokens().check(Audience::Workers, Some("nope")),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn with_no_tokens_everything_is_open() {
        assert!(Tokens::default().check(Audience::Operators, None).is_ok());
    }
}
