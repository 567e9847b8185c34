//! What a lease holder does: lease (with the results it finished), renew, report, release.

use std::sync::Arc;
use std::time::Duration;

use common::{
    Heartbeat, HeartbeatAck, LeaseId, LeaseRequest, LeasedTask, Outcome, Release, ReportFor, Task,
    TaskId, TaskResult, WorkerRequest,
};
use futures_util::future::join_all;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::activity::Transition;
use super::pull_workers::Heard;
use super::rules::secs_to_ms;
use super::{Engine, EngineError, Result, limits, rules, validate, view};
use crate::metrics as m;
use crate::model::history::Request;
use crate::model::{Conflict, LeaseQuery, TaskRecord};
use crate::store::{Decide, LeaseRules, Updated};

/// The rules every lease applies: the lease of each task, and each limited queue's gate.
pub const LEASE_RULES: LeaseRules = LeaseRules {
    grant: rules::on_lease,
    admit: limits::admit,
    deal: limits::deal::<TaskId>,
    settle: limits::settle,
};

impl Engine {
    /// Records the results the request carries (as [`report_batch`](Self::report_batch) does),
    /// then leases ready tasks; with `wait_secs`, waits until one is ready or the time is up.
    /// Everything is checked before anything is recorded. The results reach the store just
    /// ahead of the first lease, so that one group commit usually holds both (two commits one
    /// after the other were most of a lease-and-report round trip), and both are committed
    /// before any wait begins. If the results cannot be recorded, whatever was leased with them
    /// is handed back and the request fails.
    pub async fn lease(&self, request: LeaseRequest) -> LeaseOutcome {
        self.lease_until(request, &CancellationToken::new()).await
    }

    /// As [`lease`](Self::lease), for a caller that may vanish mid-request (an HTTP client whose
    /// connection closes, which drops the request's future). The lease runs in a task of its own,
    /// so that a vanishing caller cannot interrupt it between the store's commit and its answer;
    /// the caller's going ends a long-poll's wait, and whatever was leased for a caller no longer
    /// there is handed back at once, its attempt not counted, rather than stay leased to nobody
    /// until the lease expires.
    pub async fn lease_detached(self: &Arc<Self>, request: LeaseRequest) -> LeaseOutcome {
        let (answer, answered) = oneshot::channel();
        let gone = CancellationToken::new();
        let _gone_when_dropped = gone.clone().drop_guard();
        let engine = self.clone();
        tokio::spawn(async move {
            let outcome = engine.lease_until(request, &gone).await;
            // Unread (the caller gone before or after it was sent), it hands its tasks back.
            let _ = answer.send(Unread {
                engine,
                outcome: Some(outcome),
            });
        });
        let mut unread = answered.await.map_err(|_| EngineError::Interrupted)?;
        unread.outcome.take().expect("read once")
    }

    /// As [`lease`](Self::lease); a long-poll also ends when `gone` is cancelled (but a lease
    /// being committed is not interrupted: a caller that stops waiting this way gets what was
    /// leased, to start or to [hand back](Self::hand_back_leased)).
    pub async fn lease_until(
        &self,
        mut request: LeaseRequest,
        gone: &CancellationToken,
    ) -> LeaseOutcome {
        let query = lease_query(&request)?;
        let wait = validate::wait_secs(request.wait_secs)?;
        let reports = std::mem::take(&mut request.results);
        check_results(&reports, 0)?;
        // One note for the request, whatever it carries and leases: the results it reports are
        // not noted apart (a lease is the later request), so this path pays one short lock.
        let heard = Heard {
            worker: &query.worker_id,
            request: WorkerRequest::Lease,
            queues: &query.queues,
        };
        self.heard.note(self.clock.now_ms(), [heard]);
        let deadline = Instant::now() + Duration::from_secs(wait);
        let waiting = (wait > 0).then(|| self.waiters.enter(&query.queues));
        let mut wake_up = waiting.as_ref().map(|w| w.armed());
        // `join!` polls in order: the results' jobs are queued before the lease's. (The results'
        // future is boxed, as is the hand-back below: a long-poll keeps this future for its whole
        // wait, and inline they made each 1 KiB larger, 12 MiB for 10,000 long-polls.)
        let (reported, leased) = tokio::join!(
            Box::pin(self.record_results(reports)),
            self.lease_now(&query)
        );
        let reported: Vec<Result<Task>> = match reported {
            Ok(reported) => reported.into_iter().map(task_view).collect(),
            Err(e) => {
                if let Ok(leased) = leased {
                    Box::pin(self.hand_back(lease_ids(leased.tasks))).await;
                }
                return Err(e);
            }
        };
        let mut leased = leased?;
        while let Some(armed) = wake_up.filter(|_| leased.tasks.is_empty() && !leased.drained) {
            tokio::select! {
                () = armed => {}
                () = tokio::time::sleep_until(deadline) => break,
                () = self.shutdown.cancelled() => break,
                () = gone.cancelled() => break,
            }
            wake_up = waiting.as_ref().map(|w| w.armed());
            leased = self.lease_now(&query).await?;
        }
        drop(waiting);
        // A full batch may have left ready tasks behind. Tasks made ready by the clock are
        // announced with a single wake-up per reaper pass, so pass it on to the next waiter, or
        // they would reach long-polls one per tick.
        if leased.tasks.len() == query.max_tasks as usize {
            for queue in &query.queues {
                self.waiters.wake(queue, 1);
            }
        }
        Ok(Granted {
            tasks: leased.tasks.into_iter().map(view::leased_task).collect(),
            drained: leased.drained,
            results: reported,
        })
    }

    /// Releases tasks leased for a caller that will not run them.
    pub async fn hand_back_leased(&self, tasks: Vec<LeasedTask>) {
        let leases = tasks.into_iter().map(|t| (t.task_id, t.lease_id));
        self.hand_back(leases.collect()).await;
    }

    /// Releases tasks leased for a request that then failed or whose caller is gone, so that
    /// they need not wait for their leases to expire (a release gives the attempt back).
    async fn hand_back(&self, leases: Vec<(TaskId, LeaseId)>) {
        for (task_id, lease_id) in leases {
            let release = Release {
                lease_id,
                delay_secs: Some(0),
            };
            if let Err(e) = self.release(task_id, release).await {
                tracing::warn!(%task_id, error = %crate::chain::Chain(&e), "release failed; the lease will expire instead");
            }
        }
    }

    /// One look at the queues: the store chooses the best ready tasks, [`rules::on_lease`]
    /// leases each, and [`rules::drained`] tells a request that found none whether any will come.
    async fn lease_now(&self, query: &LeaseQuery) -> Result<Taken> {
        let now = self.clock.now_ms();
        let leased = self.store.lease(query.clone(), now, LEASE_RULES).await?;
        for (queue, at) in &leased.reopens {
            self.reopen_at(queue, *at);
        }
        for task in &leased.tasks {
            m::lease_granted(&task.queue, now - task.run_at);
        }
        let queues = leased.tasks.iter().map(|task| task.queue.as_str());
        self.activity.count_each(queues, Transition::Leased, now);
        Ok(Taken {
            drained: leased.tasks.is_empty() && rules::drained(&leased.backlog),
            tasks: leased.tasks,
        })
    }

    pub async fn heartbeat(&self, id: TaskId, beat: Heartbeat) -> Result<HeartbeatAck> {
        validate::duration_secs("lease_secs", beat.lease_secs, 1)?;
        let now = self.clock.now_ms();
        let holder = Holder::of(&beat.lease_id, None, Request::Heartbeat);
        let updated = self
            .update_fenced(
                id,
                Box::new(move |task| rules::on_heartbeat(task, &beat, now)),
                holder,
            )
            .await?;
        self.heard_from(WorkerRequest::Heartbeat, [&updated]);
        let lease = updated.after.lease.expect("a live lease after a heartbeat");
        Ok(HeartbeatAck {
            expires_at: view::timestamp(lease.expires_at),
            cancel_requested: updated.after.cancel_requested,
        })
    }

    /// Records a worker's result, fenced by its lease. A failure may pause the task's queue
    /// for a while (`pause_queue_secs`, e.g. the downstream answered `429`).
    pub async fn report(&self, id: TaskId, report: TaskResult) -> Result<Task> {
        let updated = self.record_result(id, report).await?;
        self.heard_from(WorkerRequest::Result, [&updated]);
        Ok(view::task(updated.after))
    }

    /// [`report`](Self::report), but for noting its worker, which a caller of many does once.
    async fn record_result(&self, id: TaskId, report: TaskResult) -> Result<Updated> {
        validate::report(&report)?;
        let now = self.clock.now_ms();
        let policy = self.policy;
        let outcome = report.outcome;
        let pause_secs = report
            .pause_queue_secs
            .filter(|_| outcome == Outcome::Failed);
        let holder = Holder::of(&report.lease_id, Some(&report.worker_id), Request::Result);
        let decide: Decide = Box::new(move |task| rules::on_result(task, &report, now, &policy));
        let updated = self.update_fenced(id, decide, holder).await?;
        if updated.before != updated.after {
            m::task_finished(&updated.after, outcome, now - updated.before.updated_at);
            if let Some(transition) = Transition::of_result(outcome, updated.after.state) {
                self.activity
                    .count(&updated.after.queue, transition, 1, now);
            }
            if let Some(secs) = pause_secs {
                self.pause_for(&updated.after.queue, secs).await?;
            }
        }
        Ok(updated)
    }

    /// Records many results, each fenced by its own lease, each answered on its own. They reach
    /// the store together, so the store commits them together. Malformed input refuses the whole
    /// batch before anything is recorded; a store failure fails them all.
    pub async fn report_batch(&self, reports: Vec<ReportFor>) -> Result<Vec<Result<Task>>> {
        check_results(&reports, 1)?;
        let outcomes = self.record_results(reports).await?;
        self.heard_from(WorkerRequest::Result, outcomes.iter().flatten());
        Ok(outcomes.into_iter().map(task_view).collect())
    }

    /// Records checked results together; a store failure fails them all.
    async fn record_results(&self, reports: Vec<ReportFor>) -> Result<Vec<Result<Updated>>> {
        let outcomes = join_all(
            reports
                .into_iter()
                .map(|item| self.record_result(item.task_id, item.report)),
        )
        .await;
        if let Some(Err(EngineError::Store(cause))) = outcomes
            .iter()
            .find(|outcome| matches!(outcome, Err(EngineError::Store(_))))
        {
            return Err(EngineError::Store(cause.clone()));
        }
        Ok(outcomes)
    }

    pub async fn release(&self, id: TaskId, release: Release) -> Result<Task> {
        validate::duration_secs("delay_secs", release.delay_secs, 0)?;
        let now = self.clock.now_ms();
        let policy = self.policy;
        let holder = Holder::of(&release.lease_id, None, Request::Release);
        let updated = self
            .update_fenced(
                id,
                Box::new(move |task| rules::on_release(task, &release, now, &policy)),
                holder,
            )
            .await?;
        self.heard_from(WorkerRequest::Release, [&updated]);
        Ok(view::task(updated.after))
    }

    /// Applies a lease holder's request; one that fencing refuses is kept in the task's history.
    async fn update_fenced(&self, id: TaskId, decide: Decide, holder: Holder) -> Result<Updated> {
        let outcome = self.update(id, decide).await;
        if let Err(EngineError::Conflict(conflict)) = &outcome {
            self.keep_refusal(id, holder, conflict.clone()).await;
        }
        outcome
    }

    /// Adds a refused request to the task's history, in a commit of its own: a refusal changes
    /// nothing else. Best effort: the refusal is answered whether or not it could be kept.
    async fn keep_refusal(&self, id: TaskId, holder: Holder, conflict: Conflict) {
        let now = self.clock.now_ms();
        let policy = self.policy;
        let decide: Decide = Box::new(move |task| {
            let refused = (
                &holder.lease_id,
                holder.worker_id.as_deref(),
                holder.request,
            );
            Ok(rules::on_refused(task, refused, &conflict, now, &policy))
        });
        if let Err(e) = self.store.update(id, decide).await {
            tracing::warn!(task_id = %id, error = %crate::chain::Chain(&e), "could not keep a refused request in the task's history");
        }
    }
}

/// A lease holder's request, as the task's history keeps it if fencing refuses it.
struct Holder {
    lease_id: LeaseId,
    worker_id: Option<String>,
    request: Request,
}

impl Holder {
    fn of(lease_id: &LeaseId, worker_id: Option<&str>, request: Request) -> Holder {
        Holder {
            lease_id: lease_id.clone(),
            worker_id: worker_id.map(str::to_owned),
            request,
        }
    }
}

/// What a lease request got.
#[derive(Debug)]
pub struct Granted {
    /// The tasks leased, possibly none.
    pub tasks: Vec<LeasedTask>,
    /// Nothing was leased, and none will be: every queue asked for is sealed and empty.
    pub drained: bool,
    /// The outcome of each result the request carried, in order.
    pub results: Vec<Result<Task>>,
}

/// A lease's answer, or why the request failed as a whole.
pub type LeaseOutcome = Result<Granted>;

/// What one look at the queues leased.
struct Taken {
    tasks: Vec<TaskRecord>,
    /// Nothing was leased, and the queues are drained.
    drained: bool,
}

/// The lease a request asks for, checked.
fn lease_query(request: &LeaseRequest) -> validate::Checked<LeaseQuery> {
    validate::name("worker_id", &request.worker_id)?;
    let lease = validate::duration_secs("lease_secs", request.lease_secs, 1)?;
    Ok(LeaseQuery {
        worker_id: request.worker_id.clone(),
        queues: validate::lease_queues(request.queues.as_deref())?,
        max_tasks: validate::max_tasks(request.max_tasks)?,
        lease_ms: lease.map(secs_to_ms),
    })
}

/// A lease's outcome on its way to a caller that may be gone: dropped before the caller takes
/// it, it hands back what was leased.
struct Unread {
    engine: Arc<Engine>,
    outcome: Option<LeaseOutcome>,
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(Ok(granted)) = self.outcome.take()
            && !granted.tasks.is_empty()
        {
            let engine = self.engine.clone();
            tokio::spawn(async move { engine.hand_back_leased(granted.tasks).await });
        }
    }
}

/// A result's outcome as the API answers it: the task after it.
fn task_view(outcome: Result<Updated>) -> Result<Task> {
    outcome.map(|updated| view::task(updated.after))
}

/// Each leased task's id and lease id.
fn lease_ids(tasks: Vec<TaskRecord>) -> Vec<(TaskId, LeaseId)> {
    tasks
        .into_iter()
        .filter_map(|task| Some((task.id, task.lease?.id)))
        .collect()
}

/// Refuses a batch of results, before anything is recorded, if it holds fewer than `at_least`
/// or more than a batch's maximum, or any malformed one.
fn check_results(reports: &[ReportFor], at_least: usize) -> Result<()> {
    validate::in_range(
        "results (count)",
        reports.len(),
        at_least,
        common::MAX_REPORT_BATCH,
    )?;
    for (i, item) in reports.iter().enumerate() {
        validate::report(&item.report)
            .map_err(|e| EngineError::Invalid(format!("results[{i}]: {e}")))?;
    }
    Ok(())
}
