//! `GET /tasks`: a page of tasks in id order, filtered by queue and state.
//!
//! Each filter reads an index in id order and stops at the end of the page, and no listing
//! index is written when a task is leased or finished (migration 6):
//! - no filter: the primary key; a queue: `tasks_by_queue` (queue, id);
//! - failed or cancelled, alone or in a queue: `tasks_stopped_by_state` (state, id) or
//!   `tasks_stopped_by_queue` (queue, state, id), partial indexes of those two states only;
//! - queued, leased or succeeded, the states every task goes through (an index by state would
//!   make every lease and result write it): a walk of the ids after the cursor (the primary key,
//!   or `tasks_by_queue` in a queue) that checks each task's state, over a few pages' worth of
//!   tasks as the store's counts tell how common the state is; if it did not fill the page, the
//!   state's own index, which the hot paths keep anyway (`tasks_queued`, `tasks_leased`,
//!   `tasks_finished`), read whole and sorted. A state common among the ids after the cursor
//!   fills the page in the walk; a rare one has a small index. What is left slow is a common
//!   state that the cursor's next ids do not hold, where an index per state would read a page:
//!   queued tasks behind a long history of succeeded ones read their index whole (13 ms for
//!   148,000 queued among 1M tasks), succeeded ones behind 500,000 queued ones read every
//!   finished task's row (60 to 110 ms, as slow as the table scan before migration 4). (One statement
//!   with `?2 IS NULL OR queue = ?2` terms read the whole table whatever the filter.)
//!
//! A page is also cut by bytes ([`TaskPage::fitting`]), and read without payloads and results
//! unless asked for them.

use common::TaskState;
use rusqlite::{Connection, Params, params};

use super::counts::Counts;
use super::rows::{COLUMNS, SUMMARY_COLUMNS, task_from_row};
use crate::store::db;
use crate::store::{StoreError, TaskFilter, TaskPage};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) const BY_ID: &str = "SELECT id FROM tasks WHERE id > ?1 ORDER BY id LIMIT ?2 + 0";

pub(super) const BY_QUEUE: &str =
    "SELECT id FROM tasks WHERE queue = ?3 AND id > ?1 ORDER BY id LIMIT ?2 + 0";

/// Failed or cancelled tasks: the `OR` is the partial index's condition, which `state = ?3`
/// alone does not tell SQLite.
pub(super) const STOPPED: &str = "SELECT id FROM tasks \
    WHERE (state = 'failed' OR state = 'cancelled') AND state = ?3 AND id > ?1 \
    ORDER BY id LIMIT ?2 + 0";

pub(super) const STOPPED_IN_QUEUE: &str = "SELECT id FROM tasks \
    WHERE (state = 'failed' OR state = 'cancelled') AND queue = ?4 AND state = ?3 AND id > ?1 \
    ORDER BY id LIMIT ?2 + 0";

/// The first `?2` tasks after `?1` in id order, each with whether it is in state `?3`.
pub(super) const WALK: &str =
    "SELECT id, state = ?3 FROM tasks WHERE id > ?1 ORDER BY id LIMIT ?2 + 0";

/// [`WALK`] in queue `?4`.
pub(super) const WALK_IN_QUEUE: &str = "SELECT id, state = ?3 FROM tasks \
    INDEXED BY tasks_by_queue WHERE queue = ?4 AND id > ?1 ORDER BY id LIMIT ?2 + 0";

/// Tasks in `state` (queued, leased or succeeded), read from the partial index that holds that
/// state's tasks, in queue `?3` if `in_queue`.
pub(super) fn by_own_index(state: TaskState, in_queue: bool) -> String {
    let index = match state {
        TaskState::Queued => "tasks_queued",
        TaskState::Leased => "tasks_leased",
        _ => "tasks_finished",
    };
    let queue = if in_queue { "AND queue = ?3" } else { "" };
    format!(
        "SELECT id FROM tasks INDEXED BY {index} WHERE state = '{}' {queue} AND id > ?1 \
         ORDER BY id LIMIT ?2 + 0",
        state.as_str()
    )
}

/// How many tasks a page's walk may pass over, from the store's counts. Only a hint: a wrong
/// one changes what a page costs, never its tasks.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sizes {
    /// Tasks in the filter's state and queue.
    pub(super) matching: i64,
    /// Tasks in the filter's queue (all tasks without one).
    pub(super) in_queue: i64,
    /// Entries a read of the state's own index passes over.
    pub(super) own_index: i64,
}

impl Sizes {
    /// The sizes for a page of `state` tasks in `queue`, from `counts`.
    pub(super) fn of(counts: &Counts, queue: Option<&str>, state: TaskState) -> Sizes {
        let own_index = match state {
            TaskState::Queued => counts.of(queue, Some(state)),
            TaskState::Leased => counts.of(None, Some(state)),
            _ => [
                TaskState::Succeeded,
                TaskState::Failed,
                TaskState::Cancelled,
            ]
            .into_iter()
            .map(|state| counts.of(None, Some(state)))
            .sum(),
        };
        Sizes {
            matching: counts.of(queue, Some(state)),
            in_queue: counts.of(queue, None),
            own_index,
        }
    }

    /// Tasks a walk passes over: enough to fill a page of `limit` [`SPREAD`] times over were the
    /// matching tasks spread evenly, but never more than the state's own index would read
    /// instead (at about the same cost each).
    fn walk(self, limit: u32) -> u32 {
        let even = SPREAD * i64::from(limit) * self.in_queue.max(1) / self.matching.max(1);
        even.min(self.own_index).clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// How many pages' worth of matching tasks a walk looks for, on average, before it takes the
/// state's own index: enough that tasks spread unevenly still fill the page.
const SPREAD: i64 = 4;

/// Bytes of a task's payload and result, and of its error: what a page is cut by.
const SIZES: &str = "SELECT octet_length(payload) + COALESCE(octet_length(result), 0), \
    COALESCE(octet_length(error), 0) FROM tasks WHERE id = ?1";

/// The page `filter` asks for, read in one transaction so that it is one snapshot. The sizes
/// are read first, from the records' headers, so that bodies past the byte limit are not read.
pub(super) fn list(conn: &Connection, filter: &TaskFilter, sizes: Sizes) -> Result<TaskPage> {
    let tx = conn.unchecked_transaction().map_err(db)?;
    let mut sized = Vec::new();
    for id in page_ids(&tx, filter, sizes)? {
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

fn page_ids(conn: &Connection, filter: &TaskFilter, sizes: Sizes) -> Result<Vec<i64>> {
    if !filter.search.is_empty() {
        return super::search::page_ids(conn, filter);
    }
    let after = filter.after_id.map_or(0, |id| id.0);
    let limit = filter.limit;
    let queue = filter.queue.as_deref();
    match (queue, filter.state) {
        (None, None) => ids(conn, BY_ID, params![after, limit]),
        (Some(queue), None) => ids(conn, BY_QUEUE, params![after, limit, queue]),
        (None, Some(state @ (TaskState::Failed | TaskState::Cancelled))) => {
            ids(conn, STOPPED, params![after, limit, state.as_str()])
        }
        (Some(queue), Some(state @ (TaskState::Failed | TaskState::Cancelled))) => ids(
            conn,
            STOPPED_IN_QUEUE,
            params![after, limit, state.as_str(), queue],
        ),
        (queue, Some(state)) => moving(conn, state, queue, after, limit, sizes),
    }
}

/// A page of queued, leased or succeeded tasks: the walk's, if it filled the page or reached
/// the last task; otherwise read from the state's own index.
fn moving(
    conn: &Connection,
    state: TaskState,
    queue: Option<&str>,
    after: i64,
    limit: u32,
    sizes: Sizes,
) -> Result<Vec<i64>> {
    if let Some(page) = walk(conn, state, queue, after, limit, sizes.walk(limit))? {
        return Ok(page);
    }
    let sql = by_own_index(state, queue.is_some());
    match queue {
        None => ids(conn, &sql, params![after, limit]),
        Some(queue) => ids(conn, &sql, params![after, limit, queue]),
    }
}

/// The first `limit` tasks in `state` among the `budget` tasks after `after`, if that is the
/// page: they fill it, or no task follows the walk.
fn walk(
    conn: &Connection,
    state: TaskState,
    queue: Option<&str>,
    after: i64,
    limit: u32,
    budget: u32,
) -> Result<Option<Vec<i64>>> {
    let sql = if queue.is_some() { WALK_IN_QUEUE } else { WALK };
    let mut statement = conn.prepare_cached(sql).map_err(db)?;
    let mut rows = match queue {
        None => statement.query(params![after, budget, state.as_str()]),
        Some(queue) => statement.query(params![after, budget, state.as_str(), queue]),
    }
    .map_err(db)?;
    let (mut page, mut walked) = (Vec::new(), 0);
    while let Some(row) = rows.next().map_err(db)? {
        walked += 1;
        if row.get::<_, bool>(1).map_err(db)? {
            page.push(row.get(0).map_err(db)?);
            if page.len() >= limit as usize {
                return Ok(Some(page));
            }
        }
    }
    Ok((walked < budget).then_some(page))
}

fn ids(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<i64>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, |row| row.get(0))?.collect())
        .map_err(db)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::NewTask;
    use crate::store::sqlite::ops;
    use crate::store::sqlite::schema::{Synchronous, open_writer};

    /// 600 tasks in two queues whose states come in runs, as a store's do: a long history of
    /// succeeded tasks, then the failed, leased, queued and cancelled ones among later successes.
    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let tasks = (0..600)
            .map(|i| NewTask {
                queue: if i % 3 == 0 { "a" } else { "b" }.into(),
                payload: json!(i),
                priority: 0,
                max_attempts: 3,
                default_lease_ms: 30_000,
                created_at: 1,
                run_at: 1,
                idempotency_key: None,
                concurrency_key: None,
                tags: Vec::new(),
            })
            .collect();
        ops::insert(&conn, tasks, crate::engine::rules::on_resubmit).unwrap();
        conn.execute_batch(
            "UPDATE tasks SET state = CASE \
                 WHEN id <= 300 OR id % 7 = 0 THEN 'succeeded' \
                 WHEN id <= 310 OR id % 11 = 0 THEN 'failed' \
                 WHEN id <= 330 THEN 'leased' \
                 WHEN id <= 580 THEN 'queued' \
                 ELSE 'cancelled' END;
             UPDATE tasks SET lease_expires_at = 100 WHERE state = 'leased';",
        )
        .unwrap();
        (dir, conn)
    }

    fn count(conn: &Connection, queue: Option<&str>, state: Option<TaskState>) -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM tasks WHERE (?1 IS NULL OR queue = ?1) \
             AND (?2 IS NULL OR state = ?2)",
            params![queue, state.map(TaskState::as_str)],
            |row| row.get(0),
        )
        .unwrap()
    }

    /// The page `filter` asks for, read the slow and obvious way.
    fn expected(conn: &Connection, filter: &TaskFilter) -> Vec<i64> {
        ids(
            conn,
            "SELECT id FROM tasks WHERE (?3 IS NULL OR queue = ?3) AND (?4 IS NULL OR state = ?4) \
             AND id > ?1 ORDER BY id LIMIT ?2",
            params![
                filter.after_id.map_or(0, |id| id.0),
                filter.limit,
                filter.queue,
                filter.state.map(TaskState::as_str)
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_filter_lists_the_first_matching_tasks_after_the_cursor_whatever_the_counts_say() {
        let (_dir, conn) = database();
        let states = std::iter::once(None).chain(TaskState::ALL.map(Some));
        for state in states {
            for queue in [None, Some("a"), Some("b"), Some("none")] {
                let accurate = Sizes {
                    matching: count(&conn, queue, state),
                    in_queue: count(&conn, queue, None),
                    own_index: count(&conn, None, None),
                };
                let wrong = [
                    Sizes::default(),
                    Sizes {
                        matching: 1,
                        in_queue: 1 << 40,
                        own_index: 1 << 40,
                    },
                ];
                for sizes in std::iter::once(accurate).chain(wrong) {
                    for (after, limit) in [(0, 1), (0, 7), (0, 100), (150, 7), (305, 20), (590, 5)]
                    {
                        let filter = TaskFilter {
                            queue: queue.map(str::to_owned),
                            state,
                            search: Default::default(),
                            after_id: Some(common::TaskId(after)),
                            limit,
                            bodies: false,
                            max_bytes: usize::MAX,
                        };
                        assert_eq!(
                            page_ids(&conn, &filter, sizes).unwrap(),
                            expected(&conn, &filter),
                            "{filter:?} {sizes:?}"
                        );
                    }
                }
            }
        }
    }
}
