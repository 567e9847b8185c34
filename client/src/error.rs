//! [`ClientError`]: why a call to the master failed, and whether trying again may help.

use std::sync::Arc;

use common::Problem;

/// Why a call to the master failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The master refused the request with this problem (any 4xx but 429).
    #[error("refused with {}: {}", .0.status, .0.detail.as_deref().unwrap_or(&.0.title))]
    Refused(Problem),
    /// The master could not serve it now (5xx or 429); trying again later is safe.
    #[error("master unavailable: HTTP {0}")]
    Unavailable(u16),
    /// No answer: connection refused, reset, or timed out. (Shared, so that one failed batch
    /// can be the answer of each result in it.)
    #[error("master unreachable: {0}")]
    Network(Arc<reqwest::Error>),
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Network(Arc::new(e))
    }
}

impl ClientError {
    /// Whether the same request may succeed if sent again later.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ClientError::Refused(_))
    }

    /// The refusal's status, if the master refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused(problem) => Some(problem.status),
            _ => None,
        }
    }
}
