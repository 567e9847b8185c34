//! Mapping between the `tasks` table and [`TaskRecord`].

use common::{LeaseId, TaskId};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use crate::model::{LeaseEnd, LeaseRecord, TaskRecord};

/// Every column of `tasks`, in the order [`task_from_row`] reads them. A macro, so that queries
/// can be built with `concat!` into the `&'static str` sqlx takes as trusted SQL.
macro_rules! columns {
    () => {
        "id, queue, state, payload, priority, attempts, max_attempts, default_lease_ms, \
         created_at, run_at, updated_at, lease_id, lease_worker, lease_expires_at, lease_ms, \
         lease_end, cancel_requested, result, error, completed_by, idempotency_key"
    };
}
pub(super) use columns;

/// Writes every field a decision may change; [`bind_update`] supplies the values.
const UPDATE: &str = "UPDATE tasks SET state = $2, attempts = $3, run_at = $4, updated_at = $5, \
    lease_id = $6, lease_worker = $7, lease_expires_at = $8, lease_ms = $9, lease_end = $10, \
    cancel_requested = $11, result = $12, error = $13, completed_by = $14 WHERE id = $1";

pub fn task_from_row(row: &PgRow) -> sqlx::Result<TaskRecord> {
    let lease = match row.try_get::<Option<String>, _>(11)? {
        Some(id) => Some(LeaseRecord {
            id: LeaseId(id),
            worker_id: row.try_get(12)?,
            expires_at: row.try_get(13)?,
            lease_ms: row.try_get(14)?,
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
    })
}

/// The `UPDATE` that stores `task` as it is.
pub fn bind_update(task: &TaskRecord) -> Query<'static, Postgres, PgArguments> {
    let lease = task.lease.as_ref();
    sqlx::query(UPDATE)
        .bind(task.id.0)
        .bind(task.state.as_str())
        .bind(task.attempts as i32)
        .bind(task.run_at)
        .bind(task.updated_at)
        .bind(lease.map(|l| l.id.0.clone()))
        .bind(lease.map(|l| l.worker_id.clone()))
        .bind(lease.map(|l| l.expires_at))
        .bind(lease.map(|l| l.lease_ms))
        .bind(task.lease_end.map(LeaseEnd::as_str))
        .bind(task.cancel_requested)
        .bind(task.result.as_ref().map(Value::to_string))
        .bind(task.error.clone())
        .bind(task.completed_by.clone())
}

fn json(text: &str) -> sqlx::Result<Value> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
