//! The pull loop: lease as many tasks as there are free slots (long-polling when there are
//! none), run each in its own tokio task, and repeat until told to stop.

use std::sync::Arc;
use std::time::Duration;

use common::LeaseRequest;
use leasehold_client::free_slots;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::execute::Runner;
use crate::metrics as m;
use crate::report::Reporter;

/// Longest pause between two lease attempts while the master is unreachable.
const MAX_LEASE_BACKOFF: Duration = Duration::from_secs(10);

/// What the pull loop needs besides the runner.
#[derive(Debug, Clone)]
pub struct PullConfig {
    pub queues: Vec<String>,
    /// Long-poll wait per lease request.
    pub wait_secs: u64,
    /// Lease length to ask for; each task's own when `None`.
    pub lease_secs: Option<u64>,
    /// Return once the master says every queue is sealed and drained.
    pub exit_when_drained: bool,
    /// Do not lease at all (push-only worker).
    pub disabled: bool,
}

/// Why the pull loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullEnd {
    /// `stop_leasing` was cancelled.
    Stopped,
    /// The master answered `no_more_tasks` and `exit_when_drained` is set.
    Drained,
}

/// Leases and starts tasks until `stop_leasing` is cancelled (or the queues drain). Running
/// tasks are tracked by `tracker` and end early only when `stop_tasks` is cancelled.
pub async fn pull_loop(
    runner: Runner,
    config: PullConfig,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop_leasing: CancellationToken,
    stop_tasks: CancellationToken,
) -> PullEnd {
    if config.disabled {
        stop_leasing.cancelled().await;
        return PullEnd::Stopped;
    }
    let reporter = &runner.reporter;
    let mut backoff = Duration::from_millis(200);
    loop {
        // While the loop waits for a slot, the result of the task that frees it rides on the
        // next lease request.
        reporter.start_waiting();
        let permits = tokio::select! {
            permits = free_slots(&slots) => permits,
            () = stop_leasing.cancelled() => {
                reporter.stop_waiting();
                return PullEnd::Stopped;
            }
        };
        let carried = reporter.take_for_lease();
        let request = LeaseRequest {
            worker_id: runner.worker_id.clone(),
            queues: Some(config.queues.clone()),
            max_tasks: Some(permits.len() as u32),
            lease_secs: config.lease_secs,
            wait_secs: Some(config.wait_secs),
            results: carried
                .iter()
                .map(|pending| pending.item().clone())
                .collect(),
        };
        // Stopping drops a long-poll the master has not answered yet; the results it carried
        // are sent again on their own (an accepted one is accepted again).
        let Some(leased) = runner.client.lease_unless(&request, &stop_leasing).await else {
            reporter.send(carried);
            return PullEnd::Stopped;
        };
        match leased {
            Ok(mut leased) => {
                backoff = Duration::from_millis(200);
                Reporter::answer(carried, std::mem::take(&mut leased.results));
                if stop_leasing.is_cancelled() {
                    // Answered as the worker began to stop: hand the tasks straight back
                    // rather than start them.
                    for task in &leased.tasks {
                        runner.release(task).await;
                    }
                    return PullEnd::Stopped;
                }
                if leased.no_more_tasks && config.exit_when_drained {
                    tracing::info!("the master has no more tasks for these queues");
                    return PullEnd::Drained;
                }
                for (task, permit) in leased.tasks.into_iter().zip(permits) {
                    tracing::debug!(task_id = %task.task_id, attempt = task.attempt, "leased");
                    let (runner, stop) = (runner.clone(), stop_tasks.clone());
                    tracker.spawn(async move { runner.run_leased(task, permit, stop).await });
                }
            }
            Err(e) => {
                reporter.send(carried);
                m::master_error("lease");
                match e.status() {
                    Some(401) => tracing::error!(error = %e, retry_in = ?backoff,
                        "the master refused this worker's token: set --worker-token \
                         (LEASEHOLD_WORKER_TOKEN) to the master's --worker-token"),
                    _ => tracing::warn!(error = %e, retry_in = ?backoff, "cannot lease"),
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop_leasing.cancelled() => return PullEnd::Stopped,
                }
                backoff = (backoff * 2).min(MAX_LEASE_BACKOFF);
            }
        }
    }
}
