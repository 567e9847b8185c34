//! Bulk actions by filter (`POST /tasks/bulk`) and the operations that carry them out
//! (`GET /operations`, `GET /operations/{id}`).
//!
//! A bulk action is accepted at once (`202`) as an operation; the master then works through the
//! matching tasks in chunks, each one commit, and the operation's counters tell how far it got.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::task::{TaskId, TaskState};

/// Ids a bulk filter may name at most.
pub const MAX_BULK_IDS: usize = 10_000;

/// Which tasks a bulk action applies to: the filters of `GET /tasks`, all of which a task must
/// match, and optionally a list of ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Only tasks of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
    pub queue: Option<String>,
    /// Only tasks in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Only tasks carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub tag: Option<String>,
    /// Only tasks whose result was reported by this worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub worker_id: Option<String>,
    /// Only tasks submitted with this concurrency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub concurrency_key: Option<String>,
    /// Only tasks submitted at or after this time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<OffsetDateTime>,
    /// Only tasks submitted before this time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<OffsetDateTime>,
    /// Only finished tasks that finished at or after this time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_after: Option<OffsetDateTime>,
    /// Only tasks whose last error contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub error_contains: Option<String>,
    /// Only these tasks (up to 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 10000)]
    pub ids: Option<Vec<TaskId>>,
}

/// What a bulk operation does to each matching task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// As `POST /tasks/{id}/retry`: failed and cancelled tasks are queued again; others are
    /// skipped.
    Retry,
    /// As `DELETE /tasks/{id}`: queued tasks are cancelled, leased ones marked
    /// `cancel_requested`; finished ones are skipped.
    Cancel,
    /// Finished tasks (succeeded, failed, cancelled) are deleted; queued and leased ones are
    /// skipped (cancel them first).
    Delete,
}

impl BulkAction {
    /// The action's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Retry => "retry",
            BulkAction::Cancel => "cancel",
            BulkAction::Delete => "delete",
        }
    }
}

/// Body of `POST /tasks/bulk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// The tasks to act on; `{}` is every task.
    #[serde(deserialize_with = "crate::object::object")]
    pub filter: BulkFilter,
    /// What to do to each of them.
    pub action: BulkAction,
    /// Go through at most this many matching tasks (in id order).
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 9223372036854775807_u64)]
    pub limit: Option<u64>,
    /// Count the matching tasks (`matched`) without changing any.
    #[serde(default)]
    pub dry_run: bool,
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Working through the matching tasks (also while waiting to resume after a restart).
    Running,
    /// Every matching task was gone through.
    Done,
    /// Stopped before the end; `error` says why. What was done stays done.
    Failed,
}

impl OperationState {
    /// The state's name in the API and in the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Running => "running",
            OperationState::Done => "done",
            OperationState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for OperationState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            OperationState::Running,
            OperationState::Done,
            OperationState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| format!("unknown operation state `{s}`"))
    }
}

/// A bulk operation and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    /// The operation's id.
    pub id: i64,
    /// What it does to each matching task.
    pub action: BulkAction,
    /// The tasks it applies to.
    pub filter: BulkFilter,
    /// The cap on matching tasks it goes through.
    #[schema(required)]
    pub limit: Option<u64>,
    /// Counts without changing anything.
    pub dry_run: bool,
    /// Where it is.
    pub state: OperationState,
    /// Matching tasks gone through so far.
    pub matched: u64,
    /// Tasks the action changed.
    pub done: u64,
    /// Matching tasks the action does not apply to in their state (e.g. a retry of a succeeded
    /// task), or gone by the time their chunk was written.
    pub skipped: u64,
    /// Matching tasks that could not be acted on because the store failed.
    pub errors: u64,
    /// Why it failed, when `state` is `failed`.
    #[schema(required)]
    pub error: Option<String>,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended; `null` while running.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required, value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

/// Reply to `POST /tasks/bulk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationAccepted {
    /// The operation just started; follow it at `GET /operations/{id}`.
    pub operation: Operation,
}

/// Query of `GET /operations`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOperations {
    /// How many of the most recent operations, 1..=100; 20 when absent.
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
}

/// Reply to `GET /operations`: the most recent operations, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationList {
    /// Newest first.
    pub operations: Vec<Operation>,
}
