//! A queue's recent activity (`GET /queues/{name}/history`; every queue's: `GET /activity`):
//! what happened to its tasks in each 10-second step of the last hour, and its backlog at the
//! end of each step, for an operator console's charts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Seconds each point of a history covers.
pub const HISTORY_STEP_SECS: u32 = 10;
/// The shortest window a history may be asked for: one step.
pub const MIN_HISTORY_WINDOW_SECS: u32 = HISTORY_STEP_SECS;
/// The longest window a history may be asked for (and the default): the hour the master keeps.
pub const MAX_HISTORY_WINDOW_SECS: u32 = 3600;

/// `GET /queues/{name}/history` and `GET /activity` query string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryWindow {
    /// How far back to look, in seconds, 10..=3600; 3600 when absent. The points cover it
    /// rounded up to whole 10-second steps.
    #[param(minimum = 10, maximum = 3600, example = 600)]
    pub window: Option<u32>,
}

/// Reply to `GET /queues/{name}/history`: the queue's activity, one point per 10-second step,
/// oldest first.
///
/// Kept in the memory of the master that answers: the series starts empty when that master
/// starts (no point is older than its start), and with several masters sharing a PostgreSQL
/// store the transition counts are those this master decided, while `queued` and `in_flight`
/// are the shared store's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueHistory {
    /// The queue's name.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", example = "default")]
    pub queue: String,
    /// Seconds each point covers (always 10).
    #[schema(minimum = 10, maximum = 10, example = 10)]
    pub step_secs: u32,
    /// The window asked for, in seconds.
    #[schema(minimum = 10, maximum = 3600, example = 3600)]
    pub window_secs: u32,
    /// One point per step of the window since the master started, oldest first; the last is
    /// the current step, still under way. At most 360 (an hour of steps), at least 1.
    #[schema(min_items = 1, max_items = 360)]
    pub points: Vec<ActivityPoint>,
}

/// Reply to `GET /activity`: every queue's activity over one window, each as
/// `GET /queues/{name}/history` answers for it, in the order of `GET /queues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityList {
    /// Every known queue's history (with a scoped token, those of its queues).
    pub queues: Vec<QueueHistory>,
}

/// What happened to a queue's tasks in one 10-second step, and its backlog at the step's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityPoint {
    /// The start of the step (RFC 3339), a multiple of 10 seconds of the master's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Tasks accepted into the queue (single and batch submissions; a replayed idempotency key
    /// is not counted again).
    pub submitted: u64,
    /// Leases granted (pulled and pushed alike).
    pub leased: u64,
    /// Results that succeeded.
    pub succeeded: u64,
    /// Failed results that gave the task up (no attempt left, or `retry: false`).
    pub failed: u64,
    /// Failed results that put the task back for another attempt.
    pub retried: u64,
    /// Leases that expired before a result, whether the task went back to its queue or, out of
    /// attempts, failed (counted here only, not under `failed`).
    pub expired: u64,
    /// Tasks queued (ready or not) at the step's end; for the current step, now.
    pub queued: u64,
    /// Tasks leased at the step's end; for the current step, now.
    pub in_flight: u64,
}
