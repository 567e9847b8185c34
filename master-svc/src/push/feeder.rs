//! One push worker's feeder: lease for it, POST to its `/do-task`, record what it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{DoTaskReply, Heartbeat, LeaseRequest, LeasedTask, Release, TaskResult};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use worker_svc::pull::free_slots;

use super::{PushConfig, PushWorker};
use crate::engine::Engine;
use crate::metrics as m;

/// Consecutive failures that take a worker out of rotation.
const FAILURES_BEFORE_UNHEALTHY: u32 = 3;
/// Long-poll wait of each lease made for a worker.
const LEASE_WAIT_SECS: u64 = 10;

/// A worker's standing: in rotation or not, tasks in flight, pause asked for by `Retry-After`.
#[derive(Debug, Default)]
pub struct Health {
    unhealthy: AtomicBool,
    failures: AtomicU32,
    in_flight: AtomicU32,
    /// Milliseconds to wait before the next lease, set by a `429`/`503`.
    pause_ms: AtomicU32,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
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
            let permits = tokio::select! {
                permits = free_slots(&slots) => permits,
                () = stop.cancelled() => return,
            };
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
                Ok(leased) => {
                    for (task, permit) in leased.tasks.into_iter().zip(permits) {
                        tokio::spawn(this.clone().dispatch(task, permit));
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %this.worker.id, error = %e, "cannot lease for a push worker");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Pushes one task and records the outcome.
    async fn dispatch(self: Arc<Self>, task: LeasedTask, slot: OwnedSemaphorePermit) {
        self.health.in_flight.fetch_add(1, Ordering::SeqCst);
        let post = self.post(&task);
        tokio::pin!(post);
        let dispatched = tokio::select! {
            biased;
            dispatched = &mut post => dispatched,
            () = self.renew(&task) => post.await,
        };
        self.health.in_flight.fetch_sub(1, Ordering::SeqCst);
        if matches!(dispatched, Dispatched::Done(_) | Dispatched::Accepted) {
            // The worker's slot is free once it has answered: the next lease for it reaches the
            // store together with this result instead of after its commit. (A busy or failing
            // worker keeps the slot until its pause is set.)
            drop(slot);
        }
        self.record(&task, dispatched).await;
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
    /// Returns only if a renewal is refused; dropped (mid-renewal, harmlessly) once the worker
    /// answers.
    async fn renew(&self, task: &LeasedTask) {
        let lease: Duration = (task.expires_at - time::OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO);
        let every = (lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
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
