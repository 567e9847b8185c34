//! Durable storage of tasks: one trait, one module per backend.
//!
//! The store keeps and atomically changes what the engine decided; it never decides policy.
//! Conditional changes take a closure from the engine ([`Decide`]) that is run inside the
//! store's transaction on the current record, so "read, decide, write" cannot race.

mod operations;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use common::{StateCounts, TaskId, TaskState};

pub use operations::{BulkChange, Chunk, ChunkDone, NewOperation, OperationRecord, Rule};

use crate::model::{
    Admission, AuditRecord, Bucket, Conflict, Gate, GateAfter, Lane, LaneTasks, LeaseQuery,
    LeasedBy, MasterRecord, Millis, NewTask, QueueBacklog, QueueSettings, TaskRecord,
};

/// The engine's rule for one task: the record as it should become, or why not.
pub type Decide = Box<dyn FnOnce(&TaskRecord) -> Result<TaskRecord, Conflict> + Send>;

/// The engine's rule for a submission whose idempotency key names an existing task.
pub type Resubmit = fn(&NewTask, &TaskRecord) -> Result<(), Conflict>;

/// The engine's rule for each task a lease takes: the record leased to the query's worker at the
/// time given.
pub type Grant = fn(TaskRecord, &LeaseQuery, Millis) -> TaskRecord;

/// The engine's key rotation: up to the number given of the lanes' tasks, each with its lane,
/// in the order dealt.
pub type Deal = fn(Vec<LaneTasks<TaskId>>, u32) -> Vec<(Lane, TaskId)>;

/// The engine's rules a lease applies: [`Grant`] to each task it takes, and to each queue that
/// has settings, `admit` (how many of its tasks it admits), `deal` (the key rotation) and
/// `settle` (the gate's state after the lease), all in the lease's transaction.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRules {
    pub grant: Grant,
    pub admit: fn(&Gate, Millis) -> Admission,
    pub deal: Deal,
    pub settle: fn(&Gate, Millis, &[Lane]) -> GateAfter,
}

/// The engine's rule for a change of a queue's settings: the settings as they should become,
/// or why the change is refused (a message for the client).
pub type ChangeSettings = Box<dyn FnOnce(&QueueSettings) -> Result<QueueSettings, String> + Send>;

/// The engine's rule for each expired lease: the record as it should become.
pub type DecideEach = Arc<dyn Fn(&TaskRecord) -> TaskRecord + Send + Sync>;

/// The database's own error behind a [`StoreError`]: shared, since every job of a group that
/// fails together is answered with it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// What went wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No task has this id.
    #[error("task {0} not found")]
    NotFound(TaskId),
    /// The engine's rule refused the change.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The database failed; nothing of this request was committed.
    #[error("the database failed")]
    Database(#[source] Cause),
    /// The store cannot be opened: the message says why and what to do about it.
    #[error("{message}")]
    Unusable {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// The store did not answer in time.
    #[error("the store did not answer within {0:?}")]
    NoAnswer(std::time::Duration),
    /// The store is shut down.
    #[error("the store is closed")]
    Closed,
    /// The engine's rule refused a change of settings: the message says why.
    #[error("{0}")]
    Refused(String),
}

/// A failure of the database (either backend's error), kept as the source.
pub fn db(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Arc::new(e))
}

impl StoreError {
    /// A store that cannot be opened, for `message`'s reason, with no other error behind it.
    pub fn unusable(message: impl Into<String>) -> StoreError {
        StoreError::Unusable {
            message: message.into(),
            source: None,
        }
    }

    /// A store that cannot be opened, for `message`'s reason, caused by `e`.
    pub fn unusable_by(
        message: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Unusable {
            message: message.into(),
            source: Some(Arc::new(e)),
        }
    }
}

/// The outcome of one insertion.
#[derive(Debug, Clone)]
pub struct Inserted {
    pub task: TaskRecord,
    /// False when a task with the same idempotency key already existed.
    pub created: bool,
}

/// The outcome of a lease request.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The tasks leased, each as the engine's [`Grant`] made it.
    pub tasks: Vec<TaskRecord>,
    /// When no task was leased, each queue asked for, in order; otherwise empty.
    pub backlog: Vec<QueueBacklog>,
    /// Queues whose settings hold tasks back until a time ([`Admission::reopens_at`],
    /// [`GateAfter::reopens_at`]): when each should be looked at again.
    pub reopens: Vec<(String, Millis)>,
}

/// The outcome of a conditional change.
#[derive(Debug, Clone)]
pub struct Updated {
    pub before: TaskRecord,
    pub after: TaskRecord,
    /// Whether the task's queue is sealed (its waiters may now be told it is drained).
    pub queue_sealed: bool,
    /// Whether the task's queue has settings (a lease that ends frees a slot a waiter may take).
    pub queue_gated: bool,
}

/// Filter and page of `GET /tasks`.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    pub queue: Option<String>,
    pub state: Option<TaskState>,
    /// The filters beyond queue and state (see [`Search`]).
    pub search: Search,
    pub after_id: Option<TaskId>,
    pub limit: u32,
    /// Whether payloads and results are read; without them each is `null`.
    pub bodies: bool,
    /// Bytes of payloads, results and errors a page holds at most, but always one task.
    pub max_bytes: usize,
}

/// What `GET /tasks` and a bulk operation find tasks by, beyond queue and state; a task must
/// match every one given. Times are the engine's milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub tag: Option<String>,
    /// The worker that finished the task (`completed_by`).
    pub worker_id: Option<String>,
    pub concurrency_key: Option<String>,
    /// `created_at` at or after.
    pub created_after: Option<Millis>,
    /// `created_at` before.
    pub created_before: Option<Millis>,
    /// Finished, with `updated_at` (the time it finished) at or after.
    pub finished_after: Option<Millis>,
    /// `error` contains this text.
    pub error_contains: Option<String>,
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
}

impl Search {
    /// Whether no filter is given: the listing by queue and state alone serves the page.
    pub fn is_empty(&self) -> bool {
        self == &Search::default()
    }
}

/// The labels a task is found by in a search: `t:` and each tag, `k:` and its concurrency key.
pub fn labels(task: &TaskRecord) -> impl Iterator<Item = String> + '_ {
    let tags = task.tags.iter().map(|tag| format!("t:{tag}"));
    tags.chain(task.concurrency_key.iter().map(|key| format!("k:{key}")))
}

/// A page of `GET /tasks`.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<TaskRecord>,
    /// The page ended at `max_bytes`, before `limit`: more may follow its last task.
    pub cut: bool,
}

impl TaskPage {
    /// The first tasks of `sized` (each with its size in bytes) that fit in `max_bytes`, but at
    /// least one: their ids, and whether any was left out.
    pub fn fitting(sized: &[(i64, usize)], max_bytes: usize) -> (Vec<i64>, bool) {
        let mut total = 0;
        let fitting: Vec<i64> = sized
            .iter()
            .enumerate()
            .take_while(|(i, (_, size))| {
                total += size;
                *i == 0 || total <= max_bytes
            })
            .map(|(_, (id, _))| *id)
            .collect();
        let cut = fitting.len() < sized.len();
        (fitting, cut)
    }
}

/// Counts and flags of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    pub name: String,
    pub counts: StateCounts,
    /// `run_at` of the oldest task ready to lease.
    pub oldest_ready_at: Option<Millis>,
    pub sealed: bool,
    pub settings: QueueSettings,
    /// The token bucket as last stored, for a queue with a rate limit.
    pub bucket: Option<Bucket>,
    /// With a key limit: queued tasks whose key has that many tasks leased.
    pub held_by_keys: u64,
}

/// Whom a change may concern: waiting lease requests of the queue, or those waiting for a task
/// to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// This many tasks became ready.
    Tasks(usize),
    /// Every waiter should look again (e.g. a sealed queue may now be drained).
    All,
    /// This task finished.
    Finished(TaskId),
}

/// What another master sharing the store announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// It has just opened the store, and listens for the others' changes from now on.
    Joined,
    /// It changed `queue`, in a way that concerns `wake`.
    Changed { queue: String, wake: Wake },
}

/// A durable home for tasks.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts tasks in one commit; a known idempotency key returns the existing task instead,
    /// if `resubmit` (the engine's rule) accepts the new task as a resubmission of it. Fails (and
    /// inserts nothing) if `resubmit` refuses one, or with [`Conflict::QueueSealed`] if a task
    /// that would be created goes to a sealed queue.
    async fn insert(
        &self,
        tasks: Vec<NewTask>,
        resubmit: Resubmit,
    ) -> Result<Vec<Inserted>, StoreError>;

    /// Chooses up to `max_tasks` tasks ready at `now`, highest priority first, then oldest
    /// `run_at`, and stores each as `rules.grant` leases it. No task is ever handed to two
    /// leasers. A queue with settings is read through its [`Gate`], read (and locked, where
    /// masters share the database) in the same transaction: it gives at most what
    /// `rules.admit` admits, by `rules.deal`'s rotation when there is a key limit, and its gate
    /// is written back as `rules.settle` says, in the lease's commit.
    async fn lease(
        &self,
        query: LeaseQuery,
        now: Millis,
        rules: LeaseRules,
    ) -> Result<Leased, StoreError>;

    /// Applies `decide` to the task's current record and stores what it returns, atomically.
    async fn update(&self, id: TaskId, decide: Decide) -> Result<Updated, StoreError>;

    /// Applies `decide` to up to `limit` tasks whose lease expired at or before `now`.
    async fn expire_leases(
        &self,
        now: Millis,
        limit: u32,
        decide: DecideEach,
    ) -> Result<Vec<TaskRecord>, StoreError>;

    /// Deletes up to `limit` finished tasks last changed before `before`; returns how many.
    async fn purge_finished(&self, before: Millis, limit: u32) -> Result<usize, StoreError>;

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError>;

    async fn list(&self, filter: TaskFilter) -> Result<TaskPage, StoreError>;

    /// One queue's record, or every known queue's when `name` is `None`.
    async fn queues(&self, name: Option<String>) -> Result<Vec<QueueRecord>, StoreError>;

    /// Changes a queue's settings as `change` (the engine's rule) says, creating the queue if
    /// unknown, atomically; returns them. A changed rate limit starts with a full bucket.
    async fn change_settings(
        &self,
        name: String,
        change: ChangeSettings,
    ) -> Result<QueueSettings, StoreError>;

    /// Seals or unseals a queue, creating it if unknown.
    async fn set_sealed(&self, name: String, sealed: bool) -> Result<(), StoreError>;

    /// Forgets `name` if it has no task and no setting (is not sealed): it is no longer listed.
    /// Returns whether it was forgotten. A task submitted meanwhile keeps it, or brings it back.
    async fn forget_queue(&self, name: String) -> Result<bool, StoreError>;

    /// Those of `queues` that have a task ready to lease at `now`.
    async fn ready_queues(
        &self,
        queues: Vec<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError>;

    /// Records an audit entry (its `id` is the store's to give), in a commit of its own.
    async fn record_audit(&self, record: AuditRecord) -> Result<(), StoreError>;

    /// Up to `limit` audit entries with an id below `before_id` (all when `None`), newest first.
    async fn audit_page(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes up to `limit` audit entries recorded before `before`; returns how many.
    async fn purge_audit(&self, before: Millis, limit: u32) -> Result<usize, StoreError>;
    /// Records a new bulk operation, `running`, and returns it.
    async fn create_operation(&self, new: NewOperation) -> Result<OperationRecord, StoreError>;

    async fn operation(&self, id: i64) -> Result<Option<OperationRecord>, StoreError>;

    /// The `limit` most recent operations, newest first.
    async fn operations(&self, limit: u32) -> Result<Vec<OperationRecord>, StoreError>;

    /// Takes a `running` operation that no master holds (no owner, or its hold ran out before
    /// `now`) or that `owner` holds already, for `owner` until `until`; the oldest first.
    async fn claim_operation(
        &self,
        owner: String,
        now: Millis,
        until: Millis,
    ) -> Result<Option<OperationRecord>, StoreError>;

    /// Applies one chunk of an operation in one commit: the change to each of its tasks, and
    /// the operation's progress. `None`, with nothing changed, if `chunk.owner` no longer holds
    /// the operation.
    async fn run_chunk(&self, chunk: Chunk) -> Result<Option<ChunkDone>, StoreError>;

    /// Ends an operation held by `owner` as `failed` with `error`, adding `errors` tasks that
    /// could not be acted on. Returns whether it was still held.
    async fn fail_operation(
        &self,
        id: i64,
        owner: String,
        error: String,
        errors: u64,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Lets go of an operation `owner` holds, still running, so that the next master to look
    /// takes it over at once (this one is stopping).
    async fn release_operation(&self, id: i64, owner: String) -> Result<(), StoreError>;

    /// Succeeds when the database answers and can take writes: after a failed commit, once a
    /// write succeeds again; on a local file, only while its disk has room for more than a
    /// small write.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Which database this is, as `GET /masters` names it.
    fn kind(&self) -> common::StoreKind;

    /// Writes `master`'s heartbeat row (its `seen_at`), creating it at the first beat.
    async fn beat_master(&self, master: MasterRecord) -> Result<(), StoreError>;

    /// Every master's heartbeat row, as last written.
    async fn masters(&self) -> Result<Vec<MasterRecord>, StoreError>;

    /// Deletes master `id`'s heartbeat row: it stops.
    async fn forget_master(&self, id: String) -> Result<(), StoreError>;

    /// Deletes the heartbeat rows last written before `before`; returns how many.
    async fn purge_masters(&self, before: Millis) -> Result<usize, StoreError>;

    /// The tasks leased right now, counted by worker and queue. Reads the leased tasks only.
    async fn leased_by(&self) -> Result<Vec<LeasedBy>, StoreError>;

    /// Tells the other masters sharing this store that `queue` changed, so their long-polls
    /// look again. Best effort and after the fact: a missed announcement only delays a waiter
    /// until the reaper's next look at ready queues. A store only one master uses ignores it;
    /// the engine calls it only while others share the store ([`Announcement::Joined`]).
    fn announce(&self, _queue: &str, _wake: Wake) {}

    /// Tells the other masters sharing this store that this one waits for `id` to finish, so
    /// that the one that finishes it announces it ([`Wake::Finished`]) after its commit. A
    /// store only one master uses has nothing to tell.
    async fn watch(&self, _id: TaskId) -> Result<(), StoreError> {
        Ok(())
    }

    /// Ends a [`watch`](Self::watch). Best effort: a watch left behind costs an announcement.
    async fn unwatch(&self, _id: TaskId) {}

    /// The next announcement of another master: a change, or its arrival. A store only one
    /// master uses has none, and never resolves.
    async fn next_announcement(&self) -> Announcement {
        std::future::pending().await
    }
}
