//! Queues: counts per state and the sealed flag.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::TaskState;

/// A queue name, as it may appear in a URL: 1 to 200 of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9._-]{1,200}$", example = "default")]
pub struct QueueName(pub String);

/// Tasks of one queue per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateCounts {
    pub queued: u64,
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl StateCounts {
    /// Sets the count of tasks in `state`.
    pub fn set(&mut self, state: TaskState, count: u64) {
        let slot = match state {
            TaskState::Queued => &mut self.queued,
            TaskState::Leased => &mut self.leased,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        };
        *slot = count;
    }
}

/// `GET /queues/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = crate::examples::queue_info)]
pub struct QueueInfo {
    pub name: String,
    pub counts: StateCounts,
    /// Age of the oldest task ready to lease, in seconds; `null` when none is.
    #[schema(required)]
    pub oldest_queued_age_secs: Option<f64>,
    /// A sealed queue takes no new tasks; once drained, leasers are told `no_more_tasks`.
    pub sealed: bool,
}

/// `GET /queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = crate::examples::queue_list)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}
