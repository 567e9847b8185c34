//! `GET /tasks` with the filters beyond queue and state ([`Search`]), and the chunks of a bulk
//! operation: the ids of a page, in id order after the cursor.
//!
//! One statement, built from the filters given; every filter is a condition on the task, and
//! the first of these that is given chooses the index the statement walks (`INDEXED BY`, so that
//! the plan cannot drift to a scan of the table):
//! - `ids`: the primary key, one look-up per id;
//! - `tag`, else `concurrency_key`: `task_labels` (label, task_id), in id order;
//! - `worker_id` of failed tasks (`state=failed`): `tasks_failed_by_worker` (completed_by, id);
//! - `finished_after`: `tasks_finished` (updated_at), the finished tasks since then, sorted;
//! - `created_after` / `created_before`: `tasks_by_created` (created_at, id), sorted;
//! - otherwise the queue and state indexes as `listing` uses them, the other filters checked on
//!   each task walked (`error_contains` can only be checked: the console pairs it with
//!   `state=failed`, whose index holds the failed tasks alone).
//!
//! None of these indexes is written by a lease or a result (migration 11).

use common::TaskState;
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::store::db;
use crate::store::{StoreError, TaskFilter};

type Result<T> = std::result::Result<T, StoreError>;

/// `tasks_finished`'s condition, in its own words, as SQLite needs to use the partial index.
const FINISHED: &str = "(t.state = 'succeeded' OR t.state = 'failed' OR t.state = 'cancelled')";

/// A statement's conditions and their parameters.
struct Where {
    conditions: Vec<String>,
    params: Vec<(&'static str, Value)>,
}

impl Where {
    /// `sql`, with `value` bound to `name`, if there is a value.
    fn add(&mut self, sql: &str, name: &'static str, value: Option<Value>) {
        if let Some(value) = value {
            self.conditions.push(sql.to_owned());
            self.params.push((name, value));
        }
    }

    fn always(&mut self, sql: &str) {
        self.conditions.push(sql.to_owned());
    }
}

/// The statement for `filter`'s page and its named parameters.
pub(super) fn statement(filter: &TaskFilter) -> (String, Vec<(&'static str, Value)>) {
    let search = &filter.search;
    let mut params: Vec<(&'static str, Value)> = vec![
        (":after", filter.after_id.map_or(0, |id| id.0).into()),
        (":limit", i64::from(filter.limit).into()),
    ];
    let mut conditions = vec!["t.id > :after".to_owned()];
    let label = search
        .tag
        .as_ref()
        .map(|tag| format!("t:{tag}"))
        .or_else(|| {
            search
                .concurrency_key
                .as_ref()
                .map(|key| format!("k:{key}"))
        });
    let from = if search.ids.is_some() {
        "tasks AS t".to_owned()
    } else if let Some(label) = label {
        params.push((":label", label.into()));
        conditions.push("l.label = :label AND l.task_id > :after".into());
        // CROSS JOIN: SQLite walks the labels first, in id order, and looks up each task.
        "task_labels AS l CROSS JOIN tasks AS t ON t.id = l.task_id".to_owned()
    } else if search.worker_id.is_some() && filter.state == Some(TaskState::Failed) {
        // The partial index's condition, in its own words.
        conditions.push("t.state = 'failed'".into());
        "tasks AS t INDEXED BY tasks_failed_by_worker".to_owned()
    } else if search.finished_after.is_some() {
        "tasks AS t INDEXED BY tasks_finished".to_owned()
    } else if search.created_after.is_some() || search.created_before.is_some() {
        "tasks AS t INDEXED BY tasks_by_created".to_owned()
    } else {
        "tasks AS t".to_owned()
    };
    let mut filters = Where { conditions, params };
    filters.add(
        "t.queue = :queue",
        ":queue",
        filter.queue.clone().map(Value::from),
    );
    if matches!(filter.state, Some(TaskState::Failed | TaskState::Cancelled)) {
        // The partial indexes' condition, which `state = :state` alone does not tell SQLite.
        filters.always("(t.state = 'failed' OR t.state = 'cancelled')");
    }
    let state = filter
        .state
        .map(|state| Value::from(state.as_str().to_owned()));
    filters.add("t.state = :state", ":state", state);
    let tag = search
        .tag
        .as_ref()
        .map(|tag| Value::from(format!("t:{tag}")));
    filters.add(
        "EXISTS (SELECT 1 FROM task_labels AS o WHERE o.label = :tag AND o.task_id = t.id)",
        ":tag",
        tag,
    );
    let text = |value: &Option<String>| value.clone().map(Value::from);
    filters.add(
        "t.completed_by = :worker",
        ":worker",
        text(&search.worker_id),
    );
    filters.add(
        "t.concurrency_key = :key",
        ":key",
        text(&search.concurrency_key),
    );
    let time = |value: Option<i64>| value.map(Value::from);
    let created_after = time(search.created_after);
    filters.add(
        "t.created_at >= :created_after",
        ":created_after",
        created_after,
    );
    let created_before = time(search.created_before);
    filters.add(
        "t.created_at < :created_before",
        ":created_before",
        created_before,
    );
    if search.finished_after.is_some() {
        filters.always(FINISHED);
    }
    let finished_after = time(search.finished_after);
    filters.add(
        "t.updated_at >= :finished_after",
        ":finished_after",
        finished_after,
    );
    filters.add(
        "instr(t.error, :error) > 0",
        ":error",
        text(&search.error_contains),
    );
    let ids = search
        .ids
        .as_ref()
        .map(|ids| Value::from(serde_json::to_string(ids).expect("integers serialize")));
    filters.add("t.id IN (SELECT value FROM json_each(:ids))", ":ids", ids);
    let Where { conditions, params } = filters;
    let sql = format!(
        "SELECT t.id FROM {from} WHERE {} ORDER BY t.id LIMIT :limit + 0",
        conditions.join(" AND ")
    );
    (sql, params)
}

/// The ids of `filter`'s page.
pub(super) fn page_ids(conn: &Connection, filter: &TaskFilter) -> Result<Vec<i64>> {
    let (sql, params) = statement(filter);
    let params: Vec<(&str, &dyn rusqlite::ToSql)> = params
        .iter()
        .map(|(name, value)| (*name, value as &dyn rusqlite::ToSql))
        .collect();
    conn.prepare(&sql)
        .and_then(|mut s| s.query_map(params.as_slice(), |row| row.get(0))?.collect())
        .map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Search;
    use crate::store::sqlite::schema::{Synchronous, open_writer};

    /// The steps of the plan SQLite makes for `filter`'s statement.
    fn plan(conn: &Connection, filter: &TaskFilter) -> Vec<String> {
        let (sql, params) = statement(filter);
        let params: Vec<(&str, &dyn rusqlite::ToSql)> = params
            .iter()
            .map(|(name, value)| (*name, value as &dyn rusqlite::ToSql))
            .collect();
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = statement
            .query_map(params.as_slice(), |row| row.get(3))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn filter(state: Option<TaskState>, queue: Option<&str>, search: Search) -> TaskFilter {
        TaskFilter {
            queue: queue.map(str::to_owned),
            state,
            search,
            after_id: None,
            limit: 100,
            bodies: false,
            max_bytes: usize::MAX,
        }
    }

    #[test]
    fn every_filter_the_console_uses_reads_an_index_and_never_the_whole_table() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let text = |s: &str| Some(s.to_owned());
        let failed = Some(TaskState::Failed);
        let cases = [
            (
                filter(
                    None,
                    None,
                    Search {
                        tag: text("eu"),
                        ..Search::default()
                    },
                ),
                "PRIMARY KEY",
            ),
            (
                filter(
                    None,
                    None,
                    Search {
                        concurrency_key: text("k"),
                        ..Search::default()
                    },
                ),
                "PRIMARY KEY",
            ),
            (
                filter(
                    failed,
                    None,
                    Search {
                        worker_id: text("w1"),
                        ..Search::default()
                    },
                ),
                "tasks_failed_by_worker",
            ),
            (
                filter(
                    None,
                    None,
                    Search {
                        finished_after: Some(1),
                        ..Search::default()
                    },
                ),
                "tasks_finished",
            ),
            (
                filter(
                    None,
                    None,
                    Search {
                        created_after: Some(1),
                        ..Search::default()
                    },
                ),
                "tasks_by_created",
            ),
            (
                filter(
                    failed,
                    None,
                    Search {
                        error_contains: text("x"),
                        ..Search::default()
                    },
                ),
                "tasks_stopped_by_state",
            ),
            (
                filter(
                    failed,
                    text("q").as_deref(),
                    Search {
                        error_contains: text("x"),
                        ..Search::default()
                    },
                ),
                "tasks_stopped_by_queue",
            ),
            (
                filter(
                    None,
                    text("q").as_deref(),
                    Search {
                        error_contains: text("x"),
                        ..Search::default()
                    },
                ),
                "tasks_by_queue",
            ),
            (
                filter(
                    None,
                    None,
                    Search {
                        ids: Some(vec![1, 2]),
                        ..Search::default()
                    },
                ),
                "INTEGER PRIMARY KEY (rowid=?)",
            ),
        ];
        for (filter, index) in cases {
            let plan = plan(&conn, &filter);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{index}: {plan:?} {filter:?}"
            );
            assert!(
                !plan.iter().any(|step| step == "SCAN t" || step == "SCAN l"),
                "a scan of the table: {plan:?} {filter:?}"
            );
        }
    }
}
