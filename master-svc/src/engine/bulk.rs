//! Bulk operations (`POST /tasks/bulk`): accepted at once as a stored operation, then worked
//! through by a runner on one master, in chunks.
//!
//! Each chunk is the next [`CHUNK`] matching tasks after the operation's cursor (keyset by id,
//! through the listing's search, so that it always moves on and ends), changed by the same rule
//! as the single-task endpoint ([`rules::on_retry`], [`rules::on_cancel`], [`rules::deletable`])
//! and written with the operation's progress in one commit: after a crash the operation resumes
//! from its stored cursor, and no chunk is counted twice or lost.
//!
//! Which master runs an operation: the one that holds it, a hold with an expiry ([`HOLD`])
//! renewed by each chunk's commit and checked in it. A master that stops or dies stops renewing;
//! once the hold runs out another master (or this one, started again) claims the operation and
//! goes on from its cursor. A hold rather than a row lock held across chunks (`FOR UPDATE SKIP
//! LOCKED` in a long transaction): no transaction stays open for the length of an operation, and
//! a master that lost its hold finds out at its next chunk, which changes nothing then.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{BulkAction, BulkRequest, Operation, OperationList, TaskId, TaskState};

use super::find::{self, Selection};
use super::{Engine, EngineError, Result, rules, validate, view};
use crate::store::{
    BulkChange, Chunk, NewOperation, OperationRecord, StoreError, TaskFilter, Updated, Wake,
};

/// Tasks per chunk: each chunk is one commit, between which leases and results go on.
const CHUNK: u32 = 500;
/// How long a master's hold on an operation lasts unless a chunk renews it.
const HOLD: Duration = Duration::from_secs(30);
/// How often an idle runner looks for operations to take over (a new one here wakes it at once).
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// Tries of a chunk the store failed before the operation is marked failed.
const TRIES: u32 = 3;

impl Engine {
    /// Accepts a bulk action: stores it as a running operation, which the runner then carries out.
    pub async fn start_bulk(&self, request: BulkRequest) -> Result<Operation> {
        find::selection(request.filter.clone())?;
        if let Some(limit) = request.limit {
            validate::in_range("limit", limit, 1, i64::MAX as u64)?;
        }
        let record = self
            .store
            .create_operation(NewOperation {
                action: request.action,
                filter: request.filter,
                limit: request.limit,
                dry_run: request.dry_run,
                started_at: self.clock.now_ms(),
            })
            .await?;
        // Audit log: a bulk operation's start (its id, action, filter, limit, dry_run) is to be
        // recorded here, with who asked for it.
        tracing::info!(
            operation = record.id,
            action = record.action.as_str(),
            "bulk operation accepted"
        );
        self.bulk.new_operation.notify_one();
        Ok(view::operation(record))
    }

    pub async fn operation(&self, id: i64) -> Result<Operation> {
        let record = self.store.operation(id).await?;
        record
            .map(view::operation)
            .ok_or(EngineError::OperationNotFound(id))
    }

    pub async fn operations(&self, limit: Option<u32>) -> Result<OperationList> {
        let limit = validate::in_range("limit", limit.unwrap_or(20), 1, 100)?;
        let records = self.store.operations(limit).await?;
        let operations = records.into_iter().map(view::operation).collect();
        Ok(OperationList { operations })
    }

    /// Runs until shutdown: takes running operations no master holds, one at a time, and works
    /// through them.
    pub async fn run_operations(self: Arc<Self>) {
        while !self.shutdown.is_cancelled() {
            let now = self.clock.now_ms();
            let until = now + HOLD.as_millis() as i64;
            match self
                .store
                .claim_operation(self.bulk.owner.clone(), now, until)
                .await
            {
                Ok(Some(operation)) => self.run_operation(operation).await,
                Ok(None) => self.idle().await,
                Err(e) => {
                    tracing::warn!(error = %crate::chain::Chain(&e), "cannot look for bulk operations");
                    self.idle().await;
                }
            }
        }
    }

    async fn idle(&self) {
        tokio::select! {
            () = self.bulk.new_operation.notified() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Works through `operation` from its cursor until it ends, this master loses it, or the
    /// master stops (the hold then runs out, and the operation resumes where it stood).
    async fn run_operation(&self, mut operation: OperationRecord) {
        let selection = match find::selection(operation.filter.clone()) {
            Ok(selection) => selection,
            Err(e) => return self.fail(&operation, e.to_string(), 0).await,
        };
        let change = change(operation.action, operation.dry_run, self.clock.clone());
        let mut tries = 0;
        while !self.shutdown.is_cancelled() {
            let chunk = match self
                .next_chunk(&operation, &selection, change.clone())
                .await
            {
                Ok(chunk) => chunk,
                Err(e) => return self.fail(&operation, e.to_string(), 0).await,
            };
            let size = chunk.ids.len() as u64;
            match self.store.run_chunk(chunk).await {
                Ok(Some(done)) => {
                    tries = 0;
                    self.announce_chunk(&done.updated);
                    operation = done.operation;
                    if operation.finished_at.is_some() {
                        // Audit log: a bulk operation's end (its id and final counters) is to be
                        // recorded here.
                        tracing::info!(
                            operation = operation.id,
                            done = operation.done,
                            "bulk operation done"
                        );
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) if tries + 1 < TRIES => {
                    tries += 1;
                    tracing::warn!(operation = operation.id, error = %crate::chain::Chain(&e), "a bulk chunk failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200 << tries)).await;
                }
                Err(e) => {
                    return self
                        .fail(&operation, format!("the store failed: {e}"), size)
                        .await;
                }
            }
        }
    }

    /// The next chunk of `operation`: the matching tasks after its cursor, up to [`CHUNK`] and
    /// what is left of its limit; the last one when fewer match.
    async fn next_chunk(
        &self,
        operation: &OperationRecord,
        selection: &Selection,
        change: BulkChange,
    ) -> std::result::Result<Chunk, StoreError> {
        let room = operation.limit.map_or(u64::from(CHUNK), |limit| {
            limit.saturating_sub(operation.matched)
        });
        let size = room.min(u64::from(CHUNK)) as u32;
        let ids: Vec<TaskId> = if size == 0 {
            Vec::new()
        } else {
            let filter = TaskFilter {
                queue: selection.queue.clone(),
                state: selection.state,
                search: selection.search.clone(),
                after_id: Some(TaskId(operation.cursor)),
                limit: size,
                bodies: false,
                max_bytes: usize::MAX,
            };
            let page = self.store.list(filter).await?;
            page.tasks.into_iter().map(|task| task.id).collect()
        };
        let now = self.clock.now_ms();
        Ok(Chunk {
            operation: operation.id,
            owner: self.bulk.owner.clone(),
            cursor: ids.last().map_or(operation.cursor, |id| id.0),
            last: (ids.len() as u64) < u64::from(size)
                || operation
                    .limit
                    .is_some_and(|limit| operation.matched + ids.len() as u64 >= limit),
            ids,
            change,
            now,
            until: now + HOLD.as_millis() as i64,
        })
    }

    async fn fail(&self, operation: &OperationRecord, error: String, errors: u64) {
        tracing::error!(operation = operation.id, %error, "bulk operation failed");
        let now = self.clock.now_ms();
        let owner = self.bulk.owner.clone();
        // Audit log: a bulk operation's end (failed, and why) is to be recorded here.
        if let Err(e) = self
            .store
            .fail_operation(operation.id, owner, error, errors, now)
            .await
        {
            // Still running as stored: it resumes once the hold runs out.
            tracing::error!(operation = operation.id, error = %crate::chain::Chain(&e), "cannot mark a bulk operation failed");
        }
    }

    /// Wakes waiters for the tasks a chunk queued (one wake per queue, not one per task) and
    /// for sealed queues it may have drained.
    fn announce_chunk(&self, updated: &[Updated]) {
        let now = self.clock.now_ms();
        let mut ready: HashMap<&str, usize> = HashMap::new();
        let mut drained: Vec<&str> = Vec::new();
        for change in updated {
            let task = &change.after;
            if task.state == TaskState::Queued && task.run_at <= now {
                *ready.entry(task.queue.as_str()).or_default() += 1;
            } else if task.state.is_terminal() && change.queue_sealed {
                drained.push(task.queue.as_str());
            }
        }
        for (queue, count) in ready {
            self.wake(queue, Wake::Tasks(count));
        }
        drained.dedup();
        for queue in drained {
            self.wake(queue, Wake::All);
        }
    }
}

/// The engine's rule for each task of an `action`'s chunks: the single-task endpoint's.
fn change(action: BulkAction, dry_run: bool, clock: Arc<dyn crate::clock::Clock>) -> BulkChange {
    if dry_run {
        return BulkChange::Count;
    }
    match action {
        BulkAction::Retry => {
            BulkChange::Update(Arc::new(move |task| rules::on_retry(task, clock.now_ms())))
        }
        BulkAction::Cancel => {
            BulkChange::Update(Arc::new(move |task| rules::on_cancel(task, clock.now_ms())))
        }
        BulkAction::Delete => BulkChange::Delete(rules::deletable),
    }
}

/// This master's part in bulk operations.
#[derive(Debug)]
pub(super) struct Bulk {
    /// Who holds an operation this master runs: unique to this process (the master's instance
    /// id, which `GET /masters` lists).
    owner: String,
    /// Wakes the runner when this master accepts an operation.
    new_operation: tokio::sync::Notify,
}

impl Bulk {
    pub(super) fn new(owner: String) -> Bulk {
        Bulk {
            owner,
            new_operation: tokio::sync::Notify::new(),
        }
    }
}
