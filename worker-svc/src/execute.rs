//! Running one leased task: the handler, a heartbeat that keeps the lease alive (and stops the
//! handler when the lease is lost or the task cancelled), and the result, retried until the
//! master has it.

use std::sync::Arc;
use std::time::Duration;

use common::{LeasedTask, Outcome, TaskResult};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::handler::{Handler, TaskContext, TaskError};
use crate::metrics as m;
use crate::report::Reporter;
use leasehold_client::MasterClient;

/// Longest pause between two attempts to deliver a result.
const MAX_RESULT_BACKOFF: Duration = Duration::from_secs(5);
/// How long a result is retried while the master is unreachable. Past the lease the master
/// refuses it anyway (it answers 409 once back), so this only bounds how long an outage may hold
/// the slot.
const RESULT_RETRY_WINDOW: Duration = Duration::from_secs(600);

/// What a task runner needs.
#[derive(Clone)]
pub struct Runner {
    pub client: MasterClient,
    /// Where results go: grouped with those of tasks finishing at the same time.
    pub reporter: Reporter,
    pub handler: Arc<dyn Handler>,
    pub worker_id: String,
    /// Lease length asked for at each heartbeat; the lease's own when `None`.
    pub lease_secs: Option<u64>,
    /// Longest a task may run; `None` for no limit.
    pub task_timeout: Option<Duration>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

/// How a run ended, as far as the handler is concerned.
enum Ended {
    Finished(Result<Value, TaskError>),
    /// The master took the lease back (expired, superseded) or cancelled the task.
    LeaseLost {
        cancelled: bool,
    },
    /// The worker is shutting down and the drain time is up.
    Stopped,
}

impl Runner {
    /// Runs a task leased in pull mode, start to finish. `stop` ends it early: the task is then
    /// released so another worker takes it at once, with no attempt counted.
    /// `slot` is freed when the task's result is handed over (or the task ends without one).
    pub async fn run_leased(
        &self,
        task: LeasedTask,
        slot: OwnedSemaphorePermit,
        stop: CancellationToken,
    ) {
        let _in_flight = m::InFlight::start();
        let started = Instant::now();
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(self.clone().heartbeat(task.clone(), lost.clone()));
        let context = self.context(&task);
        let ended = tokio::select! {
            // A finished handler wins over a lost lease noticed at the same moment: its result
            // goes to the master, which alone decides whether it still counts.
            biased;
            result = self.run_handler(&context) => Ended::Finished(result),
            () = lost.cancelled() => Ended::LeaseLost { cancelled: heartbeat.await.unwrap_or(false) },
            () = stop.cancelled() => Ended::Stopped,
        };
        lost.cancel();
        match ended {
            Ended::Finished(result) => {
                m::task_finished(result.is_ok(), started.elapsed());
                self.deliver(&task, result, slot, &stop).await;
            }
            Ended::LeaseLost { cancelled: true } => {
                tracing::info!(task_id = %task.task_id, "task cancelled by an operator; releasing");
                m::task_ended("cancelled");
                self.release(&task).await;
            }
            Ended::LeaseLost { cancelled: false } => {
                tracing::warn!(task_id = %task.task_id, "lease lost; abandoning the task");
                m::task_ended("lost");
            }
            Ended::Stopped => {
                tracing::info!(task_id = %task.task_id, "drain time is up; releasing the task");
                m::task_ended("released");
                self.release(&task).await;
            }
        }
    }

    /// Runs the handler within the task time limit. A task over its time is stopped (the
    /// handler's future is dropped: an `exec:` process group is killed with it) and fails, to be
    /// retried if it has attempts left.
    pub async fn run_handler(&self, context: &TaskContext) -> Result<Value, TaskError> {
        let Some(limit) = self.task_timeout else {
            return self.handler.handle(context).await;
        };
        match tokio::time::timeout(limit, self.handler.handle(context)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(task_id = %context.task_id, ?limit, "task timed out; stopped");
                Err(TaskError::retryable(format!(
                    "timed out after {} s",
                    limit.as_secs_f64()
                )))
            }
        }
    }

    pub fn context(&self, task: &LeasedTask) -> TaskContext {
        TaskContext {
            task_id: task.task_id,
            lease_id: task.lease_id.clone(),
            queue: task.queue.clone(),
            attempt: task.attempt,
            worker_id: self.worker_id.clone(),
            payload: task.payload.clone(),
        }
    }

    /// Renews the lease every third of its length until `lost` is cancelled. Cancels `lost`
    /// itself when the master refuses a renewal, asks for cancellation, or cannot be reached
    /// before the lease runs out. Returns whether the task was cancelled by an operator.
    async fn heartbeat(self, task: LeasedTask, lost: CancellationToken) -> bool {
        let mut expires_at = task.expires_at;
        loop {
            let left = until(expires_at);
            let pause = (left / 3).max(Duration::from_millis(100));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = lost.cancelled() => return false,
            }
            match self
                .client
                .heartbeat(task.task_id, &task.lease_id, self.lease_secs)
                .await
            {
                Ok(ack) if ack.cancel_requested => {
                    lost.cancel();
                    return true;
                }
                Ok(ack) => expires_at = ack.expires_at,
                Err(e) if !e.is_transient() => {
                    tracing::warn!(task_id = %task.task_id, error = %e, "heartbeat refused");
                    m::master_error("heartbeat");
                    lost.cancel();
                    return false;
                }
                Err(e) => {
                    m::master_error("heartbeat");
                    if until(expires_at).is_zero() {
                        tracing::warn!(task_id = %task.task_id, error = %e, "lease ran out while the master was unreachable");
                        lost.cancel();
                        return false;
                    }
                }
            }
        }
    }

    /// Hands the result over (freeing the slot), then sends it again until the master takes it
    /// or refuses it. Network errors and 5xx are retried (safe: the master accepts the same result
    /// twice); a refusal means the work was superseded and is only logged.
    async fn deliver(
        &self,
        task: &LeasedTask,
        result: Result<Value, TaskError>,
        slot: OwnedSemaphorePermit,
        stop: &CancellationToken,
    ) {
        let report = to_report(task, &self.worker_id, result);
        let give_up = Instant::now() + RESULT_RETRY_WINDOW;
        let mut backoff = Duration::from_millis(100);
        let mut sent = self
            .reporter
            .finish(task.task_id, report.clone(), slot)
            .await;
        loop {
            match sent {
                Ok(()) => return,
                Err(e) if !e.is_transient() => {
                    tracing::warn!(task_id = %task.task_id, error = %e, "result refused: the work was superseded");
                    m::result_refused();
                    return;
                }
                Err(e) => {
                    m::master_error("result");
                    if Instant::now() + backoff > give_up {
                        tracing::error!(task_id = %task.task_id, error = %e, "giving up on delivering a result; the lease is long gone");
                        return;
                    }
                    tracing::warn!(task_id = %task.task_id, error = %e, retry_in = ?backoff, "result not delivered; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => {}
            }
            backoff = (backoff * 2).min(MAX_RESULT_BACKOFF);
            sent = self.reporter.report(task.task_id, report.clone()).await;
        }
    }

    /// Hands the task back without counting a failure. Best effort: if the master cannot be
    /// reached, the lease simply expires.
    pub async fn release(&self, task: &LeasedTask) {
        if let Err(e) = self
            .client
            .release(task.task_id, &task.lease_id, None)
            .await
        {
            m::master_error("release");
            tracing::warn!(task_id = %task.task_id, error = %e, "release failed; the lease will expire instead");
        }
    }
}

/// The result body for a handler's outcome.
pub fn to_report(
    task: &LeasedTask,
    worker_id: &str,
    result: Result<Value, TaskError>,
) -> TaskResult {
    match result {
        Ok(value) => TaskResult::succeeded(task.lease_id.clone(), worker_id, value),
        Err(error) => TaskResult {
            retry: Some(error.retry),
            ..TaskResult::failed(task.lease_id.clone(), worker_id, error.message)
        },
    }
}

pub fn outcome_of(result: &Result<Value, TaskError>) -> Outcome {
    if result.is_ok() {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    }
}

/// Time left until `deadline`, zero once it has passed.
fn until(deadline: OffsetDateTime) -> Duration {
    (deadline - OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or(Duration::ZERO)
}
