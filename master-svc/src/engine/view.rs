//! How the master's records read in the API's types.

use common::{LeaseInfo, LeasedTask, Task, TaskState};
use time::OffsetDateTime;

use crate::model::{Millis, TaskRecord};

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
    common::QueueInfo {
        name: record.name,
        counts: record.counts,
        oldest_queued_age_secs: record
            .oldest_ready_at
            .filter(|&run_at| run_at <= now)
            .map(|run_at| (now - run_at) as f64 / 1000.0),
        sealed: record.sealed,
    }
}
