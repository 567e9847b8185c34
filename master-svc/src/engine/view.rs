//! How the master's records read in the API's types.

use common::{HeldBack, LeaseInfo, LeasedTask, Task, TaskState};
use time::OffsetDateTime;

use super::limits;
use crate::model::{Millis, QueueSettings, TaskRecord};

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
