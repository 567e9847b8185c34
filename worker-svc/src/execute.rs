//! Running one leased task: the handler, a heartbeat that keeps the lease alive (and stops the
//! handler when the lease is lost or the task cancelled), and the result, retried until the
//! master has it; then the task's end goes to the log ([`crate::activity`]).

use std::sync::Arc;
use std::time::Duration;

use common::{LeasedTask, Outcome, TaskResult, TaskState};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::activity::{self, Activity, TaskEnd};
use crate::handler::{Handler, TaskContext, TaskError};
use crate::metrics as m;
use crate::report::Reporter;
use crate::slots::Slot;
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
    /// Where each task's end is logged and counted for the summary.
    pub activity: Activity,
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
    /// An operator cancelled the task.
    Cancelled,
    /// The master took the lease back (expired, superseded), or could not be reached before it
    /// ran out: why.
    LeaseLost(String),
    /// The worker is shutting down and the drain time is up.
    Stopped,
}

/// Why a task's heartbeat stopped before its run ended.
enum LeaseEnd {
    /// An operator asked for the task's cancellation.
    Cancelled,
    /// The lease is gone: why.
    Lost(String),
}

/// How a task ended, and why when it failed or was lost: what its log line says.
type Conclusion = (activity::Outcome, Option<String>);

impl Runner {
    /// Runs a task leased in pull mode, start to finish. `stop` ends it early: the task is then
    /// released so another worker takes it at once, with no attempt counted.
    /// `slot` is freed when the task's result is handed over (or the task ends without one).
    pub async fn run_leased(&self, mut task: LeasedTask, slot: Slot, stop: CancellationToken) {
        let _in_flight = m::InFlight::start();
        let _running = self.activity.start();
        let started = Instant::now();
        let payload = std::mem::take(&mut task.payload);
        let context = self.context(&task, payload);
        // The heartbeat runs beside the handler in this task, and stops with it.
        let ended = tokio::select! {
            // A finished handler wins over a lost lease noticed at the same moment: its result
            // goes to the master, which alone decides whether it still counts.
            biased;
            result = self.run_handler(&context) => Ended::Finished(result),
            end = self.heartbeat(&task) => match end {
                LeaseEnd::Cancelled => Ended::Cancelled,
                LeaseEnd::Lost(why) => Ended::LeaseLost(why),
            },
            () = stop.cancelled() => Ended::Stopped,
        };
        let duration = started.elapsed();
        let (outcome, error) = self.conclude(&task, ended, duration, slot, &stop).await;
        self.log_end(&task, outcome, duration, error.as_deref());
    }

    /// Logs how a run of `task` ended, and counts it for the summary.
    fn log_end(
        &self,
        task: &LeasedTask,
        outcome: activity::Outcome,
        duration: Duration,
        error: Option<&str>,
    ) {
        self.activity.ended(&TaskEnd {
            task_id: task.task_id,
            attempt: task.attempt,
            queue: &task.queue,
            outcome,
            duration,
            error,
        });
    }

    /// Does what the way a run ended asks for: deliver the result, or hand the task back.
    async fn conclude(
        &self,
        task: &LeasedTask,
        ended: Ended,
        duration: Duration,
        slot: Slot,
        stop: &CancellationToken,
    ) -> Conclusion {
        match ended {
            Ended::Finished(result) => {
                m::task_finished(result.is_ok(), duration);
                self.deliver(task, result, slot, stop).await
            }
            Ended::Cancelled => {
                m::task_ended("cancelled");
                // Boxed, as below: a rare path that would make every run's future larger.
                Box::pin(self.release(task)).await;
                (activity::Outcome::Cancelled, None)
            }
            Ended::LeaseLost(why) => {
                m::task_ended("lost");
                (activity::Outcome::Lost, Some(why))
            }
            Ended::Stopped => {
                m::task_ended("released");
                Box::pin(self.release(task)).await;
                (activity::Outcome::Released, None)
            }
        }
    }

    /// Runs a task the master pushed and waits for its result (`POST /do-task`), which the
    /// master records; `None` when `stop` ended it first (the master then takes it back).
    /// Whether a failure is for good is the master's to decide: the log says so only when the
    /// handler asked for no retry.
    pub async fn run_pushed(
        &self,
        task: &LeasedTask,
        stop: &CancellationToken,
    ) -> Option<Result<Value, TaskError>> {
        let _in_flight = m::InFlight::start();
        let _running = self.activity.start();
        let context = self.context(task, task.payload.clone());
        let started = Instant::now();
        let result = tokio::select! {
            result = self.run_handler(&context) => Some(result),
            () = stop.cancelled() => None,
        };
        let duration = started.elapsed();
        let (outcome, error) = match &result {
            Some(Ok(_)) => (activity::Outcome::Succeeded, None),
            Some(Err(e)) if !e.retry => (activity::Outcome::FailedForGood, Some(&*e.message)),
            Some(Err(e)) => (activity::Outcome::Failed, Some(&*e.message)),
            None => (activity::Outcome::Released, None),
        };
        if let Some(result) = &result {
            m::task_finished(result.is_ok(), duration);
        }
        self.log_end(task, outcome, duration, error);
        result
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

    /// The handler's view of `task`, with its `payload`.
    pub fn context(&self, task: &LeasedTask, payload: Value) -> TaskContext {
        TaskContext {
            task_id: task.task_id,
            lease_id: task.lease_id.clone(),
            queue: task.queue.clone(),
            attempt: task.attempt,
            worker_id: self.worker_id.clone(),
            payload,
        }
    }

    /// Renews the lease every third of its length while the run goes on. Returns when the
    /// master refuses a renewal, asks for cancellation, or cannot be reached before the lease
    /// runs out, and says which.
    async fn heartbeat(&self, task: &LeasedTask) -> LeaseEnd {
        let mut expires_at = task.expires_at;
        loop {
            let left = until(expires_at);
            tokio::time::sleep((left / 3).max(Duration::from_millis(100))).await;
            // Boxed: most runs end before their first heartbeat, and the request's future would
            // make every run's future larger.
            let renewed = Box::pin(self.client.heartbeat(
                task.task_id,
                &task.lease_id,
                self.lease_secs,
            ))
            .await;
            match renewed {
                Ok(ack) if ack.cancel_requested => return LeaseEnd::Cancelled,
                Ok(ack) => expires_at = ack.expires_at,
                Err(e) if !e.is_transient() => {
                    tracing::warn!(task_id = %task.task_id, error = %e, "heartbeat refused");
                    m::master_error("heartbeat");
                    return LeaseEnd::Lost(format!("heartbeat {e}"));
                }
                Err(e) => {
                    m::master_error("heartbeat");
                    if until(expires_at).is_zero() {
                        tracing::warn!(task_id = %task.task_id, error = %e, "lease ran out while the master was unreachable");
                        return LeaseEnd::Lost(format!("lease ran out while {e}"));
                    }
                }
            }
        }
    }

    /// Hands the result over (freeing the slot), then sends it again until the master takes it
    /// or refuses it. Network errors and 5xx are retried (safe: the master accepts the same result
    /// twice); a refusal means the work was superseded: the run is lost.
    async fn deliver(
        &self,
        task: &LeasedTask,
        result: Result<Value, TaskError>,
        slot: Slot,
        stop: &CancellationToken,
    ) -> Conclusion {
        let error = result.as_ref().err().map(|e| e.message.clone());
        let report = to_report(task, &self.worker_id, result);
        let give_up = Instant::now() + RESULT_RETRY_WINDOW;
        let mut backoff = Duration::from_millis(100);
        let mut sent = self
            .reporter
            .finish(task.task_id, report.clone(), slot)
            .await;
        loop {
            match sent {
                Ok(state) => return (settled(error.is_some(), state), error),
                Err(e) if !e.is_transient() => {
                    m::result_refused();
                    return (activity::Outcome::Lost, Some(format!("result {e}")));
                }
                Err(e) => {
                    m::master_error("result");
                    if Instant::now() + backoff > give_up {
                        tracing::error!(task_id = %task.task_id, error = %e, "giving up on delivering a result; the lease is long gone");
                        return (
                            activity::Outcome::Lost,
                            Some(format!("result not delivered: {e}")),
                        );
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
            // The task itself waits as long as its queue, no longer.
            retry_after_secs: error.pause_queue_secs,
            pause_queue_secs: error.pause_queue_secs,
            ..TaskResult::failed(task.lease_id.clone(), worker_id, error.message)
        },
    }
}

/// How an accepted result ended the task, from the state the master answered it is in: a
/// failure that leaves the task `failed` is for good (no attempts left, or no retry asked for).
fn settled(failed: bool, state: Option<TaskState>) -> activity::Outcome {
    match (failed, state) {
        (false, _) => activity::Outcome::Succeeded,
        (true, Some(TaskState::Failed)) => activity::Outcome::FailedForGood,
        (true, _) => activity::Outcome::Failed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use activity::Outcome::{Failed, FailedForGood, Succeeded};

    #[test]
    fn a_failure_is_for_good_when_the_master_answers_that_the_task_failed() {
        assert_eq!(settled(true, Some(TaskState::Failed)), FailedForGood);
        assert_eq!(settled(true, Some(TaskState::Queued)), Failed);
        assert_eq!(settled(true, None), Failed);
        assert_eq!(settled(false, Some(TaskState::Succeeded)), Succeeded);
    }
}
