//! `GET /tasks`: a page of tasks in id order, filtered by queue and state.
//!
//! Each filter has a statement of its own, so that each walks an index in id order and stops at
//! the end of the page: the primary key unfiltered, `tasks_by_state` (state, id) for a state,
//! `tasks_by_queue` (queue, state, id) for a queue and a state. A queue's tasks in id order are
//! the merge of its five states' ranges, each cut at the page size. (One statement with
//! `?2 IS NULL OR queue = ?2` terms read the whole table whatever the filter.)

use std::sync::LazyLock;

use common::{TaskId, TaskState};
use rusqlite::{Connection, Params, params};

use super::ops;
use super::writer::db;
use crate::model::TaskRecord;
use crate::store::{StoreError, TaskFilter};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) const BY_ID: &str = "SELECT id FROM tasks WHERE id > ?1 ORDER BY id LIMIT ?2 + 0";

pub(super) const BY_STATE: &str =
    "SELECT id FROM tasks WHERE state = ?3 AND id > ?1 ORDER BY id LIMIT ?2 + 0";

pub(super) const BY_QUEUE_AND_STATE: &str =
    "SELECT id FROM tasks WHERE queue = ?4 AND state = ?3 AND id > ?1 ORDER BY id LIMIT ?2 + 0";

/// A queue's page: each state's first ids after the cursor, merged.
pub(super) static BY_QUEUE: LazyLock<String> = LazyLock::new(|| {
    let arms: Vec<String> = TaskState::ALL
        .iter()
        .map(|state| {
            format!(
                "SELECT id FROM (SELECT id FROM tasks WHERE queue = ?3 AND state = '{}' \
                 AND id > ?1 ORDER BY id LIMIT ?2 + 0)",
                state.as_str()
            )
        })
        .collect();
    format!("{} ORDER BY id LIMIT ?2 + 0", arms.join(" UNION ALL "))
});

/// The page `filter` asks for, read in one transaction so that it is one snapshot.
pub fn list(conn: &Connection, filter: &TaskFilter) -> Result<Vec<TaskRecord>> {
    let tx = conn.unchecked_transaction().map_err(db)?;
    let mut tasks = Vec::new();
    for id in page_ids(&tx, filter)? {
        tasks.extend(ops::get(&tx, TaskId(id))?);
    }
    Ok(tasks)
}

fn page_ids(conn: &Connection, filter: &TaskFilter) -> Result<Vec<i64>> {
    let after = filter.after_id.map_or(0, |id| id.0);
    let limit = filter.limit;
    match (filter.queue.as_deref(), filter.state.map(TaskState::as_str)) {
        (None, None) => ids(conn, BY_ID, params![after, limit]),
        (None, Some(state)) => ids(conn, BY_STATE, params![after, limit, state]),
        (Some(queue), Some(state)) => ids(
            conn,
            BY_QUEUE_AND_STATE,
            params![after, limit, state, queue],
        ),
        (Some(queue), None) => ids(conn, &BY_QUEUE, params![after, limit, queue]),
    }
}

fn ids(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<i64>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, |row| row.get(0))?.collect())
        .map_err(db)
}
