//! How the master's records read in the API's types.

use common::{
    AttemptEnd, AttemptInfo, EarlierAttempts, HeldBack, LeaseId, LeaseInfo, LeasedTask,
    RefusedKind, RefusedRequest, Task, TaskAttempts, TaskState,
};
use time::OffsetDateTime;

use super::{limits, rules};
use crate::model::history::{self, History};
use crate::model::{LeaseEnd, Millis, QueueSettings, TaskRecord};

pub fn timestamp(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn task(record: TaskRecord) -> Task {
    let lease = record
        .lease
        .filter(|_| record.state == TaskState::Leased)
        .map(|lease| LeaseInfo {
            worker_id: lease.worker_id,
            expires_at: timestamp(lease.expires_at),
        });
    Task {
        id: record.id,
        queue: record.queue,
        state: record.state,
        payload: record.payload,
        priority: record.priority,
        attempts: record.attempts,
        max_attempts: record.max_attempts,
        created_at: timestamp(record.created_at),
        run_at: timestamp(record.run_at),
        lease,
        cancel_requested: record.cancel_requested,
        result: record.result,
        error: record.error,
        worker_id: record.completed_by,
        idempotency_key: record.idempotency_key,
        concurrency_key: record.concurrency_key,
        tags: record.tags,
    }
}

pub fn operation(record: crate::store::OperationRecord) -> common::Operation {
    common::Operation {
        id: record.id,
        action: record.action,
        filter: record.filter,
        limit: record.limit,
        dry_run: record.dry_run,
        state: record.state,
        matched: record.matched,
        done: record.done,
        skipped: record.skipped,
        errors: record.errors,
        error: record.error,
        started_at: timestamp(record.started_at),
        finished_at: record.finished_at.map(timestamp),
    }
}

/// A freshly leased record as its worker receives it.
pub fn leased_task(record: TaskRecord) -> LeasedTask {
    let lease = record.lease.expect("a leased task has a lease");
    LeasedTask {
        task_id: record.id,
        lease_id: lease.id,
        queue: record.queue,
        payload: record.payload,
        attempt: record.attempts,
        expires_at: timestamp(lease.expires_at),
    }
}

pub fn queue(record: crate::store::QueueRecord, now: Millis) -> common::QueueInfo {
    let tokens = record
        .settings
        .rate_limit
        .map(|rate| limits::tokens(&rate, record.bucket, now));
    let held_back = held_back(&record, tokens, now);
    common::QueueInfo {
        name: record.name,
        in_flight: record.counts.leased,
        oldest_queued_age_secs: record
            .oldest_ready_at
            .filter(|&run_at| run_at <= now)
            .map(|run_at| (now - run_at) as f64 / 1000.0),
        sealed: record.sealed,
        paused_until: record
            .settings
            .paused_until
            .filter(|&until| until > now)
            .map(timestamp),
        settings: settings(&record.settings),
        tokens,
        held_back,
        counts: record.counts,
    }
}

/// A queue's settings as the API shows them.
pub fn settings(settings: &QueueSettings) -> common::QueueSettings {
    common::QueueSettings {
        paused: settings.paused,
        max_in_flight: settings.max_in_flight,
        rate_limit: settings.rate_limit.map(|rate| common::RateLimit {
            per_sec: rate.per_sec,
            burst: rate.burst,
        }),
        key_limit: settings.key_limit,
    }
}

/// The queued tasks each limit holds back now, each under the first limit that holds it.
fn held_back(record: &crate::store::QueueRecord, tokens: Option<f64>, now: Millis) -> HeldBack {
    let queued = record.counts.queued;
    let settings = &record.settings;
    let mut held = HeldBack::default();
    if limits::paused(settings, now) {
        held.paused = queued;
    } else if settings
        .max_in_flight
        .is_some_and(|max| record.counts.leased >= u64::from(max))
    {
        held.max_in_flight = queued;
    } else if tokens.is_some_and(|tokens| tokens < 1.0) {
        held.rate_limit = queued;
    } else {
        held.key_limit = record.held_by_keys;
    }
    held
}

/// A task's attempt history: the leases before its last one, then its last one (live or
/// ended), each with the requests refused for it.
pub fn attempts(record: TaskRecord) -> TaskAttempts {
    let last = match (&record.lease, rules::ended_attempt(&record)) {
        (_, Some(ended)) => Some(ended_attempt(ended)),
        (Some(lease), None) => Some(AttemptInfo {
            attempt: lease.attempt,
            lease_id: lease.id.clone(),
            worker_id: lease.worker_id.clone(),
            leased_at: timestamp(lease.leased_at),
            heartbeats: lease.heartbeats,
            last_heartbeat_at: lease.last_heartbeat_at.map(timestamp),
            expires_at: Some(timestamp(lease.expires_at)),
            ended_at: None,
            end: None,
            error: None,
            refused: Vec::new(),
        }),
        (None, None) => None,
    };
    let History {
        earlier,
        ended,
        refused,
    } = record.history;
    let mut attempts: Vec<AttemptInfo> = ended.into_iter().map(ended_attempt).chain(last).collect();
    let mut unmatched = Vec::new();
    for refusal in refused {
        let refusal = refused_request(refusal);
        match attempts
            .iter_mut()
            .rev()
            .find(|attempt| attempt.lease_id == refusal.lease_id)
        {
            Some(attempt) => attempt.refused.push(refusal),
            None => unmatched.push(refusal),
        }
    }
    TaskAttempts {
        task_id: record.id,
        earlier: earlier.map(|earlier| EarlierAttempts {
            attempts: earlier.attempts,
            ends: earlier.ends,
            first_leased_at: earlier.first_leased_at.map(timestamp),
            last_ended_at: earlier.last_ended_at.map(timestamp),
            refused: earlier.refused,
        }),
        attempts,
        refused: unmatched,
    }
}

fn ended_attempt(attempt: history::Attempt) -> AttemptInfo {
    AttemptInfo {
        attempt: attempt.attempt,
        lease_id: LeaseId(attempt.lease_id),
        worker_id: attempt.worker_id,
        leased_at: timestamp(attempt.leased_at),
        heartbeats: attempt.heartbeats,
        last_heartbeat_at: attempt.last_heartbeat_at.map(timestamp),
        expires_at: None,
        ended_at: Some(timestamp(attempt.ended_at)),
        end: Some(match attempt.end {
            LeaseEnd::Succeeded => AttemptEnd::Succeeded,
            LeaseEnd::Failed => AttemptEnd::Failed,
            LeaseEnd::Expired => AttemptEnd::Expired,
            LeaseEnd::Released => AttemptEnd::Released,
            LeaseEnd::Cancelled => AttemptEnd::Cancelled,
        }),
        error: attempt.error,
        refused: Vec::new(),
    }
}

fn refused_request(refusal: history::Refusal) -> RefusedRequest {
    RefusedRequest {
        lease_id: LeaseId(refusal.lease_id),
        at: timestamp(refusal.at),
        worker_id: refusal.worker_id,
        request: match refusal.request {
            history::Request::Result => RefusedKind::Result,
            history::Request::Heartbeat => RefusedKind::Heartbeat,
            history::Request::Release => RefusedKind::Release,
        },
        reason: refusal.reason,
    }
}
