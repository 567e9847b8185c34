//! Leases: how workers take tasks, keep them, and hand back results.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::problem::Problem;
use crate::queue::QueueName;
use crate::task::{TaskId, TaskState};

/// Upper bound on `max_tasks` in one lease request.
pub const MAX_LEASE_BATCH: u32 = 256;
/// Upper bound on the results in one `POST /tasks/results`.
pub const MAX_REPORT_BATCH: usize = 256;
/// Upper bound on `wait_secs` in one lease request.
pub const MAX_WAIT_SECS: u64 = 60;
/// Upper bound on the queues named in one lease request.
pub const MAX_LEASE_QUEUES: usize = 32;

/// A lease id: an opaque token that fences a worker's heartbeats and results to one lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(example = "5f0c2a9e4b7d1c36")]
pub struct LeaseId(pub String);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `POST /tasks/lease`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who asks: results and heartbeats must name the same worker.
    #[schema(min_length = 1, max_length = 200)]
    pub worker_id: String,
    /// Queues to take from; `["default"]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 32, value_type = Option<Vec<QueueName>>)]
    pub queues: Option<Vec<String>>,
    /// 1..=256; 1 when absent.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 256)]
    pub max_tasks: Option<u32>,
    /// Lease length; each task's own when absent.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 604800)]
    pub lease_secs: Option<u64>,
    /// Long-poll for up to this long (0..=60) when nothing is ready; 0 when absent.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 60)]
    pub wait_secs: Option<u64>,
    /// Results of tasks this worker finished, recorded (and committed) before anything is
    /// leased, exactly as `POST /tasks/results` records them: "report and lease next" in one
    /// round trip. Each is answered in the reply's `results`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 256)]
    pub results: Vec<ReportFor>,
}

impl LeaseRequest {
    /// A request of `worker_id` for one task of the default queue, not waiting.
    pub fn new(worker_id: impl Into<String>) -> Self {
        LeaseRequest {
            worker_id: worker_id.into(),
            queues: None,
            max_tasks: None,
            lease_secs: None,
            wait_secs: None,
            results: Vec::new(),
        }
    }
}

/// One task handed to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeasedTask {
    /// The task's id.
    pub task_id: TaskId,
    /// The lease's id: every heartbeat, result and release for the task names it.
    pub lease_id: LeaseId,
    /// The queue the task came from.
    pub queue: String,
    /// The task's input, as submitted.
    pub payload: Value,
    /// 1 on the first lease of the task, 2 on the second, ...
    #[serde(deserialize_with = "crate::integer::exact")]
    // A `u32`: utoipa would say `int32`, whose maximum is half of it.
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub attempt: u32,
    /// When the lease runs out unless a heartbeat extends it.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Reply to `POST /tasks/lease`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseResponse {
    /// The tasks leased, possibly none.
    pub tasks: Vec<LeasedTask>,
    /// Every queue asked for is sealed and has nothing queued or leased: a batch worker may exit.
    pub no_more_tasks: bool,
    /// What became of each of the request's `results`, in order; absent when it had none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ReportAck>,
}

/// `POST /tasks/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The lease being renewed.
    pub lease_id: LeaseId,
    /// New lease length from now; the lease's current length when absent.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 604800)]
    pub lease_secs: Option<u64>,
}

/// Reply to `POST /tasks/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAck {
    /// The lease's new deadline.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// An operator cancelled the task: stop working on it and release it.
    pub cancel_requested: bool,
}

/// How a worker's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The task did what it should.
    Succeeded,
    /// The attempt failed; the task is retried while attempts are left, unless `retry` is false.
    Failed,
}

/// `POST /tasks/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskResult {
    /// The lease the result is for: accepted only while it is the task's live lease.
    pub lease_id: LeaseId,
    /// The worker the lease was granted to.
    #[schema(min_length = 1, max_length = 200)]
    pub worker_id: String,
    /// How the attempt ended.
    pub outcome: Outcome,
    /// Any JSON value: what the task produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// For a failure: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failure: may the task be tried again? true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<bool>,
    /// For a retried failure: wait this long instead of the exponential backoff.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 604800)]
    pub retry_after_secs: Option<u64>,
    /// For a failure: pause the task's queue for this long (the downstream said to back off,
    /// e.g. a `429`); it resumes by itself. The master caps it (`--max-queue-pause-secs`).
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 604800)]
    pub pause_queue_secs: Option<u64>,
}

impl TaskResult {
    /// A success under `lease_id`, with `result`.
    pub fn succeeded(lease_id: LeaseId, worker_id: impl Into<String>, result: Value) -> Self {
        TaskResult {
            lease_id,
            worker_id: worker_id.into(),
            outcome: Outcome::Succeeded,
            result: Some(result),
            error: None,
            retry: None,
            retry_after_secs: None,
            pause_queue_secs: None,
        }
    }

    /// A failure under `lease_id`, with `error`; retried per the task's attempts.
    pub fn failed(
        lease_id: LeaseId,
        worker_id: impl Into<String>,
        error: impl Into<String>,
    ) -> Self {
        TaskResult {
            lease_id,
            worker_id: worker_id.into(),
            outcome: Outcome::Failed,
            result: None,
            error: Some(error.into()),
            retry: None,
            retry_after_secs: None,
            pause_queue_secs: None,
        }
    }
}

/// `POST /tasks/results`: many results in one request (and one commit), each fenced by its
/// own lease exactly as `POST /tasks/{id}/result` fences one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    /// The results, each with its task's id.
    #[schema(min_items = 1, max_items = 256)]
    pub results: Vec<ReportFor>,
}

/// One task's result in a [`ReportBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportFor {
    /// The task the result is for.
    pub task_id: TaskId,
    /// The result, as `POST /tasks/{id}/result` takes it.
    pub report: TaskResult,
}

/// Reply to `POST /tasks/results`: one entry per result, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportBatchReply {
    /// One entry per result of the request, in order.
    pub results: Vec<ReportAck>,
}

/// What became of one result of a batch: `status` is what `POST /tasks/{id}/result` would have
/// answered; `state` is the task's state after an accepted result, `problem` why one was not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportAck {
    /// The task the result was for.
    pub task_id: TaskId,
    /// The HTTP status `POST /tasks/{id}/result` would have answered.
    pub status: u16,
    /// The task's state after an accepted result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Why the result was not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// `POST /tasks/{id}/release`: hand a task back without counting a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The lease being handed back.
    pub lease_id: LeaseId,
    /// Not leased again before this many seconds from now.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 604800)]
    pub delay_secs: Option<u64>,
}
