//! One task's push: POST it to the worker's `/do-task`, renew its lease while the worker runs
//! it, and record what the worker answered, or hand the task back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DoTaskReply, Heartbeat, LeasedTask, Release, TaskResult};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tokio::sync::OwnedSemaphorePermit;

use super::Feeder;
use crate::metrics as m;

/// Shortest pause between two renewals of a pushed task's lease.
const SHORTEST_RENEWAL_PAUSE: Duration = Duration::from_millis(100);
/// Pause after a worker's `429` or `503`: its `Retry-After`, within these bounds, or the least
/// without one.
const BUSY_PAUSE_LEAST_SECS: u64 = 1;
const BUSY_PAUSE_MOST_SECS: u64 = 60;

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
    /// The master is shutting down and its drain time ran out before the worker answered.
    Abandoned,
}

impl Feeder {
    /// Pushes one task and records the outcome. At shutdown the dispatch goes on (the lease
    /// renewed) until the worker answers or the drain time is up; then the task is handed back,
    /// since no one would be left to record the worker's answer.
    pub(super) async fn dispatch(self: Arc<Self>, task: LeasedTask, slot: OwnedSemaphorePermit) {
        self.health.in_flight.fetch_add(1, Ordering::SeqCst);
        let post = self.post(&task);
        tokio::pin!(post);
        let renewed = async {
            tokio::select! {
                biased;
                dispatched = &mut post => dispatched,
                () = self.renew(&task) => post.await,
            }
        };
        let dispatched = tokio::select! {
            dispatched = renewed => dispatched,
            () = self.abandon.cancelled() => Dispatched::Abandoned,
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
            .post(self.do_task.clone())
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
                    .unwrap_or(BUSY_PAUSE_LEAST_SECS);
                Dispatched::Busy(Duration::from_secs(
                    wait.clamp(BUSY_PAUSE_LEAST_SECS, BUSY_PAUSE_MOST_SECS),
                ))
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
                    retry_after_secs: reply.pause_queue_secs,
                    pause_queue_secs: reply.pause_queue_secs,
                };
                if let Err(e) = self.engine.report(task.task_id, report).await {
                    tracing::warn!(task_id = %task.task_id, worker, error = %crate::chain::Chain(&e), "pushed result not recorded");
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
            Dispatched::Abandoned => {
                tracing::warn!(task_id = %task.task_id, worker, "the push drain time is up; the task goes back to its queue");
                self.give_back(task, 0).await;
            }
        }
    }

    /// Releases a task the worker did not run, so that it goes to another worker.
    pub(super) async fn give_back(&self, task: &LeasedTask, delay_secs: u64) {
        let release = Release {
            lease_id: task.lease_id.clone(),
            delay_secs: Some(delay_secs),
        };
        if let Err(e) = self.engine.release(task.task_id, release).await {
            tracing::warn!(task_id = %task.task_id, error = %crate::chain::Chain(&e), "release failed; the lease will expire instead");
        }
    }

    /// Renews the lease while the worker runs the task, as a pulling worker's heartbeat would.
    /// Returns only if a renewal is refused; dropped (mid-renewal, harmlessly) once the worker
    /// answers.
    async fn renew(&self, task: &LeasedTask) {
        let every = (self.lease_left(task) / 3).max(SHORTEST_RENEWAL_PAUSE);
        loop {
            tokio::time::sleep(every).await;
            let beat = Heartbeat {
                lease_id: task.lease_id.clone(),
                lease_secs: None,
            };
            if let Err(e) = self.engine.heartbeat(task.task_id, beat).await {
                tracing::debug!(task_id = %task.task_id, error = %crate::chain::Chain(&e), "lease renewal stopped");
                return;
            }
        }
    }

    /// What is left of the task's lease by the engine's clock, which gave it: this machine's
    /// clock may be ahead of or behind the database server's, or a test's.
    pub(super) fn lease_left(&self, task: &LeasedTask) -> Duration {
        let expires_ms = (task.expires_at.unix_timestamp_nanos() / 1_000_000) as i64;
        let left_ms = expires_ms.saturating_sub(self.engine.now_ms());
        Duration::from_millis(left_ms.max(0) as u64)
    }
}

fn reply_outcome(reply: &DoTaskReply) -> &'static str {
    match reply.outcome {
        common::Outcome::Succeeded => "succeeded",
        common::Outcome::Failed => "failed",
    }
}
