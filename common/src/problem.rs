//! RFC 9457 problem details: the body of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of [`Problem`] bodies.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of every `type` URI this project defines; the suffix names the problem.
pub const PROBLEM_TYPE_BASE: &str = "https://leasehold.dev/problems/";

/// An error response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `https://leasehold.dev/problems/lease-expired`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub type_uri: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code of the response.
    pub status: u16,
    /// What went wrong with this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// The short name at the end of `type`, e.g. `lease-expired`.
    pub fn kind(&self) -> &str {
        self.type_uri
            .strip_prefix(PROBLEM_TYPE_BASE)
            .unwrap_or(&self.type_uri)
    }
}
