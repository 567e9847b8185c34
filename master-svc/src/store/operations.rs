//! What the stores keep of a bulk operation (`POST /tasks/bulk`), and what one chunk of it asks
//! of them. The engine's runner (`engine::bulk`) decides; a store selects, locks and writes.

use std::sync::Arc;

use common::{BulkAction, BulkFilter, OperationState, TaskId};

use super::Updated;
use crate::model::{Conflict, Millis, TaskRecord};

/// A bulk operation as the engine hands it to the store.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub action: BulkAction,
    pub filter: BulkFilter,
    pub limit: Option<u64>,
    pub dry_run: bool,
    pub started_at: Millis,
}

/// A bulk operation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    pub id: i64,
    pub action: BulkAction,
    pub filter: BulkFilter,
    pub limit: Option<u64>,
    pub dry_run: bool,
    pub state: OperationState,
    pub matched: u64,
    pub done: u64,
    pub skipped: u64,
    pub errors: u64,
    pub error: Option<String>,
    /// The last task id gone through: the next chunk starts after it.
    pub cursor: i64,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
}

/// The engine's rule for each task of a chunk that it would change: the record as it should
/// become, or why not.
pub type Rule = Arc<dyn Fn(&TaskRecord) -> Result<TaskRecord, Conflict> + Send + Sync>;

/// The engine's rule for each task of a chunk.
#[derive(Clone)]
pub enum BulkChange {
    /// Store what the rule returns; a refusal (or no change) skips the task.
    Update(Rule),
    /// Delete the task if the rule says so; otherwise skip it.
    Delete(fn(&TaskRecord) -> bool),
    /// Change nothing (a dry run): every task is only counted.
    Count,
}

impl std::fmt::Debug for BulkChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BulkChange::Update(_) => "Update",
            BulkChange::Delete(_) => "Delete",
            BulkChange::Count => "Count",
        })
    }
}

/// One chunk of an operation: its tasks, what to do to them, and where the operation stands
/// after them.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub operation: i64,
    pub owner: String,
    pub ids: Vec<TaskId>,
    pub change: BulkChange,
    /// The last id of the chunk (of those looked at, matching or not).
    pub cursor: i64,
    /// Whether the operation ends with this chunk (`done`).
    pub last: bool,
    pub now: Millis,
    /// The owner's hold, renewed to this time.
    pub until: Millis,
}

/// What a chunk did.
#[derive(Debug, Clone)]
pub struct ChunkDone {
    /// The tasks changed (a refusal or an unchanged record is not here).
    pub updated: Vec<Updated>,
    /// The tasks deleted, as they were.
    pub deleted: Vec<TaskRecord>,
    /// The operation after the chunk.
    pub operation: OperationRecord,
}

impl ChunkDone {
    /// Tasks the chunk acted on.
    pub fn done(&self) -> u64 {
        (self.updated.len() + self.deleted.len()) as u64
    }
}
