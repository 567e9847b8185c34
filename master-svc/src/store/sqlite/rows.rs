//! Mapping between the `tasks` table and [`TaskRecord`].

use common::{LeaseId, TaskId, TaskState};
use rusqlite::{Row, ToSql};
use serde_json::Value;

use crate::model::{History, LeaseEnd, LeaseRecord, TaskRecord};

/// Every column of `tasks`, in the order [`task_from_row`] reads them.
pub(super) const COLUMNS: &str = "id, queue, state, payload, priority, attempts, max_attempts, \
    default_lease_ms, created_at, run_at, updated_at, lease_id, lease_worker, lease_expires_at, \
    lease_ms, lease_end, cancel_requested, result, error, completed_by, idempotency_key, \
    concurrency_key, COALESCE(lease_started_at, lease_expires_at - lease_ms), lease_heartbeats, \
    lease_beat_at, history, COALESCE(lease_attempt, attempts), lease_ended_at, tags";

/// [`COLUMNS`] with `null` for the payload and no result or history: a task as a summary lists
/// it, read without its bodies.
pub(super) const SUMMARY_COLUMNS: &str = "id, queue, state, 'null', priority, attempts, max_attempts, \
    default_lease_ms, created_at, run_at, updated_at, lease_id, lease_worker, lease_expires_at, \
    lease_ms, lease_end, cancel_requested, NULL, error, completed_by, idempotency_key, \
    concurrency_key, COALESCE(lease_started_at, lease_expires_at - lease_ms), lease_heartbeats, \
    lease_beat_at, NULL, COALESCE(lease_attempt, attempts), lease_ended_at, tags";

/// Writes every field a decision may change. A task queued to run after the decision that
/// queued it is `delayed`: kept out of the ready index until it is due (see migration 3).
pub(super) const UPDATE: &str = "UPDATE tasks SET state = ?2, attempts = ?3, run_at = ?4, \
    updated_at = ?5, lease_id = ?6, lease_worker = ?7, lease_expires_at = ?8, lease_ms = ?9, \
    lease_end = ?10, cancel_requested = ?11, result = ?12, error = ?13, completed_by = ?14, \
    lease_started_at = ?15, lease_heartbeats = ?16, lease_beat_at = ?17, history = ?18, \
    lease_attempt = ?19, lease_ended_at = ?20, \
    delayed = (?2 = 'queued' AND ?4 > ?5) WHERE id = ?1";

pub(super) fn task_from_row(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    let lease = match row.get::<_, Option<String>>(11)? {
        Some(id) => Some(LeaseRecord {
            id: LeaseId(id),
            worker_id: row.get(12)?,
            expires_at: row.get(13)?,
            lease_ms: row.get(14)?,
            attempt: row.get(26)?,
            leased_at: row.get(22)?,
            heartbeats: row.get(23)?,
            last_heartbeat_at: row.get(24)?,
            ended_at: row.get(27)?,
        }),
        None => None,
    };
    Ok(TaskRecord {
        id: TaskId(row.get(0)?),
        queue: row.get(1)?,
        state: parse_state(row.get_ref(2)?.as_str()?)?,
        payload: json(row.get(3)?)?,
        priority: row.get(4)?,
        attempts: row.get(5)?,
        max_attempts: row.get(6)?,
        default_lease_ms: row.get(7)?,
        created_at: row.get(8)?,
        run_at: row.get(9)?,
        updated_at: row.get(10)?,
        lease,
        lease_end: row
            .get::<_, Option<String>>(15)?
            .and_then(|end| LeaseEnd::parse(&end)),
        cancel_requested: row.get(16)?,
        result: row.get::<_, Option<String>>(17)?.map(json).transpose()?,
        error: row.get(18)?,
        completed_by: row.get(19)?,
        idempotency_key: row.get(20)?,
        concurrency_key: row.get(21)?,
        history: History::from_json(row.get_ref(25)?.as_str_or_null()?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(25, rusqlite::types::Type::Text, Box::new(e))
        })?,
        tags: tags(row.get(28)?)?,
    })
}

/// The parameters of [`UPDATE`] for `task`.
pub(super) fn update_params(task: &TaskRecord) -> [Box<dyn ToSql + '_>; 20] {
    let lease = task.lease.as_ref();
    [
        Box::new(task.id.0),
        Box::new(task.state.as_str()),
        Box::new(task.attempts),
        Box::new(task.run_at),
        Box::new(task.updated_at),
        Box::new(lease.map(|l| l.id.0.as_str())),
        Box::new(lease.map(|l| l.worker_id.as_str())),
        Box::new(lease.map(|l| l.expires_at)),
        Box::new(lease.map(|l| l.lease_ms)),
        Box::new(task.lease_end.map(LeaseEnd::as_str)),
        Box::new(task.cancel_requested),
        Box::new(task.result.as_ref().map(Value::to_string)),
        Box::new(task.error.as_deref()),
        Box::new(task.completed_by.as_deref()),
        Box::new(lease.map(|l| l.leased_at)),
        Box::new(lease.map_or(0, |l| l.heartbeats)),
        Box::new(lease.and_then(|l| l.last_heartbeat_at)),
        Box::new(task.history.to_json()),
        Box::new(lease.map(|l| l.attempt)),
        Box::new(lease.and_then(|l| l.ended_at)),
    ]
}

pub(super) fn parse_state(s: &str) -> rusqlite::Result<TaskState> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
    })
}

/// Tags as stored: a JSON array, or NULL for none.
pub(super) fn tags_text(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| serde_json::to_string(tags).expect("strings serialize"))
}

fn tags(text: Option<String>) -> rusqlite::Result<Vec<String>> {
    text.map_or(Ok(Vec::new()), |text| {
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(22, rusqlite::types::Type::Text, Box::new(e))
        })
    })
}

fn json(text: String) -> rusqlite::Result<Value> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })
}
