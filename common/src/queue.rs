//! Queues: counts per state and the sealed flag.

use serde::{Deserialize, Serialize};

/// Tasks of one queue per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub queued: u64,
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// `GET /queues/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub counts: StateCounts,
    /// Age of the oldest task ready to lease, in seconds; absent when none is.
    pub oldest_queued_age_secs: Option<f64>,
    /// A sealed queue takes no new tasks; once drained, leasers are told `no_more_tasks`.
    pub sealed: bool,
}

/// `GET /queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}
