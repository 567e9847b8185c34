//! The pull loop: lease tasks a batch at a time into a small buffer, start each in a free slot,
//! and carry the finished tasks' results in the next lease request, until told to stop.
//!
//! The buffer hides the lease round trip: a freed slot starts a buffered task at once instead
//! of waiting for the master. Its size follows the worker's pace ([`Slots::freeing_within`]):
//! at most `--prefetch`, and no more than the slots would start within [`HORIZON`], so that
//! quick tasks are buffered generously while slow ones are not buffered at all and no task waits
//! in one worker while another sits idle. [`plan`] decides when to lease; [`buffer`] holds the
//! tasks and hands back any that waited half their lease.

mod buffer;
mod plan;

use std::pin::Pin;
use std::time::Duration;

use common::{LeaseRequest, LeaseResponse, LeasedTask, ReportFor};
use leasehold_client::ClientError;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::execute::Runner;
use crate::metrics as m;
use crate::report::{Carried, HOLD, Reporter};
use crate::slots::Slots;
use buffer::Buffer;
use plan::{Next, Plan};

/// How far ahead the buffer holds work: what the slots would start within this time.
pub const HORIZON: Duration = Duration::from_millis(50);
/// Longest pause between two lease attempts while the master is unreachable.
const MAX_LEASE_BACKOFF: Duration = Duration::from_secs(10);
const FIRST_LEASE_BACKOFF: Duration = Duration::from_millis(200);

/// What the pull loop needs besides the runner.
#[derive(Debug, Clone)]
pub struct PullConfig {
    pub queues: Vec<String>,
    /// Long-poll wait per lease request.
    pub wait_secs: u64,
    /// Lease length to ask for; each task's own when `None`.
    pub lease_secs: Option<u64>,
    /// Most leased tasks waiting for a slot.
    pub prefetch: usize,
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
/// tasks are tracked by `tracker` and end early only when `stop_tasks` is cancelled; buffered
/// ones are handed back at once when leasing stops.
pub async fn pull_loop(
    runner: Runner,
    config: PullConfig,
    slots: Slots,
    tracker: TaskTracker,
    stop_leasing: CancellationToken,
    stop_tasks: CancellationToken,
) -> PullEnd {
    if config.disabled {
        stop_leasing.cancelled().await;
        return PullEnd::Stopped;
    }
    runner.reporter.ride();
    let mut puller = Puller {
        runner,
        config,
        slots,
        tracker,
        stop_leasing,
        stop_tasks,
        buffer: Buffer::default(),
        leases: JoinSet::new(),
        asked: 0,
        long_polling: false,
        dry: false,
        retry_at: None,
        backoff: FIRST_LEASE_BACKOFF,
        timer: Box::pin(tokio::time::sleep_until(far_future())),
        timer_at: None,
    };
    let end = puller.run().await;
    puller.stop().await;
    end
}

/// The pull loop's state.
struct Puller {
    runner: Runner,
    config: PullConfig,
    slots: Slots,
    tracker: TaskTracker,
    stop_leasing: CancellationToken,
    stop_tasks: CancellationToken,
    buffer: Buffer,
    /// Lease requests in flight.
    leases: JoinSet<Answered>,
    /// Tasks they asked for.
    asked: usize,
    long_polling: bool,
    /// The last answer had fewer tasks than asked for.
    dry: bool,
    /// No lease before this (the master could not be reached).
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Fires at `timer_at`, when something is due without an event.
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
}

/// A lease request's end.
struct Answered {
    asked: usize,
    long_poll: bool,
    /// The results it carried, to answer from its reply or to send again.
    carried: Carried,
    results: Vec<ReportFor>,
    /// `None` when the worker stopped before the master answered.
    reply: Option<Result<LeaseResponse, ClientError>>,
}

impl Puller {
    async fn run(&mut self) -> PullEnd {
        loop {
            if self.stop_leasing.is_cancelled() {
                return PullEnd::Stopped;
            }
            self.start_buffered();
            self.hand_back_stale();
            while let Next::Lease {
                max_tasks,
                long_poll,
            } = self.plan().next()
            {
                self.lease(max_tasks, long_poll);
            }
            m::buffered(self.buffer.len());
            // One timer, moved only when its moment changes: the loop turns once per task.
            let next = self.next_timer();
            if next != self.timer_at {
                self.timer_at = next;
                self.timer.as_mut().reset(next.unwrap_or_else(far_future));
            }
            tokio::select! {
                biased;
                () = self.stop_leasing.cancelled() => return PullEnd::Stopped,
                Some(answered) = self.leases.join_next() => {
                    let answered = answered.expect("a lease request does not panic");
                    if self.answered(answered) == Some(PullEnd::Drained) {
                        return PullEnd::Drained;
                    }
                }
                () = self.slots.freed() => {}
                () = self.timer.as_mut(), if self.timer_at.is_some() => self.on_timer(),
            }
        }
    }

    fn plan(&self) -> Plan {
        Plan {
            concurrency: self.slots.size(),
            busy: self.slots.busy(),
            buffered: self.buffer.len(),
            target: self.slots.freeing_within(HORIZON).min(self.config.prefetch),
            asked: self.asked,
            leases: self.leases.len(),
            long_polling: self.long_polling,
            retrying: self.retry_at.is_some_and(|at| Instant::now() < at),
            dry: self.dry,
        }
    }

    /// Starts buffered tasks in the free slots.
    fn start_buffered(&mut self) {
        while !self.buffer.is_empty() {
            let Some(slot) = self.slots.try_take() else {
                return;
            };
            let task = self.buffer.pop().expect("not empty");
            tracing::debug!(task_id = %task.task_id, attempt = task.attempt, "starting");
            let (runner, stop) = (self.runner.clone(), self.stop_tasks.clone());
            self.tracker
                .spawn(async move { runner.run_leased(task, slot, stop).await });
        }
    }

    /// Hands back buffered tasks that have waited half their lease.
    fn hand_back_stale(&mut self) {
        let stale = self.buffer.take_stale(Instant::now());
        if !stale.is_empty() {
            tracing::info!(
                count = stale.len(),
                "buffered tasks waited half their lease for a slot: handing them back"
            );
            self.hand_back(stale);
        }
    }

    /// Releases tasks without running them (no attempt is counted).
    fn hand_back(&self, tasks: Vec<LeasedTask>) {
        m::handed_back(tasks.len());
        for task in tasks {
            let runner = self.runner.clone();
            self.tracker
                .spawn(async move { runner.release(&task).await });
        }
    }

    /// Sends a lease request carrying the results held for it.
    fn lease(&mut self, max_tasks: u32, long_poll: bool) {
        let (results, carried) = self.runner.reporter.take_for_lease(long_poll);
        let mut request = LeaseRequest {
            worker_id: self.runner.worker_id.clone(),
            queues: Some(self.config.queues.clone()),
            max_tasks: Some(max_tasks),
            lease_secs: self.config.lease_secs,
            wait_secs: Some(if long_poll { self.config.wait_secs } else { 0 }),
            results,
        };
        self.asked += max_tasks as usize;
        self.long_polling |= long_poll;
        let client = self.runner.client.clone();
        let stop = self.stop_leasing.clone();
        self.leases.spawn(async move {
            // Stopping drops a long-poll the master has not answered yet; the results it
            // carried are then sent again on their own (an accepted one is accepted again).
            let reply = client.lease_unless(&request, &stop).await;
            Answered {
                asked: max_tasks as usize,
                long_poll,
                carried,
                results: std::mem::take(&mut request.results),
                reply,
            }
        });
    }

    /// Takes in a lease request's answer: its results' acknowledgements and its tasks.
    fn answered(&mut self, answered: Answered) -> Option<PullEnd> {
        self.asked -= answered.asked;
        if answered.long_poll {
            self.long_polling = false;
            self.runner.reporter.ride();
        }
        let reporter = &self.runner.reporter;
        match answered.reply {
            None => reporter.send_again(answered.results, answered.carried),
            Some(Ok(mut reply)) => {
                self.backoff = FIRST_LEASE_BACKOFF;
                self.retry_at = None;
                Reporter::answer(answered.carried, std::mem::take(&mut reply.results));
                self.dry = reply.tasks.len() < answered.asked;
                let now = Instant::now();
                for task in reply.tasks {
                    tracing::debug!(task_id = %task.task_id, attempt = task.attempt, "leased");
                    self.buffer.push(task, now);
                }
                if reply.no_more_tasks && self.config.exit_when_drained {
                    tracing::info!("the master has no more tasks for these queues");
                    return Some(PullEnd::Drained);
                }
            }
            Some(Err(e)) => {
                reporter.send_again(answered.results, answered.carried);
                self.cannot_lease(&e);
            }
        }
        None
    }

    fn cannot_lease(&mut self, e: &ClientError) {
        m::master_error("lease");
        let backoff = self.backoff;
        match e.status() {
            Some(401) => tracing::error!(error = %e, retry_in = ?backoff,
                "the master refused this worker's token: set --worker-token \
                 (LEASEHOLD_WORKER_TOKEN) to the master's --worker-token"),
            _ => tracing::warn!(error = %e, retry_in = ?backoff, "cannot lease"),
        }
        self.retry_at = Some(Instant::now() + backoff);
        self.backoff = (backoff * 2).min(MAX_LEASE_BACKOFF);
    }

    /// The next moment something is due without an event: held results go on their own, a
    /// buffered task goes stale, or a lease may be retried.
    fn next_timer(&self) -> Option<Instant> {
        let held = self.runner.reporter.held_since().map(|since| since + HOLD);
        [held, self.buffer.next_stale(), self.retry_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
        }
        if self
            .runner
            .reporter
            .held_since()
            .is_some_and(|since| since + HOLD <= now)
        {
            self.runner.reporter.flush();
        }
    }

    /// Stops leasing: held results go at once, buffered tasks are handed back, and so are the
    /// tasks of lease requests answered as the worker stopped.
    async fn stop(&mut self) {
        self.runner.reporter.stop_riding();
        let buffered = self.buffer.take_all();
        m::buffered(0);
        self.hand_back(buffered);
        while let Some(answered) = self.leases.join_next().await {
            let answered = answered.expect("a lease request does not panic");
            match answered.reply {
                Some(Ok(mut reply)) => {
                    Reporter::answer(answered.carried, std::mem::take(&mut reply.results));
                    self.hand_back(reply.tasks);
                }
                Some(Err(_)) | None => {
                    let reporter = &self.runner.reporter;
                    reporter.send_again(answered.results, answered.carried);
                }
            }
        }
    }
}

/// A moment the loop's timer waits for when nothing is due.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}
