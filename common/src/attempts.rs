//! A task's attempt history, as `GET /tasks/{id}/attempts` reports it: every lease in order,
//! how it ended, and each worker request that fencing refused for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{LeaseId, TaskId};

/// Reply to `GET /tasks/{id}/attempts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskAttempts {
    /// The task's id.
    pub task_id: TaskId,
    /// Attempts older than those listed, summarised (the master keeps `--history-kept`
    /// attempts one by one per task); `null` when every attempt is listed.
    #[schema(required)]
    pub earlier: Option<EarlierAttempts>,
    /// Every lease the task was given, oldest first; the last one may be live (no `end`).
    pub attempts: Vec<AttemptInfo>,
    /// Refused requests for leases not listed: summarised attempts, or lease ids the task
    /// never had.
    pub refused: Vec<RefusedRequest>,
}

/// One lease of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptInfo {
    /// The task's attempt count during the lease. A released lease gives its attempt back, so
    /// the lease after it has the same number.
    pub attempt: u32,
    /// The lease's id: the fence every request of its worker carried.
    pub lease_id: LeaseId,
    /// The worker the lease was granted to.
    pub worker_id: String,
    /// When the lease was granted.
    #[serde(with = "time::serde::rfc3339")]
    pub leased_at: OffsetDateTime,
    /// Heartbeats accepted for the lease.
    pub heartbeats: u32,
    /// The last heartbeat accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required)]
    pub last_heartbeat_at: Option<OffsetDateTime>,
    /// While the lease is live: when it runs out unless renewed.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required)]
    pub expires_at: Option<OffsetDateTime>,
    /// When the lease ended; `null` while it is live.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required)]
    pub ended_at: Option<OffsetDateTime>,
    /// How the lease ended; `null` while it is live.
    #[schema(required)]
    pub end: Option<AttemptEnd>,
    /// The failure the lease ended with.
    #[schema(required)]
    pub error: Option<String>,
    /// Requests refused for this lease, oldest first.
    pub refused: Vec<RefusedRequest>,
}

/// How a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    /// Its worker's result finished the task.
    Succeeded,
    /// Its worker reported a failure (the task was retried or failed for good).
    Failed,
    /// It ran out without a result.
    Expired,
    /// Its worker handed the task back unfinished; the attempt was not counted.
    Released,
    /// It ended because an operator cancelled the task.
    Cancelled,
}

/// A lease holder's request that fencing refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RefusedRequest {
    /// The lease the request named.
    pub lease_id: LeaseId,
    /// When it was refused.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The request's worker, or else the one the lease was granted to.
    #[schema(required)]
    pub worker_id: Option<String>,
    /// Which request it was.
    pub request: RefusedKind,
    /// Why, as the `409`'s problem type names it: `lease-expired`, `lease-superseded`,
    /// `task-finished`, `lease-ended`, `lease-released`, `result-mismatch`, `wrong-worker`.
    #[schema(example = "lease-expired")]
    pub reason: String,
}

/// Which request of a lease holder was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusedKind {
    /// `POST /tasks/{id}/result` (or a result carried by a lease request).
    Result,
    /// `POST /tasks/{id}/heartbeat`.
    Heartbeat,
    /// `POST /tasks/{id}/release`.
    Release,
}

/// Attempts and refusals no longer listed one by one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EarlierAttempts {
    /// Attempts summarised.
    pub attempts: u32,
    /// How many of them ended each way (`succeeded`, `failed`, `expired`, `released`,
    /// `cancelled`).
    pub ends: BTreeMap<String, u32>,
    /// When the first of them was leased.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required)]
    pub first_leased_at: Option<OffsetDateTime>,
    /// When the last of them ended.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required)]
    pub last_ended_at: Option<OffsetDateTime>,
    /// Refused requests no longer listed.
    pub refused: u32,
}
