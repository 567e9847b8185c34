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
