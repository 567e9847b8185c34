//! The rules of a lease, as pure functions from a task's current record to its next one: every
//! transition of a task is decided here, and nowhere else.
//!
//! The store runs them inside its transaction, so each decision sees the record it changes: the
//! store chooses and locks the candidates, the rule decides, the store writes what it decided.
//! Fencing lives here: a worker's request counts only while its lease id is the task's live lease.
//! A new per-queue policy (a pause, a cap) is a rule here too, given what it needs to know.

use common::{Heartbeat, LeaseId, Outcome, Release, TaskResult, TaskState};

use crate::model::history::{Attempt, Refusal, Request};
use crate::model::{
    Conflict, LeaseEnd, LeaseQuery, LeaseRecord, Millis, NewTask, QueueBacklog, TaskRecord,
};

/// The tunable parts of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Lease length for tasks submitted without one.
    pub default_lease_ms: i64,
    /// Delay before the second attempt of a failed task; doubles with each further attempt.
    pub backoff_base_ms: i64,
    /// Longest backoff delay, before jitter.
    pub backoff_max_ms: i64,
    /// Ended leases a task's history keeps one by one (older ones are summarised), and as many
    /// refused requests.
    pub history_kept: usize,
}

impl Policy {
    /// Delay before retrying a task whose `attempt`-th try failed: exponential, capped, plus up
    /// to a quarter of jitter so that tasks failing together do not retry together.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let exponent = attempt.saturating_sub(1).min(30);
        let delay = self
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(self.backoff_max_ms);
        delay + fastrand::i64(0..=delay / 4)
    }
}

/// A task a lease request took: its next attempt, under a new lease to the request's worker, of
/// the request's length or else the task's own. A cancel asked for under an earlier lease was
/// settled when that lease ended, so the new lease starts without one.
///
/// The task's last lease, ended, moves to its history ([`crate::model::history`]).
pub fn on_lease(mut task: TaskRecord, query: &LeaseQuery, now: Millis) -> TaskRecord {
    if let Some(attempt) = ended_attempt(&task) {
        task.history.ended.push(attempt);
    }
    let lease_ms = query.lease_ms.unwrap_or(task.default_lease_ms);
    TaskRecord {
        state: TaskState::Leased,
        attempts: task.attempts + 1,
        updated_at: now,
        lease: Some(LeaseRecord {
            id: new_lease_id(),
            worker_id: query.worker_id.clone(),
            expires_at: now + lease_ms,
            lease_ms,
            attempt: task.attempts + 1,
            leased_at: now,
            heartbeats: 0,
            last_heartbeat_at: None,
            ended_at: None,
        }),
        lease_end: None,
        cancel_requested: false,
        ..task
    }
}

/// The task's last lease as its history keeps it, if it ended: with the failure it ended with
/// (a task's error changes only when a lease ends).
pub fn ended_attempt(task: &TaskRecord) -> Option<Attempt> {
    let (lease, end) = (task.lease.as_ref()?, task.lease_end?);
    Some(Attempt {
        attempt: lease.attempt,
        lease_id: lease.id.0.clone(),
        worker_id: lease.worker_id.clone(),
        leased_at: lease.leased_at,
        heartbeats: lease.heartbeats,
        last_heartbeat_at: lease.last_heartbeat_at,
        ended_at: lease.ended_at.unwrap_or(task.updated_at),
        end,
        error: task.error.clone().filter(|_| end == LeaseEnd::Failed),
    })
}

/// A fresh lease id: 64 random bits. It fences, so it need only differ from the task's earlier
/// leases; the worker id and the token are what authenticate a worker.
pub fn new_lease_id() -> LeaseId {
    LeaseId(format!("{:016x}", fastrand::u64(..)))
}

/// Whether a lease request that found nothing to lease is told there will be no more tasks:
/// every queue it asked for is sealed, with nothing queued (ready or not) and nothing leased.
pub fn drained(backlog: &[QueueBacklog]) -> bool {
    !backlog.is_empty()
        && backlog
            .iter()
            .all(|queue| queue.sealed && !queue.queued && !queue.leased)
}

/// The task's live lease if it is `lease_id`, or why not.
fn live_lease<'a>(
    task: &'a TaskRecord,
    lease_id: &common::LeaseId,
    now: Millis,
) -> Result<&'a LeaseRecord, Conflict> {
    let Some(lease) = task.lease.as_ref().filter(|lease| lease.id == *lease_id) else {
        return Err(match task.state {
            TaskState::Leased => Conflict::LeaseSuperseded,
            TaskState::Queued => Conflict::LeaseExpired,
            finished => Conflict::TaskFinished(finished),
        });
    };
    match task.lease_end {
        None if task.state == TaskState::Leased && lease.expires_at > now => Ok(lease),
        None | Some(LeaseEnd::Expired) => Err(Conflict::LeaseExpired),
        Some(LeaseEnd::Released) => Err(Conflict::LeaseReleased),
        Some(LeaseEnd::Succeeded | LeaseEnd::Failed | LeaseEnd::Cancelled) => {
            Err(Conflict::LeaseEnded)
        }
    }
}

/// The error a failed result leaves on its task.
fn failure_message(report: &TaskResult) -> String {
    report
        .error
        .clone()
        .unwrap_or_else(|| "the worker reported a failure".into())
}

/// Whether `report` is the result its finished lease already recorded: same value, and for a
/// failure the same error. A resend must be identical to be answered as the original was.
fn same_report(task: &TaskRecord, report: &TaskResult) -> bool {
    let error = match report.outcome {
        Outcome::Succeeded => None,
        Outcome::Failed => Some(failure_message(report)),
    };
    task.result == report.result && task.error == error
}

/// A worker's result. Re-sending an accepted result with the same lease changes nothing.
pub fn on_result(
    task: &TaskRecord,
    report: &TaskResult,
    now: Millis,
    policy: &Policy,
) -> Result<TaskRecord, Conflict> {
    if let Some(lease) = task.lease.as_ref().filter(|l| l.id == report.lease_id) {
        if lease.worker_id != report.worker_id {
            return Err(Conflict::WrongWorker);
        }
        match (task.lease_end, report.outcome) {
            (Some(LeaseEnd::Succeeded), Outcome::Succeeded)
            | (Some(LeaseEnd::Failed), Outcome::Failed)
                if same_report(task, report) =>
            {
                return Ok(task.clone());
            }
            (Some(LeaseEnd::Succeeded | LeaseEnd::Failed), _) => {
                return Err(Conflict::ResultMismatch);
            }
            _ => {}
        }
    }
    live_lease(task, &report.lease_id, now)?;
    let mut next = task.clone();
    next.updated_at = now;
    match report.outcome {
        Outcome::Succeeded => {
            next.state = TaskState::Succeeded;
            end_lease(&mut next, LeaseEnd::Succeeded, now, policy);
            next.result = report.result.clone();
            next.error = None;
            next.completed_by = Some(report.worker_id.clone());
        }
        Outcome::Failed => {
            next.error = Some(failure_message(report));
            end_lease(&mut next, LeaseEnd::Failed, now, policy);
            next.result = report.result.clone();
            let retry = report.retry.unwrap_or(true) && task.attempts < task.max_attempts;
            if task.cancel_requested {
                next.state = TaskState::Cancelled;
            } else if retry {
                next.state = TaskState::Queued;
                next.run_at = now
                    + report
                        .retry_after_secs
                        .map_or_else(|| policy.backoff_ms(task.attempts), secs_to_ms);
            } else {
                next.state = TaskState::Failed;
                next.completed_by = Some(report.worker_id.clone());
            }
        }
    }
    Ok(next)
}

/// A worker extending its lease.
pub fn on_heartbeat(
    task: &TaskRecord,
    beat: &Heartbeat,
    now: Millis,
) -> Result<TaskRecord, Conflict> {
    let lease = live_lease(task, &beat.lease_id, now)?;
    let lease_ms = beat.lease_secs.map_or(lease.lease_ms, secs_to_ms);
    let mut next = task.clone();
    next.lease = Some(LeaseRecord {
        expires_at: now + lease_ms,
        lease_ms,
        heartbeats: lease.heartbeats + 1,
        last_heartbeat_at: Some(now),
        ..lease.clone()
    });
    Ok(next)
}

/// A worker handing a task back unfinished: its attempt is not counted.
pub fn on_release(
    task: &TaskRecord,
    release: &Release,
    now: Millis,
    policy: &Policy,
) -> Result<TaskRecord, Conflict> {
    live_lease(task, &release.lease_id, now)?;
    let mut next = task.clone();
    next.updated_at = now;
    if task.cancel_requested {
        next.state = TaskState::Cancelled;
        end_lease(&mut next, LeaseEnd::Cancelled, now, policy);
    } else {
        next.state = TaskState::Queued;
        end_lease(&mut next, LeaseEnd::Released, now, policy);
        next.run_at = now + release.delay_secs.map_or(0, secs_to_ms);
    }
    next.attempts = task.attempts.saturating_sub(1);
    Ok(next)
}

/// An operator cancelling a task. A leased task is only marked: its worker learns of it at the
/// next heartbeat and hands it back, or its lease runs out.
pub fn on_cancel(task: &TaskRecord, now: Millis) -> Result<TaskRecord, Conflict> {
    let mut next = task.clone();
    match task.state {
        TaskState::Queued => {
            next.state = TaskState::Cancelled;
            next.updated_at = now;
        }
        TaskState::Leased => next.cancel_requested = true,
        TaskState::Cancelled => {}
        finished => return Err(Conflict::WrongState(finished, "queued or leased")),
    }
    Ok(next)
}

/// An operator putting a failed or cancelled task back in its queue, with fresh attempts.
pub fn on_retry(task: &TaskRecord, now: Millis) -> Result<TaskRecord, Conflict> {
    if !matches!(task.state, TaskState::Failed | TaskState::Cancelled) {
        return Err(Conflict::WrongState(task.state, "failed or cancelled"));
    }
    let mut next = task.clone();
    next.state = TaskState::Queued;
    next.attempts = 0;
    next.run_at = now;
    next.updated_at = now;
    next.cancel_requested = false;
    next.result = None;
    next.completed_by = None;
    Ok(next)
}

/// Whether a bulk delete removes the task: finished ones only; a queued or leased task is
/// skipped (cancel it first), so that no worker's lease ends with its task gone.
pub fn deletable(task: &TaskRecord) -> bool {
    task.state.is_terminal()
}

/// A lease that ran out: the task goes back to its queue, or is given up on.
pub fn on_expiry(task: &TaskRecord, now: Millis, policy: &Policy) -> TaskRecord {
    let mut next = task.clone();
    next.updated_at = now;
    end_lease(&mut next, LeaseEnd::Expired, now, policy);
    if task.cancel_requested {
        next.state = TaskState::Cancelled;
    } else if task.attempts >= task.max_attempts {
        next.state = TaskState::Failed;
        next.error = Some(format!(
            "lease expired on attempt {} of {}",
            task.attempts, task.max_attempts
        ));
    } else {
        next.state = TaskState::Queued;
        next.run_at = now;
    }
    next
}

/// Ends the task's live lease as `end`. Every rule that ends a lease ends it here. The lease
/// stays the task's last one until the next lease moves it to the history, which keeps one
/// fewer than the policy's ended leases meanwhile.
fn end_lease(task: &mut TaskRecord, end: LeaseEnd, now: Millis, policy: &Policy) {
    task.lease_end = Some(end);
    if let Some(lease) = &mut task.lease {
        lease.ended_at = Some(now);
    }
    task.history.keep(policy.history_kept.saturating_sub(1));
}

/// A lease holder's request that fencing refused (`reason`): kept in the task's history, so that
/// a zombie worker or a split brain can be seen. The worker is the request's, or else the one
/// the lease was granted to, if the task knows it.
pub fn on_refused(
    task: &TaskRecord,
    refused: (&LeaseId, Option<&str>, Request),
    reason: &Conflict,
    now: Millis,
    policy: &Policy,
) -> TaskRecord {
    let (lease_id, worker_id, request) = refused;
    let granted_to = task
        .lease
        .iter()
        .filter(|lease| lease.id == *lease_id)
        .map(|lease| lease.worker_id.as_str())
        .chain(
            task.history
                .ended
                .iter()
                .filter(|attempt| attempt.lease_id == lease_id.0)
                .map(|attempt| attempt.worker_id.as_str()),
        )
        .next();
    let mut next = task.clone();
    let refusal = Refusal {
        lease_id: lease_id.0.clone(),
        at: now,
        worker_id: worker_id.or(granted_to).map(str::to_owned),
        request,
        reason: reason.kind().to_owned(),
    };
    next.history.refuse(refusal, policy.history_kept);
    next
}

/// A submission whose idempotency key names `existing`: the same submission again is answered
/// with its task; a different one is refused (as payment APIs do), since answering it with
/// another task would silently drop the work it asks for. The delay is not compared: the task's
/// `run_at` moves with its retries.
pub fn on_resubmit(new: &NewTask, existing: &TaskRecord) -> Result<(), Conflict> {
    let differences = [
        ("queue", new.queue != existing.queue),
        ("payload", new.payload != existing.payload),
        ("priority", new.priority != existing.priority),
        ("max_attempts", new.max_attempts != existing.max_attempts),
        (
            "lease_secs",
            new.default_lease_ms != existing.default_lease_ms,
        ),
        // Tags are part of what was submitted: the same key with other tags is another
        // submission, refused like another payload (both sets are sorted and deduplicated).
        ("tags", new.tags != existing.tags),
    ];
    match differences.into_iter().find(|(_, differs)| *differs) {
        Some((field, _)) => Err(Conflict::IdempotencyKeyReused(
            existing.idempotency_key.clone().unwrap_or_default(),
            existing.id,
            field,
        )),
        None => Ok(()),
    }
}

/// A policy for the master's own unit tests.
#[cfg(test)]
pub(crate) const TEST_POLICY: Policy = Policy {
    default_lease_ms: 30_000,
    backoff_base_ms: 1_000,
    backoff_max_ms: 60_000,
    history_kept: 32,
};

pub fn secs_to_ms(secs: u64) -> i64 {
    (secs as i64).saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::TaskId;
    use serde_json::json;

    const NOW: Millis = 1_000_000;
    const POLICY: Policy = TEST_POLICY;

    fn leased(attempts: u32) -> TaskRecord {
        TaskRecord {
            id: TaskId(1),
            queue: "default".into(),
            state: TaskState::Leased,
            payload: json!("task data 1"),
            priority: 0,
            attempts,
            max_attempts: 3,
            default_lease_ms: 30_000,
            created_at: NOW - 10,
            run_at: NOW - 10,
            updated_at: NOW - 5,
            lease: Some(LeaseRecord {
                id: LeaseId("l1".into()),
                worker_id: "w01".into(),
                expires_at: NOW + 1_000,
                lease_ms: 30_000,
                attempt: attempts,
                leased_at: NOW - 5,
                heartbeats: 0,
                last_heartbeat_at: None,
                ended_at: None,
            }),
            lease_end: None,
            cancel_requested: false,
            result: None,
            error: None,
            completed_by: None,
            idempotency_key: None,
            concurrency_key: None,
            history: Default::default(),
            tags: Vec::new(),
        }
    }

    fn success() -> TaskResult {
        TaskResult::succeeded(LeaseId("l1".into()), "w01", json!("done"))
    }

    #[test]
    fn a_result_on_the_live_lease_finishes_the_task() {
        let next = on_result(&leased(1), &success(), NOW, &POLICY).unwrap();
        assert_eq!(next.state, TaskState::Succeeded);
        assert_eq!(next.completed_by.as_deref(), Some("w01"));
    }

    #[test]
    fn resending_an_accepted_result_changes_nothing() {
        let done = on_result(&leased(1), &success(), NOW, &POLICY).unwrap();
        assert_eq!(on_result(&done, &success(), NOW + 5, &POLICY), Ok(done));
    }

    #[test]
    fn a_different_result_for_a_finished_lease_is_refused() {
        let done = on_result(&leased(1), &success(), NOW, &POLICY).unwrap();
        let failure = TaskResult::failed(LeaseId("l1".into()), "w01", "boom");
        assert_eq!(
            on_result(&done, &failure, NOW, &POLICY),
            Err(Conflict::ResultMismatch)
        );
    }

    #[test]
    fn the_same_outcome_with_another_value_for_a_finished_lease_is_refused() {
        let done = on_result(&leased(1), &success(), NOW, &POLICY).unwrap();
        let mut other = success();
        other.result = Some(serde_json::json!({ "another": "value" }));
        assert_eq!(
            on_result(&done, &other, NOW, &POLICY),
            Err(Conflict::ResultMismatch)
        );
    }

    #[test]
    fn a_failure_resent_with_another_error_is_refused() {
        let failure = TaskResult::failed(LeaseId("l1".into()), "w01", "boom");
        let failed = on_result(&leased(2), &failure, NOW, &POLICY).unwrap();
        assert_eq!(
            on_result(&failed, &failure, NOW, &POLICY),
            Ok(failed.clone())
        );
        let other = TaskResult::failed(LeaseId("l1".into()), "w01", "bang");
        assert_eq!(
            on_result(&failed, &other, NOW, &POLICY),
            Err(Conflict::ResultMismatch)
        );
    }

    #[test]
    fn a_result_after_the_deadline_is_refused_even_before_the_reaper_runs() {
        let late = on_result(&leased(1), &success(), NOW + 1_000, &POLICY);
        assert_eq!(late, Err(Conflict::LeaseExpired));
    }

    #[test]
    fn a_failure_with_attempts_left_is_queued_again_after_a_backoff() {
        let failure = TaskResult::failed(LeaseId("l1".into()), "w01", "boom");
        let next = on_result(&leased(2), &failure, NOW, &POLICY).unwrap();
        assert_eq!(next.state, TaskState::Queued);
        assert!((NOW + 2_000..=NOW + 2_500).contains(&next.run_at));
    }

    #[test]
    fn a_failure_on_the_last_attempt_fails_the_task() {
        let failure = TaskResult::failed(LeaseId("l1".into()), "w01", "boom");
        let next = on_result(&leased(3), &failure, NOW, &POLICY).unwrap();
        assert_eq!(next.state, TaskState::Failed);
        assert_eq!(next.error.as_deref(), Some("boom"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        for (attempt, base) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (10, 60_000),
            (40, 60_000),
        ] {
            let delay = POLICY.backoff_ms(attempt);
            assert!(
                (base..=base + base / 4).contains(&delay),
                "{attempt}: {delay}"
            );
        }
    }

    #[test]
    fn an_expired_lease_on_the_last_attempt_fails_the_task() {
        assert_eq!(on_expiry(&leased(3), NOW, &POLICY).state, TaskState::Failed);
        assert_eq!(on_expiry(&leased(2), NOW, &POLICY).state, TaskState::Queued);
    }

    #[test]
    fn a_lease_counts_an_attempt_and_starts_a_fresh_lease() {
        let mut queued = leased(1);
        queued.state = TaskState::Queued;
        queued.lease_end = Some(LeaseEnd::Expired);
        queued.cancel_requested = true;
        let query = LeaseQuery {
            worker_id: "w02".into(),
            queues: vec!["default".into()],
            max_tasks: 1,
            lease_ms: None,
        };
        let next = on_lease(queued.clone(), &query, NOW);
        assert_eq!((next.state, next.attempts), (TaskState::Leased, 2));
        assert_eq!((next.lease_end, next.cancel_requested), (None, false));
        let lease = next.lease.unwrap();
        assert_ne!(lease.id, queued.lease.unwrap().id);
        assert_eq!(lease.worker_id, "w02");
        assert_eq!(lease.expires_at, NOW + 30_000, "the task's own length");
        let asked = LeaseQuery {
            lease_ms: Some(5_000),
            ..query
        };
        let next = on_lease(leased(1), &asked, NOW);
        assert_eq!(next.lease.unwrap().expires_at, NOW + 5_000);
    }

    #[test]
    fn only_sealed_queues_with_nothing_queued_or_leased_are_drained() {
        let idle = QueueBacklog {
            sealed: true,
            queued: false,
            leased: false,
        };
        assert!(drained(&[idle, idle]));
        assert!(!drained(&[]));
        for busy in [
            QueueBacklog {
                sealed: false,
                ..idle
            },
            QueueBacklog {
                queued: true,
                ..idle
            },
            QueueBacklog {
                leased: true,
                ..idle
            },
        ] {
            assert!(!drained(&[idle, busy]), "{busy:?}");
        }
    }

    #[test]
    fn a_release_gives_the_attempt_back() {
        let release = Release {
            lease_id: LeaseId("l1".into()),
            delay_secs: Some(5),
        };
        let next = on_release(&leased(2), &release, NOW, &POLICY).unwrap();
        assert_eq!((next.state, next.attempts), (TaskState::Queued, 1));
        assert_eq!(next.run_at, NOW + 5_000);
    }
}
