//! Roles and scoped tokens (`GET /whoami`) and the audit log of operator actions
//! (`GET /audit`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// What a token may do. Which endpoint each role opens is the master's table (`master-svc`'s
/// `access::roles`), listed in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Submits tasks, reads its queues' tasks and results.
    Producer,
    /// Leases, heartbeats, reports, releases, and registers itself for push.
    Worker,
    /// Everything on its queues: cancel, retry, seal, pause, limits, workers.
    Operator,
    /// Every `GET`, nothing else (dashboards, autoscalers).
    ReadOnly,
    /// Everything.
    Admin,
}

impl Role {
    /// The role as the tokens file and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Worker => "worker",
            Role::Operator => "operator",
            Role::ReadOnly => "read-only",
            Role::Admin => "admin",
        }
    }
}

/// Reply to `GET /whoami`: the token the request was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhoAmI {
    /// The token's name in the tokens file; `api-token` or `worker-token` for the legacy flags,
    /// `anonymous` on a master without tokens.
    #[schema(example = "ci")]
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// Queue-name prefixes the token is limited to; `null`: every queue.
    #[schema(required, example = json!(["billing-"]))]
    pub queues: Option<Vec<String>>,
}

/// `GET /audit` query string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    /// Page size, 1..=1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$", example = "120")]
    pub cursor: Option<String>,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Answered `2xx`: done.
    Succeeded,
    /// Answered `4xx`: refused (not allowed, not found, in conflict); nothing changed.
    Refused,
    /// Answered `5xx`: the store failed.
    Failed,
}

impl AuditOutcome {
    /// The outcome of an answer with this status code.
    pub fn of_status(status: u16) -> AuditOutcome {
        match status {
            200..=399 => AuditOutcome::Succeeded,
            400..=499 => AuditOutcome::Refused,
            _ => AuditOutcome::Failed,
        }
    }
}

/// One operator action as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Increasing with time; also the cursor's position.
    pub id: i64,
    /// When the action was answered.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The name of the token that asked (see [`WhoAmI::name`]).
    #[schema(example = "ops-alice")]
    pub actor: String,
    /// What was asked, e.g. `cancel`, `seal`, `set_limits`, `remove_worker`.
    #[schema(example = "cancel")]
    pub action: String,
    /// What it was asked of: the request's method and path.
    #[schema(example = "DELETE /tasks/42")]
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The status code it was answered with.
    #[schema(example = 200)]
    pub status: u16,
}

/// Reply to `GET /audit`: a page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    #[schema(required)]
    pub next_cursor: Option<String>,
}
