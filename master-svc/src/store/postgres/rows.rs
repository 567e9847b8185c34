//! Mapping between the `tasks` table and [`TaskRecord`].

use common::{LeaseId, TaskId};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::model::{History, LeaseEnd, LeaseRecord, TaskRecord};

/// Every column of `tasks`, in the order [`task_from_row`] reads them. A macro, so that queries
/// can be built with `concat!` into the `&'static str` sqlx takes as trusted SQL.
macro_rules! columns {
    () => {
        "id, queue, state, payload, priority, attempts, max_attempts, default_lease_ms, \
         created_at, run_at, updated_at, lease_id, lease_worker, lease_expires_at, lease_ms, \
         lease_end, cancel_requested, result, error, completed_by, idempotency_key, \
         concurrency_key, COALESCE(lease_started_at, lease_expires_at - lease_ms), \
         lease_heartbeats, lease_beat_at, history, COALESCE(lease_attempt, attempts), \
         lease_ended_at, tags"
    };
}
pub(super) use columns;

/// How many columns [`columns`] names: a query's own columns after them start here.
pub(super) const COLUMN_COUNT: usize = 29;

/// [`columns`] with `null` for the payload and no result or history: a task as a summary lists
/// it, read without its bodies.
macro_rules! summary_columns {
    () => {
        "id, queue, state, 'null', priority, attempts, max_attempts, default_lease_ms, \
         created_at, run_at, updated_at, lease_id, lease_worker, lease_expires_at, lease_ms, \
         lease_end, cancel_requested, NULL::text, error, completed_by, idempotency_key, \
         concurrency_key, COALESCE(lease_started_at, lease_expires_at - lease_ms), \
         lease_heartbeats, lease_beat_at, NULL::text, COALESCE(lease_attempt, attempts), \
         lease_ended_at, tags"
    };
}
pub(super) use summary_columns;

pub(super) fn task_from_row(row: &PgRow) -> sqlx::Result<TaskRecord> {
    let lease = match row.try_get::<Option<String>, _>(11)? {
        Some(id) => Some(LeaseRecord {
            id: LeaseId(id),
            worker_id: row.try_get(12)?,
            expires_at: row.try_get(13)?,
            lease_ms: row.try_get(14)?,
            attempt: row.try_get::<i32, _>(26)? as u32,
            leased_at: row.try_get(22)?,
            heartbeats: row.try_get::<i32, _>(23)? as u32,
            last_heartbeat_at: row.try_get(24)?,
            ended_at: row.try_get(27)?,
        }),
        None => None,
    };
    Ok(TaskRecord {
        id: TaskId(row.try_get(0)?),
        queue: row.try_get(1)?,
        state: row
            .try_get::<&str, _>(2)?
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        payload: json(row.try_get(3)?)?,
        priority: row.try_get(4)?,
        attempts: row.try_get::<i32, _>(5)? as u32,
        max_attempts: row.try_get::<i32, _>(6)? as u32,
        default_lease_ms: row.try_get(7)?,
        created_at: row.try_get(8)?,
        run_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
        lease,
        lease_end: row
            .try_get::<Option<&str>, _>(15)?
            .and_then(LeaseEnd::parse),
        cancel_requested: row.try_get(16)?,
        result: row.try_get::<Option<&str>, _>(17)?.map(json).transpose()?,
        error: row.try_get(18)?,
        completed_by: row.try_get(19)?,
        idempotency_key: row.try_get(20)?,
        concurrency_key: row.try_get(21)?,
        history: History::from_json(row.try_get(25)?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        tags: row
            .try_get::<Option<&str>, _>(28)?
            .map_or(Ok(Vec::new()), |text| {
                serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
            })?,
    })
}

/// Tags as stored: a JSON array, or NULL for none.
pub(super) fn tags_text(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| serde_json::to_string(tags).expect("strings serialize"))
}

/// Stores every field a decision may change, for all of `tasks`, in one statement. A task
/// queued to run after the decision that queued it is `delayed`: kept out of the ready index
/// until it is due (migration `0003_delayed_tasks`).
///
/// `tasks.id = ANY($1)` repeats the join's condition so that the planner reads the rows by
/// their ids: with the join alone it prices a few hundred primary-key look-ups above reading
/// the whole table into a hash (it chose that from ~500 rows on at 50,000 tasks).
pub(super) async fn write_all(conn: &mut PgConnection, tasks: &[&TaskRecord]) -> sqlx::Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let leases: Vec<Option<&LeaseRecord>> = tasks.iter().map(|t| t.lease.as_ref()).collect();
    let text = |f: &dyn Fn(&TaskRecord) -> Option<String>| -> Vec<Option<String>> {
        tasks.iter().map(|t| f(t)).collect()
    };
    sqlx::query(
        "UPDATE tasks SET state = v.state, attempts = v.attempts, run_at = v.run_at, \
         updated_at = v.updated_at, lease_id = v.lease_id, lease_worker = v.lease_worker, \
         lease_expires_at = v.lease_expires_at, lease_ms = v.lease_ms, lease_end = v.lease_end, \
         cancel_requested = v.cancel_requested, result = v.result, error = v.error, \
         completed_by = v.completed_by, lease_started_at = v.lease_started_at, \
         lease_heartbeats = v.lease_heartbeats, lease_beat_at = v.lease_beat_at, \
         history = v.history, lease_attempt = v.lease_attempt, \
         lease_ended_at = v.lease_ended_at, \
         delayed = (v.state = 'queued' AND v.run_at > v.updated_at) \
         FROM unnest($1::int8[], $2::text[], $3::int4[], $4::int8[], $5::int8[], $6::text[], \
         $7::text[], $8::int8[], $9::int8[], $10::text[], $11::bool[], $12::text[], $13::text[], \
         $14::text[], $15::int8[], $16::int4[], $17::int8[], $18::text[], $19::int4[], \
         $20::int8[]) AS v (id, state, attempts, run_at, updated_at, lease_id, lease_worker, \
         lease_expires_at, lease_ms, lease_end, cancel_requested, result, error, completed_by, \
         lease_started_at, lease_heartbeats, lease_beat_at, history, lease_attempt, \
         lease_ended_at) \
         WHERE tasks.id = v.id AND tasks.id = ANY($1)",
    )
    .bind(tasks.iter().map(|t| t.id.0).collect::<Vec<_>>())
    .bind(tasks.iter().map(|t| t.state.as_str()).collect::<Vec<_>>())
    .bind(tasks.iter().map(|t| t.attempts as i32).collect::<Vec<_>>())
    .bind(tasks.iter().map(|t| t.run_at).collect::<Vec<_>>())
    .bind(tasks.iter().map(|t| t.updated_at).collect::<Vec<_>>())
    .bind(
        leases
            .iter()
            .map(|l| l.map(|l| l.id.0.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        leases
            .iter()
            .map(|l| l.map(|l| l.worker_id.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        leases
            .iter()
            .map(|l| l.map(|l| l.expires_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        leases
            .iter()
            .map(|l| l.map(|l| l.lease_ms))
            .collect::<Vec<_>>(),
    )
    .bind(text(&|t| t.lease_end.map(|end| end.as_str().to_owned())))
    .bind(tasks.iter().map(|t| t.cancel_requested).collect::<Vec<_>>())
    .bind(text(&|t| t.result.as_ref().map(Value::to_string)))
    .bind(text(&|t| t.error.clone()))
    .bind(text(&|t| t.completed_by.clone()))
    .bind(
        leases
            .iter()
            .map(|l| l.map(|l| l.leased_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        leases
            .iter()
            .map(|l| l.map_or(0, |l| l.heartbeats as i32))
            .collect::<Vec<_>>(),
    )
    .bind(
        leases
            .iter()
            .map(|l| l.and_then(|l| l.last_heartbeat_at))
            .collect::<Vec<_>>(),
    )
    .bind(text(&|t| t.history.to_json()))
    .bind(
        leases
            .iter()
            .map(|l| l.map(|l| l.attempt as i32))
            .collect::<Vec<_>>(),
    )
    .bind(
        leases
            .iter()
            .map(|l| l.and_then(|l| l.ended_at))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map(drop)
}

fn json(text: &str) -> sqlx::Result<Value> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
