//! The master's own record of a task, shared by the engine (which decides) and the store (which
//! keeps). Times are milliseconds since the Unix epoch, as read from the engine's clock.

pub mod history;

use common::{LeaseId, TaskId, TaskState};
use serde_json::Value;

pub use history::History;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Everything the master knows about one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub queue: String,
    pub state: TaskState,
    pub payload: Value,
    pub priority: i32,
    /// Leases granted so far; a released lease gives its attempt back.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Lease length used when a worker asks for none.
    pub default_lease_ms: i64,
    pub created_at: Millis,
    pub run_at: Millis,
    pub updated_at: Millis,
    /// The current lease while `state` is `leased`; afterwards the last one, kept so that a
    /// worker re-sending an accepted result is recognised and a stale one is told why it lost.
    pub lease: Option<LeaseRecord>,
    /// How `lease` ended; `None` while it is live.
    pub lease_end: Option<LeaseEnd>,
    pub cancel_requested: bool,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// The worker whose result finished the task.
    pub completed_by: Option<String>,
    pub idempotency_key: Option<String>,
    /// Tasks with the same key share the queue's `key_limit`, and take turns with other keys.
    pub concurrency_key: Option<String>,
    /// The leases before `lease`, and what fencing refused for any lease.
    pub history: History,
    /// Labels to find the task by, sorted and without duplicates; fixed at submission.
    pub tags: Vec<String>,
}

/// One lease of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub id: LeaseId,
    pub worker_id: String,
    pub expires_at: Millis,
    /// Length of the lease, reused when a heartbeat asks for no other.
    pub lease_ms: i64,
    /// The task's attempt count when the lease was granted.
    pub attempt: u32,
    pub leased_at: Millis,
    /// Heartbeats accepted for the lease.
    pub heartbeats: u32,
    pub last_heartbeat_at: Option<Millis>,
    /// When the lease ended (the task's `lease_end` says how); `None` while it is live.
    pub ended_at: Option<Millis>,
}

/// How a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    Succeeded,
    Failed,
    Expired,
    Released,
    Cancelled,
}

impl LeaseEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseEnd::Succeeded => "succeeded",
            LeaseEnd::Failed => "failed",
            LeaseEnd::Expired => "expired",
            LeaseEnd::Released => "released",
            LeaseEnd::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<LeaseEnd> {
        [
            LeaseEnd::Succeeded,
            LeaseEnd::Failed,
            LeaseEnd::Expired,
            LeaseEnd::Released,
            LeaseEnd::Cancelled,
        ]
        .into_iter()
        .find(|end| end.as_str() == s)
    }
}

/// A worker's request to lease ready tasks, as the engine checked it.
#[derive(Debug, Clone)]
pub struct LeaseQuery {
    pub worker_id: String,
    pub queues: Vec<String>,
    pub max_tasks: u32,
    /// Lease length for every task; each task's default when `None`.
    pub lease_ms: Option<i64>,
}

/// What the engine needs to know of a queue that had nothing to lease, to tell whether it is
/// drained (the engine's `rules::drained`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBacklog {
    pub sealed: bool,
    /// A task of the queue is queued, ready or not.
    pub queued: bool,
    /// A task of the queue is leased.
    pub leased: bool,
}

/// A task as the engine hands it to the store for insertion.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub queue: String,
    pub payload: Value,
    pub priority: i32,
    pub max_attempts: u32,
    pub default_lease_ms: i64,
    pub created_at: Millis,
    pub run_at: Millis,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    /// Sorted and without duplicates (the engine's validation makes them so).
    pub tags: Vec<String>,
}

/// Why a change to a task was refused: each is a `409` with its own problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The lease passed its deadline; the task waits for (or is back with) another worker.
    #[error("the lease expired before this request arrived")]
    LeaseExpired,
    /// The task is now leased to another worker under a newer lease.
    #[error("the task is leased to another worker under a newer lease")]
    LeaseSuperseded,
    /// The task already finished (possibly by another worker's result).
    #[error("the task is already {}", .0.as_str())]
    TaskFinished(TaskState),
    /// A result was already recorded for this lease.
    #[error("this lease already ended with a result")]
    LeaseEnded,
    /// The worker handed the task back with this lease.
    #[error("the lease was released")]
    LeaseReleased,
    /// This lease's result was already recorded with another outcome.
    #[error("a different result was already recorded for this lease")]
    ResultMismatch,
    /// The lease belongs to another worker id.
    #[error("the lease belongs to another worker")]
    WrongWorker,
    /// The operation needs the task in another state.
    #[error("the task is {}; this needs it {}", .0.as_str(), .1)]
    WrongState(TaskState, &'static str),
    /// The queue is sealed and takes no new tasks.
    #[error("queue `{0}` is sealed")]
    QueueSealed(String),
    /// An idempotency key was sent again with a different submission.
    #[error("idempotency key `{0}` was used for task {1} with a different {2}")]
    IdempotencyKeyReused(String, TaskId, &'static str),
}

impl Conflict {
    /// A short stable name: the problem type's suffix and the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Conflict::LeaseExpired => "lease-expired",
            Conflict::LeaseSuperseded => "lease-superseded",
            Conflict::TaskFinished(_) => "task-finished",
            Conflict::LeaseEnded => "lease-ended",
            Conflict::LeaseReleased => "lease-released",
            Conflict::ResultMismatch => "result-mismatch",
            Conflict::WrongWorker => "wrong-worker",
            Conflict::WrongState(..) => "wrong-state",
            Conflict::QueueSealed(_) => "queue-sealed",
            Conflict::IdempotencyKeyReused(..) => "idempotency-key-reused",
        }
    }
}

/// A queue's flow-control settings, as stored. The default limits nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSettings {
    /// Paused by an operator until resumed.
    pub paused: bool,
    /// Paused until this time by a worker's failed result (`pause_queue_secs`).
    pub paused_until: Option<Millis>,
    /// At most this many tasks of the queue leased at once.
    pub max_in_flight: Option<u32>,
    /// Leases granted per second, as a token bucket.
    pub rate_limit: Option<RateLimit>,
    /// At most this many tasks leased at once per concurrency key.
    pub key_limit: Option<u32>,
}

impl QueueSettings {
    /// Whether a lease needs the queue's tasks leased: for an in-flight cap, and for a key limit
    /// (no key can reach a limit above its queue's count, so keys are counted only when the
    /// queue's count says one may have).
    pub fn counts_leases(&self) -> bool {
        self.max_in_flight.is_some() || self.key_limit.is_some()
    }
}

/// A token bucket: `burst` tokens at most, refilled at `per_sec`; each lease takes one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: u32,
}

/// The stored state of a queue's token bucket: `tokens` as of `at`. A queue with a rate limit
/// and no bucket yet has a full one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at: Millis,
}

/// What a lease needs to know of a queue that has settings, read (and on a shared database,
/// locked) in the lease's transaction: the rules decide from it how much the queue admits.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub queue: String,
    pub settings: QueueSettings,
    pub bucket: Option<Bucket>,
    /// Tasks of the queue leased right now.
    pub in_flight: u32,
    /// The last concurrency key a lease of the queue was served from (the key rotation goes
    /// on after it); `None` starts the rotation over.
    pub cursor: Option<String>,
}

/// Where a leased task came from: the tasks without a key (leased in priority order), or a
/// concurrency key's lane of the key rotation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    Unkeyed,
    Key(String),
}

/// One concurrency key's best ready tasks (their ids, or whatever a store reads), best first,
/// as a store read them for the key rotation: no more than the key's [room](Admission::room).
#[derive(Debug, Clone)]
pub struct LaneTasks<T> {
    pub key: String,
    pub tasks: Vec<T>,
}

/// How much a queue's gate admits to one lease, as [`limits::admit`](crate::engine::limits::admit)
/// decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Tasks the queue may lease now (its own limits; the request's `max_tasks` is apart).
    pub tasks: u32,
    /// With a key limit: at most this many leased per concurrency key.
    pub per_key: Option<u32>,
    /// When the gate admits nothing now but will by itself later (a token's arrival, a timed
    /// pause's end): when a waiting lease request should look again.
    pub reopens_at: Option<Millis>,
}

impl Admission {
    /// How many more tasks of a concurrency key may be leased while `in_flight` of them are:
    /// the key limit's room, or without one, what the queue admits.
    pub fn room(&self, in_flight: u32) -> u32 {
        self.per_key
            .map_or(self.tasks, |per_key| per_key.saturating_sub(in_flight))
            .min(self.tasks)
    }
}

/// What a lease leaves of a gate, written in the lease's commit.
#[derive(Debug, Clone, PartialEq)]
pub struct GateAfter {
    pub bucket: Option<Bucket>,
    pub cursor: Option<String>,
    /// The bucket holds less than a token: when the next one arrives (a waiting lease request
    /// should look again then).
    pub reopens_at: Option<Millis>,
}

/// One operator action as the audit log stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Given by the store when recorded; ignored when recording.
    pub id: i64,
    pub at: Millis,
    /// The token's name.
    pub actor: String,
    pub action: String,
    /// The request's method and path.
    pub target: String,
    /// The status code it was answered with.
    pub status: u16,
}

/// One master's heartbeat row: which master, and when it started and last wrote the row, by
/// the engine's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRecord {
    pub id: String,
    pub version: String,
    pub started_at: Millis,
    pub seen_at: Millis,
}

/// The tasks one worker holds of one queue, as their leases in the store show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedBy {
    pub worker_id: String,
    pub queue: String,
    /// Tasks leased to the worker right now.
    pub tasks: u64,
    /// The latest start of one of these leases.
    pub last_leased_at: Millis,
    /// The latest heartbeat accepted for one of them.
    pub last_beat_at: Option<Millis>,
}
