//! Push mode: the master hands a leased task to a worker's `POST /do-task`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::cluster::PullWorker;
use crate::lease::Outcome;
use crate::queue::QueueName;

/// Reply to `POST /do-task`: how the task went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DoTaskReply {
    /// The worker that ran the task.
    pub worker_id: String,
    /// How the attempt ended.
    pub outcome: Outcome,
    /// What the task produced, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failure: whether the worker thinks another attempt could succeed.
    pub retry: bool,
    /// For a failure: pause the task's queue this long (the downstream asked to back off); as
    /// a pulled task's result's `pause_queue_secs`.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 604800)]
    pub pause_queue_secs: Option<u64>,
}

/// Reply to `POST /do-task` from a worker started with `--push-async`: it took the task and will
/// report the result to the master itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({ "accepted": true }))]
pub struct DoTaskAccepted {
    /// Always true: the worker took the task.
    pub accepted: bool,
}

/// Header on `POST /do-task` naming the worker id the task's lease belongs to. A worker that
/// answers `202` and reports the result itself must report under this id.
pub const LEASE_WORKER_HEADER: &str = "leasehold-worker-id";

/// What a push worker's registered `url` matches. Every URL it admits is one the master can
/// parse and push to, and the master refuses every other (so the schema and the master agree;
/// schemathesis found a schema-valid URL refused before). Its parts: a host name whose labels
/// are letters and digits joined by single hyphens, the last starting with a letter (a last
/// label of digits, or `0x` and hex, is read as an IPv4 number, and `xn--` as punycode); or a
/// dotted IPv4 address; or a bracketed IPv6 address; a port of 1 to 65535; a path.
pub const WORKER_URL_PATTERN: &str = r"^https?://(([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|\[(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))\])(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~/-]*)?$";

/// `POST /workers`: a worker announcing itself for push dispatch. Re-sent periodically (at
/// least every third of `ttl_secs` from the reply) to stay registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorker {
    /// The worker's id, unique among push workers.
    #[schema(min_length = 1, max_length = 200)]
    pub id: String,
    /// Base URL the master reaches the worker at, e.g. `http://10.0.0.7:8081`:
    /// `http://` or `https://`, a host name (its last label starting with a letter), an IPv4
    /// address or a bracketed IPv6 address, an optional port, and an optional path of
    /// `A-Z a-z 0-9 . _ ~ / -`; no user, query or fragment.
    #[schema(
        pattern = r"^https?://(([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|\[(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))\])(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~/-]*)?$"
    )]
    pub url: String,
    /// Tasks the master may push to it at once; 1 when absent.
    #[serde(
        default,
        deserialize_with = "crate::integer::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 1024)]
    pub capacity: Option<u32>,
    /// Queues it serves; `["default"]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 32, value_type = Option<Vec<QueueName>>)]
    pub queues: Option<Vec<String>>,
}

/// How the master learned of a push worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: String,
    /// The worker's base URL; the master posts to its `/do-task`.
    pub url: String,
    /// Tasks the master pushes to it at once, at most.
    pub capacity: u32,
    /// The queues it takes tasks from.
    pub queues: Vec<String>,
    /// How the master came to know it.
    pub source: WorkerSource,
    /// False while out of rotation after repeated failures, until a health check passes.
    pub healthy: bool,
    /// Tasks pushed to it and not yet answered.
    pub in_flight: u32,
    /// For a registered worker: how long a registration lasts without renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// `GET /workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    /// Every push worker.
    pub workers: Vec<WorkerInfo>,
    /// The pulling workers heard from lately (`--pull-worker-seen-secs`) or holding leases now,
    /// by id. Always sent; read as empty from a master older than the field.
    #[serde(default)]
    #[schema(required = true)]
    pub pull_workers: Vec<PullWorker>,
}
