//! Bulk operations in PostgreSQL: the `operations` table, the hold that lets one master at a
//! time run an operation (`owner`, `owned_until`; see `engine::bulk`), and a chunk's changes
//! written with the operation's progress in one transaction.
//!
//! A chunk locks its operation's row first (`FOR UPDATE`) and goes on only if this master still
//! holds it, so that a master whose hold ran out and was taken over changes nothing. Its tasks
//! are locked and decided as the group commit's changes are ([`writer::decide_all`]): a lease
//! skips them meanwhile, and they are written in one statement.

use common::TaskId;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::rows::{columns, task_from_row, write_all};
use super::writer;
use crate::model::{Millis, TaskRecord};
use crate::store::{
    BulkChange, Chunk, ChunkDone, Decide, NewOperation, OperationRecord, Rule, StoreError, Updated,
    db,
};

type Result<T> = std::result::Result<T, StoreError>;

macro_rules! operation_columns {
    () => {
        "id, action, filter, max_tasks, dry_run, state, matched, done, skipped, errors, error, \
         cursor, started_at, finished_at"
    };
}

fn from_row(row: &PgRow) -> sqlx::Result<OperationRecord> {
    let decode = |e: String| sqlx::Error::Decode(e.into());
    let action: String = row.try_get(1)?;
    let filter: String = row.try_get(2)?;
    let count = |i: usize| -> sqlx::Result<u64> { Ok(row.try_get::<i64, _>(i)? as u64) };
    Ok(OperationRecord {
        id: row.try_get(0)?,
        action: serde_json::from_value(serde_json::Value::String(action))
            .map_err(|e| decode(e.to_string()))?,
        filter: serde_json::from_str(&filter).map_err(|e| decode(e.to_string()))?,
        limit: row.try_get::<Option<i64>, _>(3)?.map(|n| n as u64),
        dry_run: row.try_get(4)?,
        state: row.try_get::<&str, _>(5)?.parse().map_err(decode)?,
        matched: count(6)?,
        done: count(7)?,
        skipped: count(8)?,
        errors: count(9)?,
        error: row.try_get(10)?,
        cursor: row.try_get(11)?,
        started_at: row.try_get(12)?,
        finished_at: row.try_get(13)?,
    })
}

fn one(row: &PgRow) -> Result<OperationRecord> {
    from_row(row).map_err(db)
}

pub(super) async fn create(pool: &PgPool, new: &NewOperation) -> Result<OperationRecord> {
    let row = sqlx::query(concat!(
        "INSERT INTO operations (action, filter, max_tasks, dry_run, state, started_at) \
         VALUES ($1, $2, $3, $4, 'running', $5) RETURNING ",
        operation_columns!()
    ))
    .bind(new.action.as_str())
    .bind(serde_json::to_string(&new.filter).expect("a filter serializes"))
    .bind(new.limit.map(|n| n.min(i64::MAX as u64) as i64))
    .bind(new.dry_run)
    .bind(new.started_at)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    one(&row)
}

pub(super) async fn get(pool: &PgPool, id: i64) -> Result<Option<OperationRecord>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        operation_columns!(),
        " FROM operations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(one).transpose()
}

pub(super) async fn recent(pool: &PgPool, limit: u32) -> Result<Vec<OperationRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        operation_columns!(),
        " FROM operations ORDER BY id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(one).collect()
}

pub(super) async fn release(pool: &PgPool, id: i64, owner: &str) -> Result<()> {
    sqlx::query(
        "UPDATE operations SET owner = NULL, owned_until = NULL WHERE id = $1 AND owner = $2",
    )
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

/// Takes the oldest running operation no master holds (or whose hold ran out, or this master's
/// own). `SKIP LOCKED`: two masters looking at once take two operations, or one each nothing,
/// never the same one.
pub(super) async fn claim(
    pool: &PgPool,
    owner: &str,
    now: Millis,
    until: Millis,
) -> Result<Option<OperationRecord>> {
    let row = sqlx::query(concat!(
        "UPDATE operations SET owner = $1, owned_until = $3 WHERE id = (SELECT id FROM operations \
         WHERE state = 'running' AND (owner IS NULL OR owner = $1 OR owned_until < $2) \
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ",
        operation_columns!()
    ))
    .bind(owner)
    .bind(now)
    .bind(until)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(one).transpose()
}

pub(super) async fn run_chunk(conn: &mut PgConnection, chunk: Chunk) -> Result<Option<ChunkDone>> {
    let held = sqlx::query(
        "SELECT 1 FROM operations WHERE id = $1 AND owner = $2 AND state = 'running' FOR UPDATE",
    )
    .bind(chunk.operation)
    .bind(&chunk.owner)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if held.is_none() {
        return Ok(None);
    }
    let (updated, deleted) = match &chunk.change {
        BulkChange::Update(rule) => (update(conn, &chunk.ids, rule).await?, Vec::new()),
        BulkChange::Delete(rule) => (Vec::new(), delete(conn, &chunk.ids, *rule).await?),
        BulkChange::Count => (Vec::new(), Vec::new()),
    };
    let matched = chunk.ids.len() as i64;
    let done = (updated.len() + deleted.len()) as i64;
    let skipped = match chunk.change {
        BulkChange::Count => 0,
        _ => matched - done,
    };
    let row = sqlx::query(concat!(
        "UPDATE operations SET matched = matched + $2, done = done + $3, skipped = skipped + $4, \
         cursor = $5, owned_until = $6, state = CASE WHEN $7 THEN 'done' ELSE state END, \
         finished_at = CASE WHEN $7 THEN $8 END WHERE id = $1 RETURNING ",
        operation_columns!()
    ))
    .bind(chunk.operation)
    .bind(matched)
    .bind(done)
    .bind(skipped)
    .bind(chunk.cursor)
    .bind(chunk.until)
    .bind(chunk.last)
    .bind(chunk.now)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    Ok(Some(ChunkDone {
        updated,
        deleted,
        operation: one(&row)?,
    }))
}

/// Locks the tasks, applies `rule` to each and writes the changed ones in one statement. A
/// refusal, no change or a task gone is a skip.
async fn update(conn: &mut PgConnection, ids: &[TaskId], rule: &Rule) -> Result<Vec<Updated>> {
    let changes: Vec<(TaskId, Decide)> = ids
        .iter()
        .map(|&id| {
            let rule = rule.clone();
            let decide: Decide = Box::new(move |task| rule(task));
            (id, decide)
        })
        .collect();
    let decided = writer::decide_all(conn, changes).await?;
    let mut updated = Vec::new();
    for answer in decided.answers {
        match answer {
            Ok(change) if change.after != change.before => updated.push(change),
            Ok(_) | Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let written: Vec<&TaskRecord> = decided.changed.iter().collect();
    write_all(conn, &written).await.map_err(db)?;
    Ok(updated)
}

/// Locks the tasks and deletes those `rule` allows; returns them as they were.
async fn delete(
    conn: &mut PgConnection,
    ids: &[TaskId],
    rule: fn(&TaskRecord) -> bool,
) -> Result<Vec<TaskRecord>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let tasks: Vec<TaskRecord> = rows
        .iter()
        .map(task_from_row)
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db)?
        .into_iter()
        .filter(rule)
        .collect();
    let doomed: Vec<i64> = tasks.iter().map(|task| task.id.0).collect();
    sqlx::query("DELETE FROM tasks WHERE id = ANY($1)")
        .bind(doomed)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(tasks)
}

pub(super) async fn fail(
    pool: &PgPool,
    id: i64,
    owner: &str,
    error: &str,
    errors: u64,
    now: Millis,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE operations SET state = 'failed', error = $3, errors = errors + $4, \
         finished_at = $5 WHERE id = $1 AND owner = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(error)
    .bind(errors as i64)
    .bind(now)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() > 0)
}
