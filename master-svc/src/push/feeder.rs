//! One push worker's feeder: lease for it, POST the tasks to its `/do-tasks` (one request for
//! all the tasks leased together; `/do-task` each for a worker without it), record what it
//! answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{
    DoTaskReply, DoTasks, Heartbeat, LeaseRequest, LeasedTask, MAX_LEASE_BATCH, PushedResult,
    Release, TaskId, TaskResult,
};
use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;
use worker_svc::pull::free_slots;

use super::{PushConfig, PushWorker};
use crate::engine::Engine;
use crate::metrics as m;

/// Consecutive failures that take a worker out of rotation.
const FAILURES_BEFORE_UNHEALTHY: u32 = 3;
/// Long-poll wait of each lease made for a worker.
const LEASE_WAIT_SECS: u64 = 10;
/// Longest line of a `/do-tasks` reply: a result as large as a request body may be.
const MAX_LINE: usize = crate::config::DEFAULT_MAX_BODY_BYTES;

/// A worker's standing: in rotation or not, tasks in flight, pause asked for by `Retry-After`.
#[derive(Debug, Default)]
pub struct Health {
    unhealthy: AtomicBool,
    failures: AtomicU32,
    in_flight: AtomicU32,
    /// Milliseconds to wait before the next lease, set by a `429`/`503`.
    pause_ms: AtomicU32,
    /// The worker answered `POST /do-tasks` with 404 or 405: push one task per `/do-task`.
    single_only: AtomicBool,
    /// Most tasks per `/do-tasks`; 0 for as many as there are free slots. A worker answers a
    /// batch larger than its free slots with `429`: the limit then halves, and doubles again
    /// with each batch taken whole, so a worker with fewer slots than announced still gets work.
    batch_limit: AtomicU32,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn batch_limit(&self) -> usize {
        match self.batch_limit.load(Ordering::SeqCst) {
            0 => usize::MAX,
            limit => limit as usize,
        }
    }

    /// A batch of `size` tasks was refused as too large.
    fn shrink_batches(&self, size: usize) {
        let limit = (size / 2).max(1) as u32;
        self.batch_limit.store(limit, Ordering::SeqCst);
    }

    /// A batch of `size` tasks was taken whole.
    fn grow_batches(&self, size: usize) {
        let limit = self.batch_limit.load(Ordering::SeqCst);
        if limit != 0 && size >= limit as usize {
            self.batch_limit
                .store(limit.saturating_mul(2), Ordering::SeqCst);
        }
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::SeqCst);
    }

    /// Counts a failure; returns the number in a row.
    fn failed(&self) -> u32 {
        let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if failures >= FAILURES_BEFORE_UNHEALTHY {
            self.unhealthy.store(true, Ordering::SeqCst);
        }
        failures
    }
}

/// Everything one feeder needs.
pub struct Feeder {
    pub engine: Arc<Engine>,
    pub http: reqwest::Client,
    pub config: PushConfig,
    pub worker: PushWorker,
    pub health: Arc<Health>,
}

/// A task of a `POST /do-tasks` in flight: its slot, and its lease renewal (stopped when this
/// is dropped).
struct Pushed {
    task: LeasedTask,
    slot: OwnedSemaphorePermit,
    _renewing: tokio_util::sync::DropGuard,
}

/// How a `POST /do-tasks` ended, for the tasks it did not report.
enum BatchEnd {
    /// The reply ended; the tasks it said nothing of were stopped by the worker's shutdown.
    Finished,
    /// The worker has no `/do-tasks`.
    NotSupported,
    /// The same verdict for every task left.
    Other(Dispatched),
}

/// How one dispatch went.
enum Dispatched {
    /// The worker ran the task and answered; the result is recorded.
    Done(DoTaskReply),
    /// The worker took the task and will report it itself (`202`).
    Accepted,
    /// The worker is busy or draining: try again after this long.
    Busy(Duration),
    /// The worker failed or could not be reached.
    Failed(String),
}

impl Feeder {
    /// Leases and dispatches for this worker until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.worker.capacity as usize));
        while !stop.is_cancelled() {
            if !this.health.is_healthy() && !this.wait_until_healthy(&stop).await {
                return;
            }
            this.pause(&stop).await;
            let mut permits = tokio::select! {
                permits = free_slots(&slots) => permits,
                () = stop.cancelled() => return,
            };
            permits.truncate(this.health.batch_limit());
            let request = LeaseRequest {
                queues: Some(this.worker.queues.clone()),
                max_tasks: Some(permits.len() as u32),
                wait_secs: Some(LEASE_WAIT_SECS),
                ..LeaseRequest::new(&this.worker.id)
            };
            let leased = tokio::select! {
                leased = this.engine.lease(request) => leased.map(|(leased, _)| leased),
                () = stop.cancelled() => return,
            };
            match leased {
                Ok(leased) if leased.tasks.is_empty() => {}
                Ok(leased) if this.health.single_only.load(Ordering::SeqCst) => {
                    for (task, permit) in leased.tasks.into_iter().zip(permits) {
                        tokio::spawn(this.clone().dispatch(task, permit));
                    }
                }
                Ok(leased) => {
                    let tasks = leased.tasks.into_iter().zip(permits).collect();
                    tokio::spawn(this.clone().dispatch_batch(tasks));
                }
                Err(e) => {
                    tracing::warn!(worker = %this.worker.id, error = %e, "cannot lease for a push worker");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Pushes several tasks in one `POST /do-tasks` and records each outcome as its line of the
    /// reply arrives (lines that arrive together are recorded together). Tasks the reply says
    /// nothing of go back to their queue.
    async fn dispatch_batch(self: Arc<Self>, tasks: Vec<(LeasedTask, OwnedSemaphorePermit)>) {
        let count = tasks.len() as u32;
        self.health.in_flight.fetch_add(count, Ordering::SeqCst);
        let mut pending = HashMap::new();
        for (task, slot) in tasks {
            let renewing = CancellationToken::new();
            tokio::spawn(self.clone().renew(task.clone(), renewing.clone()));
            let pushed = Pushed {
                task,
                slot,
                _renewing: renewing.drop_guard(),
            };
            pending.insert(pushed.task.task_id, pushed);
        }
        let ended = self.post_batch(&mut pending).await;
        let left: Vec<Pushed> = pending.into_values().collect();
        match &ended {
            BatchEnd::Other(Dispatched::Busy(_)) => self.health.shrink_batches(count as usize),
            BatchEnd::Finished => self.health.grow_batches(count as usize),
            _ => {}
        }
        self.health
            .in_flight
            .fetch_sub(left.len() as u32, Ordering::SeqCst);
        match ended {
            BatchEnd::NotSupported => {
                tracing::info!(worker = %self.worker.id, "the worker has no /do-tasks; pushing one task per /do-task");
                self.health.single_only.store(true, Ordering::SeqCst);
                for pushed in left {
                    tokio::spawn(self.clone().dispatch(pushed.task, pushed.slot));
                }
            }
            BatchEnd::Finished => {
                // Stopped by the worker's shutdown before they finished.
                for pushed in &left {
                    m::push_dispatched("released");
                    self.give_back(&pushed.task, 0).await;
                }
            }
            BatchEnd::Other(dispatched) => {
                if let Dispatched::Failed(cause) = &dispatched {
                    let failures = self.health.failed();
                    tracing::warn!(worker = %self.worker.id, %cause, failures, tasks = left.len(), "push failed; the tasks go back to their queue");
                }
                for pushed in &left {
                    self.record_each(&pushed.task, &dispatched).await;
                }
            }
        }
    }

    /// Sends the batch and records the results it streams back, removing them from `pending`.
    async fn post_batch(&self, pending: &mut HashMap<TaskId, Pushed>) -> BatchEnd {
        let tasks = pending.values().map(|pushed| pushed.task.clone()).collect();
        let mut request = self
            .http
            .post(format!(
                "{}/do-tasks",
                self.worker.url.trim_end_matches('/')
            ))
            .header(common::LEASE_WORKER_HEADER, &self.worker.id)
            .timeout(self.config.timeout)
            .json(&DoTasks { tasks });
        if let Some(token) = &self.config.worker_token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return BatchEnd::Other(Dispatched::Failed(e.to_string())),
        };
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                return BatchEnd::NotSupported;
            }
            status => return BatchEnd::Other(self.not_run(response, status)),
        }
        let body = response.bytes_stream().map_err(std::io::Error::other);
        let lines = FramedRead::new(
            StreamReader::new(body),
            LinesCodec::new_with_max_length(MAX_LINE),
        );
        let mut groups = lines.ready_chunks(MAX_LEASE_BATCH as usize);
        while let Some(group) = groups.next().await {
            let mut done = Vec::with_capacity(group.len());
            let mut broken = None;
            for line in group {
                let parsed = line.map_err(|e| e.to_string()).and_then(|line| {
                    serde_json::from_str::<PushedResult>(&line).map_err(|e| e.to_string())
                });
                match parsed {
                    Ok(line) => match pending.remove(&line.task_id) {
                        Some(pushed) => done.push((pushed, line.reply)),
                        None => {
                            tracing::warn!(worker = %self.worker.id, task_id = %line.task_id, "a result for a task not pushed in this request; ignored")
                        }
                    },
                    Err(e) => broken = Some(format!("unreadable reply: {e}")),
                }
            }
            self.health
                .in_flight
                .fetch_sub(done.len() as u32, Ordering::SeqCst);
            // The worker's slot is free once it has answered: the next lease for it goes to the
            // store together with these results, not after their commit.
            let done: Vec<(LeasedTask, DoTaskReply)> = done
                .into_iter()
                .map(|(pushed, reply)| (pushed.task, reply))
                .collect();
            join_all(done.into_iter().map(|(task, reply)| async move {
                self.record(&task, Dispatched::Done(reply)).await
            }))
            .await;
            if let Some(cause) = broken {
                return BatchEnd::Other(Dispatched::Failed(cause));
            }
        }
        BatchEnd::Finished
    }

    /// What a reply other than `200` means for the tasks it was for.
    fn not_run(&self, response: reqwest::Response, status: StatusCode) -> Dispatched {
        match status {
            StatusCode::ACCEPTED => Dispatched::Accepted,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let wait = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                Dispatched::Busy(Duration::from_secs(wait.clamp(1, 60)))
            }
            status => Dispatched::Failed(format!("answered {status}")),
        }
    }

    /// Pushes one task and records the outcome.
    async fn dispatch(self: Arc<Self>, task: LeasedTask, _slot: OwnedSemaphorePermit) {
        self.health.in_flight.fetch_add(1, Ordering::SeqCst);
        let renewing = CancellationToken::new();
        tokio::spawn(self.clone().renew(task.clone(), renewing.clone()));
        let dispatched = self.post(&task).await;
        renewing.cancel();
        self.record(&task, dispatched).await;
        self.health.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    async fn post(&self, task: &LeasedTask) -> Dispatched {
        let mut request = self
            .http
            .post(format!("{}/do-task", self.worker.url.trim_end_matches('/')))
            .header(common::LEASE_WORKER_HEADER, &self.worker.id)
            .timeout(self.config.timeout)
            .json(task);
        if let Some(token) = &self.config.worker_token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Dispatched::Failed(e.to_string()),
        };
        match response.status() {
            StatusCode::OK => match response.json::<DoTaskReply>().await {
                Ok(reply) => Dispatched::Done(reply),
                Err(e) => Dispatched::Failed(format!("unreadable reply: {e}")),
            },
            status => self.not_run(response, status),
        }
    }

    async fn record(&self, task: &LeasedTask, dispatched: Dispatched) {
        let worker = &self.worker.id;
        match dispatched {
            Dispatched::Done(reply) => {
                self.health.succeeded();
                m::push_dispatched(reply_outcome(&reply));
                let report = TaskResult {
                    lease_id: task.lease_id.clone(),
                    worker_id: worker.clone(),
                    outcome: reply.outcome,
                    result: reply.result,
                    error: reply.error,
                    retry: Some(reply.retry),
                    retry_after_secs: None,
                };
                if let Err(e) = self.engine.report(task.task_id, report).await {
                    tracing::warn!(task_id = %task.task_id, worker, error = %e, "pushed result not recorded");
                }
            }
            Dispatched::Accepted => {
                self.health.succeeded();
                m::push_dispatched("accepted");
            }
            Dispatched::Busy(wait) => {
                m::push_dispatched("busy");
                self.health
                    .pause_ms
                    .store(wait.as_millis() as u32, Ordering::SeqCst);
                self.give_back(task, 0).await;
            }
            Dispatched::Failed(cause) => {
                m::push_dispatched("error");
                let failures = self.health.failed();
                tracing::warn!(task_id = %task.task_id, worker, %cause, failures, "push failed; the task goes back to its queue");
                self.give_back(task, 1).await;
            }
        }
    }

    /// Applies a batch's verdict to one of its tasks; a failure was counted once for the batch.
    async fn record_each(&self, task: &LeasedTask, dispatched: &Dispatched) {
        match dispatched {
            Dispatched::Failed(_) => {
                m::push_dispatched("error");
                self.give_back(task, 1).await;
            }
            Dispatched::Accepted => {
                self.health.succeeded();
                m::push_dispatched("accepted");
            }
            Dispatched::Busy(wait) => {
                m::push_dispatched("busy");
                self.health
                    .pause_ms
                    .store(wait.as_millis() as u32, Ordering::SeqCst);
                self.give_back(task, 0).await;
            }
            Dispatched::Done(reply) => self.record(task, Dispatched::Done(reply.clone())).await,
        }
    }

    /// Releases a task the worker did not run, so that it goes to another worker.
    async fn give_back(&self, task: &LeasedTask, delay_secs: u64) {
        let release = Release {
            lease_id: task.lease_id.clone(),
            delay_secs: Some(delay_secs),
        };
        if let Err(e) = self.engine.release(task.task_id, release).await {
            tracing::warn!(task_id = %task.task_id, error = %e, "release failed; the lease will expire instead");
        }
    }

    /// Renews the lease while the worker runs the task, as a pulling worker's heartbeat would.
    async fn renew(self: Arc<Self>, task: LeasedTask, stop: CancellationToken) {
        let lease: Duration = (task.expires_at - time::OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO);
        let every = (lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
            let beat = Heartbeat {
                lease_id: task.lease_id.clone(),
                lease_secs: None,
            };
            if let Err(e) = self.engine.heartbeat(task.task_id, beat).await {
                tracing::debug!(task_id = %task.task_id, error = %e, "lease renewal stopped");
                return;
            }
        }
    }

    /// Honours a `Retry-After` the worker gave.
    async fn pause(&self, stop: &CancellationToken) {
        let pause = self.health.pause_ms.swap(0, Ordering::SeqCst);
        if pause > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(pause.into())) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// Probes `GET /healthz` until it answers 200; returns false if stopped first.
    async fn wait_until_healthy(&self, stop: &CancellationToken) -> bool {
        tracing::warn!(worker = %self.worker.id, "push worker out of rotation until its health check passes");
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.health_interval) => {}
                () = stop.cancelled() => return false,
            }
            let url = format!("{}/healthz", self.worker.url.trim_end_matches('/'));
            let probe = self
                .http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                tracing::info!(worker = %self.worker.id, "push worker back in rotation");
                self.health.failures.store(0, Ordering::SeqCst);
                self.health.unhealthy.store(false, Ordering::SeqCst);
                return true;
            }
        }
    }
}

fn reply_outcome(reply: &DoTaskReply) -> &'static str {
    match reply.outcome {
        common::Outcome::Succeeded => "succeeded",
        common::Outcome::Failed => "failed",
    }
}
