//! Bulk operations in SQLite: the `operations` table, and a chunk's changes written with its
//! progress in one commit (a job of the writer, between other jobs' leases and results).
//!
//! One master opens a database, so a claim is only there to read like PostgreSQL's: at opening,
//! every running operation is let go ([`release_all`]) and this master takes it again.

use common::TaskId;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::ops;
use crate::model::{Millis, TaskRecord};
use crate::store::{
    BulkChange, Chunk, ChunkDone, NewOperation, OperationRecord, Rule, StoreError, Updated, db,
};

type Result<T> = std::result::Result<T, StoreError>;

const COLUMNS: &str = "id, action, filter, max_tasks, dry_run, state, matched, done, skipped, \
    errors, error, cursor, started_at, finished_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<OperationRecord> {
    let text = |i: usize| -> rusqlite::Result<String> { row.get(i) };
    let invalid = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(OperationRecord {
        id: row.get(0)?,
        action: serde_json::from_value(serde_json::Value::String(text(1)?))
            .map_err(|e| invalid(1, e.to_string()))?,
        filter: serde_json::from_str(&text(2)?).map_err(|e| invalid(2, e.to_string()))?,
        limit: row.get::<_, Option<i64>>(3)?.map(|n| n as u64),
        dry_run: row.get(4)?,
        state: text(5)?.parse().map_err(|e| invalid(5, e))?,
        matched: row.get::<_, i64>(6)? as u64,
        done: row.get::<_, i64>(7)? as u64,
        skipped: row.get::<_, i64>(8)? as u64,
        errors: row.get::<_, i64>(9)? as u64,
        error: row.get(10)?,
        cursor: row.get(11)?,
        started_at: row.get(12)?,
        finished_at: row.get(13)?,
    })
}

pub(super) fn create(conn: &Connection, new: &NewOperation) -> Result<OperationRecord> {
    let filter = serde_json::to_string(&new.filter).expect("a filter serializes");
    let sql = format!(
        "INSERT INTO operations (action, filter, max_tasks, dry_run, state, started_at) \
         VALUES (?1, ?2, ?3, ?4, 'running', ?5) RETURNING {COLUMNS}"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(
                params![
                    new.action.as_str(),
                    filter,
                    new.limit.map(|n| n.min(i64::MAX as u64) as i64),
                    new.dry_run,
                    new.started_at
                ],
                from_row,
            )
        })
        .map_err(db)
}

pub(super) fn get(conn: &Connection, id: i64) -> Result<Option<OperationRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM operations WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id], from_row).optional())
        .map_err(db)
}

pub(super) fn recent(conn: &Connection, limit: u32) -> Result<Vec<OperationRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM operations ORDER BY id DESC LIMIT ?1 + 0");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_map([limit], from_row)?.collect())
        .map_err(db)
}

/// Lets go of every running operation: the master that held them is gone.
pub(super) fn release_all(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE operations SET owner = NULL, owned_until = NULL WHERE state = 'running'",
        [],
    )
    .map(drop)
}

pub(super) fn release(conn: &Connection, id: i64, owner: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE operations SET owner = NULL, owned_until = NULL WHERE id = ?1 AND owner = ?2",
    )
    .and_then(|mut s| s.execute(params![id, owner]))
    .map(drop)
    .map_err(db)
}

pub(super) fn claim(
    conn: &Connection,
    owner: &str,
    now: Millis,
    until: Millis,
) -> Result<Option<OperationRecord>> {
    let sql = format!(
        "UPDATE operations SET owner = ?1, owned_until = ?3 WHERE id = (SELECT id FROM operations \
         WHERE state = 'running' AND (owner IS NULL OR owner = ?1 OR owned_until < ?2) \
         ORDER BY id LIMIT 1) RETURNING {COLUMNS}"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![owner, now, until], from_row).optional())
        .map_err(db)
}

fn holds(conn: &Connection, id: i64, owner: &str) -> Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM operations WHERE id = ?1 AND owner = ?2 AND state = 'running'",
    )
    .and_then(|mut s| s.exists(params![id, owner]))
    .map_err(db)
}

pub(super) fn run_chunk(conn: &Connection, chunk: Chunk) -> Result<Option<ChunkDone>> {
    if !holds(conn, chunk.operation, &chunk.owner)? {
        return Ok(None);
    }
    let (mut updated, mut deleted) = (Vec::new(), Vec::new());
    for &id in &chunk.ids {
        match &chunk.change {
            BulkChange::Update(rule) => updated.extend(update(conn, id, rule.clone())?),
            BulkChange::Delete(rule) => deleted.extend(delete(conn, id, *rule)?),
            BulkChange::Count => {}
        }
    }
    let matched = chunk.ids.len() as i64;
    let done = (updated.len() + deleted.len()) as i64;
    let skipped = match chunk.change {
        BulkChange::Count => 0,
        _ => matched - done,
    };
    let sql = format!(
        "UPDATE operations SET matched = matched + ?2, done = done + ?3, skipped = skipped + ?4, \
         cursor = ?5, owned_until = ?6, state = CASE WHEN ?7 THEN 'done' ELSE state END, \
         finished_at = CASE WHEN ?7 THEN ?8 END WHERE id = ?1 RETURNING {COLUMNS}"
    );
    let operation = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(
                params![
                    chunk.operation,
                    matched,
                    done,
                    skipped,
                    chunk.cursor,
                    chunk.until,
                    chunk.last,
                    chunk.now
                ],
                from_row,
            )
        })
        .map_err(db)?;
    Ok(Some(ChunkDone {
        updated,
        deleted,
        operation,
    }))
}

/// The task as the rule changed it; `None` if the rule refused, changed nothing, or the task
/// is gone.
fn update(conn: &Connection, id: TaskId, rule: Rule) -> Result<Option<Updated>> {
    match ops::update(conn, id, Box::new(move |task| rule(task))) {
        Ok(updated) if updated.after != updated.before => Ok(Some(updated)),
        Ok(_) | Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn delete(
    conn: &Connection,
    id: TaskId,
    rule: fn(&TaskRecord) -> bool,
) -> Result<Option<TaskRecord>> {
    let Some(task) = ops::get(conn, id)?.filter(rule) else {
        return Ok(None);
    };
    conn.prepare_cached("DELETE FROM tasks WHERE id = ?1")
        .and_then(|mut s| s.execute([id.0]))
        .map_err(db)?;
    Ok(Some(task))
}

pub(super) fn fail(
    conn: &Connection,
    id: i64,
    owner: &str,
    error: &str,
    errors: u64,
    now: Millis,
) -> Result<bool> {
    conn.prepare_cached(
        "UPDATE operations SET state = 'failed', error = ?3, errors = errors + ?4, \
         finished_at = ?5 WHERE id = ?1 AND owner = ?2 AND state = 'running'",
    )
    .and_then(|mut s| s.execute(params![id, owner, error, errors as i64, now]))
    .map(|changed| changed > 0)
    .map_err(db)
}
