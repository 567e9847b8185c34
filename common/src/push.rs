//! Push mode: the master hands a leased task to a worker's `POST /do-task`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lease::Outcome;

/// Reply to `POST /do-task`: how the task went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoTaskReply {
    pub worker_id: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failure: whether the worker thinks another attempt could succeed.
    pub retry: bool,
}

/// Header on `POST /do-task` naming the worker id the task's lease belongs to. A worker that
/// answers `202` and reports the result itself must report under this id.
pub const LEASE_WORKER_HEADER: &str = "leasehold-worker-id";

/// `POST /workers`: a worker announcing itself for push dispatch. Re-sent periodically (at
/// least every third of `ttl_secs` from the reply) to stay registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorker {
    pub id: String,
    /// Base URL the master reaches the worker at, e.g. `http://10.0.0.7:8081`.
    pub url: String,
    /// Tasks the master may push to it at once; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Queues it serves; `["default"]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
}

/// How the master learned of a push worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerSource {
    /// `--push-worker` on the master's command line.
    Static,
    /// `POST /workers`.
    Registered,
    /// An address of the `--push-dns` name.
    Dns,
}

/// A push worker as the master sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub url: String,
    pub capacity: u32,
    pub queues: Vec<String>,
    pub source: WorkerSource,
    /// False while out of rotation after repeated failures, until a health check passes.
    pub healthy: bool,
    pub in_flight: u32,
    /// For a registered worker: how long a registration lasts without renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// `GET /workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}
