//! `GET /tasks`: a page of tasks in id order, filtered by queue and state.
//!
//! Each filter has a statement of its own, so that each walks an index in id order and stops at
//! the end of the page: the primary key unfiltered, `tasks_by_state` (state, id) for a state,
//! `tasks_by_queue` (queue, state, id) for a queue and a state. A queue's tasks in id order are
//! the merge of its five states' ranges, each cut at the page size. (One statement with
//! `?2 IS NULL OR queue = ?2` terms read the whole table whatever the filter.)
//!
//! A page is also cut by bytes ([`TaskPage::fitting`]), and read without payloads and results
//! unless asked for them.

use std::sync::LazyLock;

use common::TaskState;
use rusqlite::{Connection, Params, params};

use super::rows::{COLUMNS, SUMMARY_COLUMNS, task_from_row};
use crate::store::db;
use crate::store::{StoreError, TaskFilter, TaskPage};

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

/// Bytes of a task's payload and result, and of its error: what a page is cut by.
const SIZES: &str = "SELECT octet_length(payload) + COALESCE(octet_length(result), 0), \
    COALESCE(octet_length(error), 0) FROM tasks WHERE id = ?1";

/// The page `filter` asks for, read in one transaction so that it is one snapshot. The sizes
/// are read first, from the records' headers, so that bodies past the byte limit are not read.
pub(super) fn list(conn: &Connection, filter: &TaskFilter) -> Result<TaskPage> {
    let tx = conn.unchecked_transaction().map_err(db)?;
    let mut sized = Vec::new();
    for id in page_ids(&tx, filter)? {
        let (bodies, error) = size(&tx, id)?;
        sized.push((id, if filter.bodies { bodies + error } else { error }));
    }
    let (ids, cut) = TaskPage::fitting(&sized, filter.max_bytes);
    let columns = if filter.bodies {
        COLUMNS
    } else {
        SUMMARY_COLUMNS
    };
    let sql = format!("SELECT {columns} FROM tasks WHERE id = ?1");
    let mut statement = tx.prepare_cached(&sql).map_err(db)?;
    let tasks = ids
        .into_iter()
        .map(|id| statement.query_row([id], task_from_row).map_err(db))
        .collect::<Result<_>>()?;
    Ok(TaskPage { tasks, cut })
}

fn size(conn: &Connection, id: i64) -> Result<(usize, usize)> {
    conn.prepare_cached(SIZES)
        .and_then(|mut s| s.query_row([id], |row| Ok((row.get(0)?, row.get(1)?))))
        .map_err(db)
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
