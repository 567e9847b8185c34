//! How `GET /tasks` shows each task: in full, or without its payload and result.
//!
//! Payloads and results are whatever producers and workers send (up to the body limit each), so
//! a page of them in full could be gigabytes; a dashboard needs neither. A listing is therefore a
//! summary unless it asks for `view=full`, and a full page is also cut by bytes (the master's
//! `--list-page-max-bytes`), with a cursor to go on from.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::task::{LeaseInfo, Task, TaskId, TaskState};

/// How much of each task a listing shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskView {
    /// Every field but `payload` and `result`.
    #[default]
    Summary,
    /// Every field, as `GET /tasks/{id}` shows it.
    Full,
}

/// A task without its payload and result: what `GET /tasks` lists unless asked for `view=full`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSummary {
    /// The task's id.
    pub id: TaskId,
    /// The task's queue.
    pub queue: String,
    /// The task's state.
    pub state: TaskState,
    /// Higher runs first.
    pub priority: i32,
    /// Leases granted so far (a released lease is not counted).
    pub attempts: u32,
    /// Leases the task may be given in all.
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
    /// The last failure reported for the task.
    #[schema(required)]
    pub error: Option<String>,
    /// The worker whose result finished the task.
    #[schema(required)]
    pub worker_id: Option<String>,
    /// The key the task was submitted with, if any.
    #[schema(required)]
    pub idempotency_key: Option<String>,
    /// The tags the task was submitted with, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl From<Task> for TaskSummary {
    fn from(task: Task) -> Self {
        TaskSummary {
            id: task.id,
            queue: task.queue,
            state: task.state,
            priority: task.priority,
            attempts: task.attempts,
            max_attempts: task.max_attempts,
            created_at: task.created_at,
            run_at: task.run_at,
            lease: task.lease,
            cancel_requested: task.cancel_requested,
            error: task.error,
            worker_id: task.worker_id,
            idempotency_key: task.idempotency_key,
            tags: task.tags,
        }
    }
}

/// A task as `GET /tasks` lists it: in full (`view=full`) or as a summary (the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListedTask {
    /// Every field, with the payload and result (`view=full`).
    Full(Task),
    /// Without the payload and result (`view=summary`).
    Summary(TaskSummary),
}

impl ListedTask {
    /// `task` as `view` shows it.
    pub fn new(task: Task, view: TaskView) -> ListedTask {
        match view {
            TaskView::Full => ListedTask::Full(task),
            TaskView::Summary => ListedTask::Summary(task.into()),
        }
    }

    /// The task's id, whichever the view.
    pub fn id(&self) -> TaskId {
        match self {
            ListedTask::Full(task) => task.id,
            ListedTask::Summary(summary) => summary.id,
        }
    }

    /// What a summary shows of the task, however it was listed.
    pub fn summary(self) -> TaskSummary {
        match self {
            ListedTask::Full(task) => task.into(),
            ListedTask::Summary(summary) => summary,
        }
    }

    /// The whole task, if it was listed in full.
    pub fn full(self) -> Option<Task> {
        match self {
            ListedTask::Full(task) => Some(task),
            ListedTask::Summary(_) => None,
        }
    }
}
