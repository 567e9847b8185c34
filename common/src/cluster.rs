//! Who serves and who works: the masters sharing a store (`GET /masters`), and the pulling
//! workers they have heard from (`GET /workers`' `pull_workers`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Which store the masters keep their tasks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// One SQLite file: one master.
    Sqlite,
    /// A PostgreSQL database, which several masters may share.
    Postgres,
}

/// Reply to `GET /masters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MasterList {
    /// The store every listed master uses.
    pub store: StoreKind,
    /// The masters that wrote their heartbeat to the store lately (within three heartbeat
    /// periods of 10 s), and always the one answering; newest start first.
    pub masters: Vec<MasterInfo>,
}

/// One master, as its heartbeat row in the store says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MasterInfo {
    /// The master's instance id: its host name, its process id and a random part.
    pub id: String,
    /// The master's version.
    pub version: String,
    /// When the master started, by the store's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the master last wrote its heartbeat to the store (for the one answering, before it
    /// has written one: now).
    #[serde(with = "time::serde::rfc3339")]
    pub seen_at: OffsetDateTime,
    /// Seconds since the master started, as of this answer.
    pub uptime_secs: u64,
    /// Whether this is the master that answered the request.
    pub this: bool,
}

/// A worker's request that the master heard last from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerRequest {
    /// `POST /tasks/lease` (which may carry results too); from the store: the start of its
    /// latest lease.
    Lease,
    /// `POST /tasks/{id}/heartbeat`; from the store: its latest heartbeat.
    Heartbeat,
    /// `POST /tasks/{id}/result` or `POST /tasks/results`.
    Result,
    /// `POST /tasks/{id}/release`.
    Release,
}

/// A worker that pulls its tasks (`POST /tasks/lease`), as the master answering saw it and as
/// the store's leases show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullWorker {
    /// The `worker_id` its requests carry.
    pub id: String,
    /// The queues it last asked this master to lease from, and those of the tasks it holds;
    /// for a token limited to queue prefixes, only those in its scope.
    pub queues: Vec<String>,
    /// Tasks leased to it right now, whichever master leased them (in the token's scope).
    pub in_flight: u32,
    /// When it was last heard from: the latest of its last request this master accepted and
    /// the latest lease start or heartbeat of the tasks it holds.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// What it was last heard from by.
    pub last_seen: WorkerRequest,
}
