//! What a task actually runs. A [`Handler`] turns a task's payload into a result; the runner
//! around it takes care of leases, heartbeats, retries and cancellation.

mod builtin;
mod exec;
mod sidecar;

use std::sync::Arc;

use async_trait::async_trait;
use common::{LeaseId, TaskId};
use serde_json::Value;

pub use builtin::{Process, Uppercase};
pub use exec::Exec;
pub use sidecar::Sidecar;

/// One task as a handler sees it.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: TaskId,
    pub lease_id: LeaseId,
    pub queue: String,
    pub attempt: u32,
    pub worker_id: String,
    pub payload: Value,
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    /// Whether another attempt could succeed (a bad payload will not).
    pub retry: bool,
    /// The downstream asked to be left alone this long (a `429` or `503` with `Retry-After`):
    /// the master pauses the task's queue for as long, for every worker.
    pub pause_queue_secs: Option<u64>,
}

impl TaskError {
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retry: true,
            pause_queue_secs: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retry: false,
            pause_queue_secs: None,
        }
    }
}

/// Code that runs tasks. Implement it to plug your own work into the worker's loop; a handler
/// is dropped mid-run when its lease is lost or cancelled, so it should hold its resources in
/// values that clean up on drop (`tokio::process::Command::kill_on_drop`, say).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, task: &TaskContext) -> Result<Value, TaskError>;
}

/// Builds a handler from its `--handler` spelling.
pub fn from_spec(spec: &str) -> Result<Arc<dyn Handler>, String> {
    if let Some(command) = spec.strip_prefix("exec:") {
        return Ok(Arc::new(Exec::new(command)));
    }
    if let Some(url) = spec.strip_prefix("http:") {
        return Ok(Arc::new(Sidecar::new(url)?));
    }
    match spec {
        "uppercase" => Ok(Arc::new(Uppercase)),
        "process" => Ok(Arc::new(Process)),
        other => Err(format!(
            "unknown handler `{other}`: expected uppercase, process, exec:COMMAND or http:URL"
        )),
    }
}
