//! Tasks: what a producer submits and what the master reports back.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// The queue a task goes to when the submitter names none.
pub const DEFAULT_QUEUE: &str = "default";
/// How many times a task is leased before it is given up on, unless the submitter says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Upper bound on `max_attempts`.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1_000;
/// Upper bound on every `*_secs` duration a client may ask for (one week).
pub const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;
/// Upper bound on the tasks in one `POST /tasks/batch`.
pub const MAX_BATCH_TASKS: usize = 10_000;
/// Upper bound on `limit` in `GET /tasks`.
pub const MAX_LIST_LIMIT: u32 = 1_000;
/// Longest queue name, worker id or idempotency key accepted.
pub const MAX_NAME_LEN: usize = 200;
/// Tags a task may carry at most.
pub const MAX_TAGS: usize = 16;
/// Characters a tag may hold at most (and at least one).
pub const MAX_TAG_CHARS: usize = 64;

/// A task id: a small integer, assigned by the master in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(example = 3)]
pub struct TaskId(pub i64);

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::integer::exact(deserializer).map(TaskId)
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;

    /// A task id as a path writes it: the digits JSON writes (a `-` first if negative), and
    /// nothing else. Rust's own parser also takes `+1` and `01`, which would make `/tasks/+1`
    /// and `/tasks/01` other names of `/tasks/1`.
    fn from_str(text: &str) -> Result<TaskId, String> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let no_leading_zero = !digits.starts_with('0') || text == "0";
        let refused = || format!("a task id is an integer in decimal digits, not `{text}`");
        if !(all_digits && no_leading_zero) {
            return Err(refused());
        }
        text.parse().map(TaskId).map_err(|_| refused())
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting to be leased (possibly not before `run_at`).
    Queued,
    /// Held by a worker under a live lease.
    Leased,
    /// Finished with a result.
    Succeeded,
    /// Given up on: attempts exhausted or a non-retryable failure. This is the dead-letter set.
    Failed,
    /// Cancelled by an operator before it finished.
    Cancelled,
}

impl TaskState {
    /// Every state, in a task's life order.
    pub const ALL: [TaskState; 5] = [
        TaskState::Queued,
        TaskState::Leased,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// The state's name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Leased => "leased",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed and cancelled tasks never run again unless retried by an operator.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

/// `POST /tasks`, and each element of `POST /tasks/batch`.
///
/// The bounds in the `#[schema]` attributes are the limits above, which `engine::validate` in the
/// master enforces; a test in `crate::openapi` checks that the two agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    /// Any JSON value; handed to the worker as it is.
    pub payload: Value,
    /// Queue name; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
    pub queue: Option<String>,
    /// Higher runs first; 0 when absent.
    #[serde(default, deserialize_with = "crate::integer::exact")]
    pub priority: i32,
    /// Not leased before this many seconds from now.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 604800)]
    pub delay_secs: Option<u64>,
    /// Leases granted before the task is given up on; 3 when absent.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_attempts: Option<u32>,
    /// Lease length for this task when the worker asks for none.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 604800)]
    pub lease_secs: Option<u64>,
    /// A repeated key returns the task first submitted with it instead of creating another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
    /// Tasks with the same key share their queue's `key_limit` (at most that many leased at
    /// once), and keys take turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub concurrency_key: Option<String>,
    /// Labels to find the task by (`GET /tasks?tag=`, `POST /tasks/bulk`): up to 16, each 1 to
    /// 64 characters; duplicates are dropped. Part of the submission: a resubmission under the same
    /// `idempotency_key` must carry the same set of tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
}

impl SubmitTask {
    /// A task for the default queue with every other field at its default.
    pub fn new(payload: Value) -> Self {
        SubmitTask {
            payload,
            queue: None,
            priority: 0,
            delay_secs: None,
            max_attempts: None,
            lease_secs: None,
            idempotency_key: None,
            concurrency_key: None,
            tags: Vec::new(),
        }
    }
}

/// `SubmitTask::tags`: up to 16 strings of 1 to 64 characters.
fn tags_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let tag = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_TAG_CHARS));
    ArrayBuilder::new()
        .items(tag)
        .max_items(Some(MAX_TAGS))
        .build()
}

/// `POST /tasks/batch`: many tasks in one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    /// The tasks, all of them created or none.
    #[serde(deserialize_with = "crate::object::vec")]
    #[schema(min_items = 1, max_items = 10000)]
    pub tasks: Vec<SubmitTask>,
}

/// Reply to `POST /tasks/batch`: the tasks in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchSubmitted {
    /// The tasks, in the request's order.
    pub tasks: Vec<Task>,
    /// How many of them are new; the others already existed under their idempotency key.
    pub created: usize,
}

/// The lease a task is currently held under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseInfo {
    /// The worker holding the lease.
    pub worker_id: String,
    /// When the lease runs out unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A task as `GET /tasks/{id}` reports it.
///
/// Every field is always present; those that may be empty are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// The queue the task belongs to.
    pub queue: String,
    /// Where the task is in its life.
    pub state: TaskState,
    /// The task's input, any JSON value, as submitted.
    pub payload: Value,
    /// Higher runs first; ties go to the earliest `run_at`.
    pub priority: i32,
    /// Leases granted so far (a released lease is not counted).
    pub attempts: u32,
    /// Leases the task may be given in all before it fails for good.
    pub max_attempts: u32,
    /// When the task was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Not leased before this time.
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    /// The live lease, while `state` is `leased`.
    #[schema(required)]
    pub lease: Option<LeaseInfo>,
    /// True when an operator cancelled the task while it was leased.
    pub cancel_requested: bool,
    /// What the worker returned, once the task succeeded.
    #[schema(required)]
    pub result: Option<Value>,
    /// The last failure reported for the task.
    #[schema(required)]
    pub error: Option<String>,
    /// The worker whose result finished the task.
    #[schema(required)]
    pub worker_id: Option<String>,
    /// The idempotency key the task was submitted with.
    #[schema(required)]
    pub idempotency_key: Option<String>,
    /// The concurrency key the task was submitted with.
    #[schema(required)]
    pub concurrency_key: Option<String>,
    /// The tags the task was submitted with, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `GET /tasks/{id}` and `POST /tasks` query string: wait for the task to finish.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitForTask {
    /// Wait up to this many seconds (0 to 60) for the task to finish (succeeded, failed or
    /// cancelled) before answering; woken by the result's commit, on whichever master it
    /// lands. 0 or absent answers at once.
    #[param(minimum = 0, maximum = 60, example = 10)]
    pub wait_secs: Option<u64>,
}

/// `GET /tasks` query string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// Only tasks of this queue.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", example = "default")]
    pub queue: Option<String>,
    /// Only tasks in this state.
    #[param(inline, example = "queued")]
    pub state: Option<TaskState>,
    /// Only tasks carrying this tag.
    #[param(min_length = 1, max_length = 64, example = "nightly")]
    pub tag: Option<String>,
    /// Only tasks whose result was reported by this worker (the task's `worker_id`).
    #[param(min_length = 1, max_length = 200, example = "worker-1")]
    pub worker_id: Option<String>,
    /// Only tasks submitted with this concurrency key.
    #[param(min_length = 1, max_length = 200, example = "customer-42")]
    pub concurrency_key: Option<String>,
    /// Only tasks submitted at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-01-01T00:00:00Z")]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_after: Option<OffsetDateTime>,
    /// Only tasks submitted before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-01-02T00:00:00Z")]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_before: Option<OffsetDateTime>,
    /// Only finished tasks (succeeded, failed, cancelled) that finished at or after this time.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-01-01T00:00:00Z")]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_after: Option<OffsetDateTime>,
    /// Only tasks whose last error contains this text (case-sensitive).
    #[param(min_length = 1, example = "timeout")]
    pub error_contains: Option<String>,
    /// Page size, 1..=1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000, example = 10)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$", example = "2")]
    pub cursor: Option<String>,
    /// `summary` (the default) lists each task without `payload` and `result`; `full` lists
    /// them too, and ends a page early, cursor given, once it holds the master's
    /// `--list-page-max-bytes` of payloads, results and errors (but always one task).
    #[param(inline, example = "summary")]
    pub view: Option<crate::listing::TaskView>,
}

/// Reply to `GET /tasks`: a page in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    /// In full with `view=full`, as summaries otherwise.
    pub tasks: Vec<crate::listing::ListedTask>,
    /// Pass as `cursor` to get the next page; `null` on the last page. A page may end before
    /// `limit` with a cursor: a full page ends at the master's byte limit.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod task_id_tests {
    use super::TaskId;

    #[test]
    fn a_task_id_is_read_in_its_one_spelling() {
        assert_eq!("1".parse::<TaskId>(), Ok(TaskId(1)));
        assert_eq!("0".parse::<TaskId>(), Ok(TaskId(0)));
        assert_eq!("-12".parse::<TaskId>(), Ok(TaskId(-12)));
        for other in [
            "+1", "01", "00", "-0", "-", "", " 1", "1 ", "1_0", "0x1", "1e3", "1.0",
        ] {
            assert!(other.parse::<TaskId>().is_err(), "{other:?}");
        }
        assert!("9223372036854775808".parse::<TaskId>().is_err());
    }
}
