//! The lease engine: the rules of Leasehold, independent of HTTP and of the storage backend.
//!
//! Requests come in as the API's types, are checked ([`validate`]), turned into decisions
//! ([`rules`]) that the store applies atomically, and answered in the API's types ([`view`]).
//! What workers do with their leases is in [`leases`]. The engine also owns the long-poll
//! wake-ups ([`waiters`]), the expiry loop ([`reaper`]) and each queue's recent activity
//! ([`activity`]), and knows who serves and who works: the masters sharing the store
//! ([`masters`]) and the pulling workers ([`pull_workers`]).

pub mod activity;
mod audit;
mod bulk;
mod find;
mod finished;
mod flow;
mod idle;
mod leases;
pub mod limits;
pub mod masters;
pub mod pull_workers;
pub mod reaper;
pub mod rules;
pub mod validate;
pub mod view;
pub mod waiters;

use std::collections::HashMap;
use std::sync::Arc;

use common::{
    BatchSubmitted, ListTasks, ListedTask, QueueInfo, SubmitTask, Task, TaskId, TaskPage,
    TaskState, TaskView,
};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::metrics as m;
use crate::model::{Conflict, NewTask};
use crate::store::{Announcement, Decide, Store, StoreError, TaskFilter, Updated, Wake};
pub use leases::{Granted, LEASE_RULES, LeaseOutcome};
pub use rules::Policy;
use rules::secs_to_ms;
use waiters::Waiters;

/// Why the engine refused or failed a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The request breaks a rule of the API (a `400`); the message says which.
    #[error("{0}")]
    Invalid(String),
    /// No task has this id.
    #[error("task {0} not found")]
    TaskNotFound(TaskId),
    /// No queue has this name.
    #[error("queue `{0}` not found")]
    QueueNotFound(String),
    /// No bulk operation has this id.
    #[error("operation {0} not found")]
    OperationNotFound(i64),
    /// The request conflicts with the task's current state (a `409`).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The store failed; nothing was changed.
    #[error("the store is unavailable")]
    Store(#[source] StoreError),
    /// The work stopped before it could answer (the master is stopping).
    #[error("the request was interrupted")]
    Interrupted,
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => EngineError::TaskNotFound(id),
            StoreError::Conflict(conflict) => EngineError::Conflict(conflict),
            StoreError::Refused(message) => EngineError::Invalid(message),
            other => EngineError::Store(other),
        }
    }
}

type Result<T> = std::result::Result<T, EngineError>;

/// How long the readiness check waits for the store.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The single source of truth for tasks and leases.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    waiters: Arc<Waiters>,
    /// Cancelled at shutdown: long-polls return at once.
    shutdown: CancellationToken,
    /// Bytes of payloads, results and errors a page of `GET /tasks` holds at most.
    page_max_bytes: usize,
    /// How long a queue with no tasks and no settings is kept; `None`: for good.
    queue_idle: Option<std::time::Duration>,
    idle: idle::IdleQueues,
    /// Longest pause a worker's result may ask for.
    max_pause_ms: i64,
    reopenings: flow::Reopenings,
    finish_waiters: Arc<finished::FinishWaiters>,
    /// How long audit entries are kept; `None`: for good.
    audit_retention: Option<std::time::Duration>,
    bulk: bulk::Bulk,
    /// Each queue's transitions and backlog over the last hour.
    activity: activity::Activity,
    /// This master, as its heartbeat row names it.
    instance: masters::Instance,
    /// Whether other masters share the store, to announce changes to.
    company: masters::Company,
    heard: pull_workers::HeardWorkers,
}

/// [`Engine`]'s longest pause a worker may ask for unless [`Engine::with_max_queue_pause`] says
/// otherwise.
pub const DEFAULT_MAX_QUEUE_PAUSE: std::time::Duration = std::time::Duration::from_secs(3600);

/// [`Engine`]'s page limit unless [`Engine::with_page_max_bytes`] says otherwise.
pub const DEFAULT_PAGE_MAX_BYTES: usize = 4 * 1024 * 1024;

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        shutdown: CancellationToken,
    ) -> Engine {
        let activity = activity::Activity::new(clock.now_ms());
        let instance = masters::Instance::new(clock.now_ms());
        Engine {
            store,
            clock,
            policy,
            waiters: Arc::default(),
            shutdown,
            page_max_bytes: DEFAULT_PAGE_MAX_BYTES,
            queue_idle: None,
            idle: idle::IdleQueues::default(),
            max_pause_ms: DEFAULT_MAX_QUEUE_PAUSE.as_millis() as i64,
            reopenings: flow::Reopenings::default(),
            finish_waiters: Arc::default(),
            audit_retention: None,
            bulk: bulk::Bulk::new(instance.id.clone()),
            activity,
            instance,
            company: masters::Company::default(),
            heard: pull_workers::HeardWorkers::default(),
        }
    }

    /// Caps the pause a worker's failed result may ask for (`pause_queue_secs`).
    pub fn with_max_queue_pause(mut self, max: std::time::Duration) -> Engine {
        self.max_pause_ms = max.as_millis() as i64;
        self
    }

    /// Forgets queues that have had no tasks and no settings for `idle` (see [`idle`]).
    pub fn with_queue_idle(mut self, idle: Option<std::time::Duration>) -> Engine {
        self.queue_idle = idle;
        self
    }

    /// Ends a page of `GET /tasks` once it holds `bytes` of payloads, results and errors
    /// (always one task, though).
    pub fn with_page_max_bytes(mut self, bytes: usize) -> Engine {
        self.page_max_bytes = bytes;
        self
    }

    /// Submits one task; `true` when it is new, `false` when its idempotency key was known.
    pub async fn submit(&self, task: SubmitTask) -> Result<(Task, bool)> {
        let mut batch = self.submit_batch(vec![task]).await?;
        let created = batch.created == 1;
        Ok((batch.tasks.remove(0), created))
    }

    /// Submits many tasks in one commit: all of them or none.
    pub async fn submit_batch(&self, tasks: Vec<SubmitTask>) -> Result<BatchSubmitted> {
        validate::in_range("tasks (count)", tasks.len(), 1, common::MAX_BATCH_TASKS)?;
        let now = self.clock.now_ms();
        let new_tasks = tasks
            .into_iter()
            .map(|task| self.new_task(task, now))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let inserted = self.store.insert(new_tasks, rules::on_resubmit).await?;
        let mut ready: HashMap<&str, usize> = HashMap::new();
        for new in inserted.iter().filter(|i| i.created) {
            m::task_submitted(&new.task.queue);
            if new.task.run_at <= now {
                *ready.entry(new.task.queue.as_str()).or_default() += 1;
            }
        }
        for (queue, count) in ready {
            self.wake(queue, Wake::Tasks(count));
        }
        let created = inserted.iter().filter(|i| i.created);
        let queues = created.clone().map(|i| i.task.queue.as_str());
        self.activity
            .count_each(queues, activity::Transition::Submitted, now);
        let created = created.count();
        let tasks = inserted.into_iter().map(|i| view::task(i.task)).collect();
        Ok(BatchSubmitted { tasks, created })
    }

    fn new_task(&self, task: SubmitTask, now: i64) -> validate::Checked<NewTask> {
        if let Some(key) = &task.idempotency_key {
            validate::name("idempotency_key", key)?;
        }
        if let Some(key) = &task.concurrency_key {
            validate::name("concurrency_key", key)?;
        }
        let delay = validate::duration_secs("delay_secs", task.delay_secs, 0)?;
        let lease = validate::duration_secs("lease_secs", task.lease_secs, 1)?;
        Ok(NewTask {
            queue: validate::queue_name(task.queue.as_deref())?,
            payload: task.payload,
            priority: task.priority,
            max_attempts: validate::max_attempts(task.max_attempts)?,
            default_lease_ms: lease.map_or(self.policy.default_lease_ms, secs_to_ms),
            created_at: now,
            run_at: now + delay.map_or(0, secs_to_ms),
            idempotency_key: task.idempotency_key,
            concurrency_key: task.concurrency_key,
            tags: find::tags(task.tags)?,
        })
    }

    pub async fn get(&self, id: TaskId) -> Result<Task> {
        let record = self.store.get(id).await?;
        record.map(view::task).ok_or(EngineError::TaskNotFound(id))
    }

    /// Every lease of the task, and what fencing refused for each.
    pub async fn attempts(&self, id: TaskId) -> Result<common::TaskAttempts> {
        let record = self.store.get(id).await?;
        record
            .map(view::attempts)
            .ok_or(EngineError::TaskNotFound(id))
    }

    pub async fn list(&self, query: ListTasks) -> Result<TaskPage> {
        let limit = validate::in_range(
            "limit",
            query.limit.unwrap_or(100),
            1,
            common::MAX_LIST_LIMIT,
        )?;
        let after_id = match query.cursor.as_deref() {
            Some(cursor) => Some(TaskId(cursor.parse().map_err(|_| {
                EngineError::Invalid(format!("`cursor` `{cursor}` is not one this API returned"))
            })?)),
            None => None,
        };
        let selection = find::listing(&query)?;
        let view = query.view.unwrap_or_default();
        let filter = TaskFilter {
            queue: selection.queue,
            state: selection.state,
            search: selection.search,
            after_id,
            limit,
            bodies: view == TaskView::Full,
            max_bytes: self.page_max_bytes,
        };
        let page = self.store.list(filter).await?;
        let next_cursor = (page.cut || page.tasks.len() == limit as usize)
            .then(|| page.tasks.last().map(|task| task.id.to_string()))
            .flatten();
        let tasks = page
            .tasks
            .into_iter()
            .map(|record| ListedTask::new(view::task(record), view))
            .collect();
        Ok(TaskPage { tasks, next_cursor })
    }

    pub async fn cancel(&self, id: TaskId) -> Result<Task> {
        let now = self.clock.now_ms();
        let updated = self
            .update(id, Box::new(move |task| rules::on_cancel(task, now)))
            .await?;
        Ok(view::task(updated.after))
    }

    pub async fn retry(&self, id: TaskId) -> Result<Task> {
        let now = self.clock.now_ms();
        let updated = self
            .update(id, Box::new(move |task| rules::on_retry(task, now)))
            .await?;
        Ok(view::task(updated.after))
    }

    /// Applies a rule to one task, counts refusals, and wakes whoever the change concerns.
    async fn update(&self, id: TaskId, decide: Decide) -> Result<Updated> {
        let updated = self.store.update(id, decide).await.inspect_err(|e| {
            if let StoreError::Conflict(conflict) = e {
                m::request_refused(conflict);
            }
        })?;
        self.announce(&updated);
        Ok(updated)
    }

    /// Wakes waiters for a task that became ready, for a slot of a queue's limits that a lease
    /// ending freed, or for a sealed queue the task may have drained.
    fn announce(&self, updated: &Updated) {
        let task = &updated.after;
        if task.state.is_terminal() && !updated.before.state.is_terminal() {
            self.finished(task.id, &task.queue);
        }
        let slot_freed = updated.queue_gated
            && updated.before.state == TaskState::Leased
            && task.state != TaskState::Leased;
        if task.state.is_terminal() && updated.queue_sealed {
            self.wake(&task.queue, Wake::All);
        } else if slot_freed
            || task.state == TaskState::Queued && task.run_at <= self.clock.now_ms()
        {
            self.wake(&task.queue, Wake::Tasks(1));
        }
    }

    /// Wakes this master's waiters of `queue` and tells any other master sharing the store.
    fn wake(&self, queue: &str, wake: Wake) {
        self.wake_here(queue, wake);
        if self.company.present() {
            self.store.announce(queue, wake);
        }
    }

    fn wake_here(&self, queue: &str, wake: Wake) {
        match wake {
            Wake::Tasks(count) => self.waiters.wake(queue, count),
            Wake::All => self.waiters.wake_all(queue),
            Wake::Finished(id) => self.finish_waiters.wake(id),
        }
    }

    /// Runs until shutdown, waking this master's long-polls for changes that other masters
    /// sharing the store announce.
    pub async fn run_listener(self: Arc<Self>) {
        loop {
            tokio::select! {
                announcement = self.store.next_announcement() => {
                    self.company.heard();
                    if let Announcement::Changed { queue, wake } = announcement {
                        self.wake_here(&queue, wake);
                    }
                }
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let records = self.store.queues(None).await?;
        let now = self.clock.now_ms();
        Ok(records.into_iter().map(|q| view::queue(q, now)).collect())
    }

    pub async fn queue(&self, name: &str) -> Result<QueueInfo> {
        let name = validate::queue_name(Some(name))?;
        let mut records = self.store.queues(Some(name.clone())).await?;
        let now = self.clock.now_ms();
        match records.pop() {
            Some(record) => Ok(view::queue(record, now)),
            None => Err(EngineError::QueueNotFound(name)),
        }
    }

    /// Seals (no new tasks; drained leasers hear `no_more_tasks`) or unseals a queue.
    pub async fn set_sealed(&self, name: &str, sealed: bool) -> Result<QueueInfo> {
        let name = validate::queue_name(Some(name))?;
        self.store.set_sealed(name.clone(), sealed).await?;
        self.wake(&name, Wake::All);
        self.queue(&name).await
    }

    /// Succeeds when the store answers and can write, within [`READY_WITHIN`]: a probe must
    /// answer before its own timeout, also while the database is down.
    pub async fn ready(&self) -> Result<()> {
        match tokio::time::timeout(READY_WITHIN, self.store.ping()).await {
            Ok(pinged) => Ok(pinged?),
            Err(_) => Err(StoreError::NoAnswer(READY_WITHIN).into()),
        }
    }

    /// Lease requests waiting right now.
    pub fn waiting(&self) -> usize {
        self.waiters.count()
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The engine's time, in milliseconds since the Unix epoch: the one every lease's
    /// `expires_at` is computed from (the database server's on PostgreSQL, a test's manual
    /// clock), so that whoever times a lease reads the same clock as the lease was given by.
    pub fn now_ms(&self) -> crate::model::Millis {
        self.clock.now_ms()
    }
}
