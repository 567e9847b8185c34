//! `GET /tasks` with the filters beyond queue and state ([`Search`]), and the chunks of a bulk
//! operation: the ids of a page, in id order after the cursor.
//!
//! One statement, built from the filters given; every filter is a condition on the task. The
//! first of these that is given makes the statement start from its index (the planner picks
//! the path; the plans are checked in `costs`):
//! - `ids`: the primary key;
//! - `tag`, else `concurrency_key`: `task_labels` (label, task_id), in id order, joined to tasks;
//! - `worker_id` of failed tasks: `tasks_by_state` (state, id), the failed tasks alone;
//! - `finished_after`: `tasks_finished` (updated_at);
//! - `created_after` / `created_before`: the BRIN index `tasks_created`;
//! - otherwise `tasks_by_state` / `tasks_by_queue`, as the listing by queue and state reads
//!   them, the other filters checked on each task (`error_contains` can only be checked; the
//!   console pairs it with `state=failed`).
//!
//! Parameters are bound in one order whatever the filters (`$1` .. `$13`); a filter not given
//! has no condition, and its parameter is typed by the binding alone.

use common::TaskState;
use sqlx::PgConnection;

use crate::store::db;
use crate::store::{StoreError, TaskFilter};

type Result<T> = std::result::Result<T, StoreError>;

/// The statement for `filter`'s page (its parameters are bound by [`page_ids`]).
pub(super) fn statement(filter: &TaskFilter) -> String {
    let search = &filter.search;
    let mut conditions = vec!["t.id > $1"];
    let labelled =
        search.ids.is_none() && (search.tag.is_some() || search.concurrency_key.is_some());
    let from = if labelled {
        conditions.push("l.label = $13 AND l.task_id > $1");
        "task_labels AS l JOIN tasks AS t ON t.id = l.task_id"
    } else {
        "tasks AS t"
    };
    let given = [
        (filter.queue.is_some(), "t.queue = $3"),
        (filter.state.is_some(), "t.state = $4"),
        (
            search.tag.is_some(),
            "EXISTS (SELECT 1 FROM task_labels AS o WHERE o.label = $5 AND o.task_id = t.id)",
        ),
        (search.worker_id.is_some(), "t.completed_by = $6"),
        (search.concurrency_key.is_some(), "t.concurrency_key = $7"),
        (search.created_after.is_some(), "t.created_at >= $8"),
        (search.created_before.is_some(), "t.created_at < $9"),
        (
            search.finished_after.is_some(),
            "t.state IN ('succeeded', 'failed', 'cancelled') AND t.updated_at >= $10",
        ),
        (search.error_contains.is_some(), "strpos(t.error, $11) > 0"),
        (search.ids.is_some(), "t.id = ANY($12)"),
    ];
    conditions.extend(
        given
            .iter()
            .filter(|(given, _)| *given)
            .map(|(_, sql)| *sql),
    );
    format!(
        "SELECT t.id FROM {from} WHERE {} ORDER BY t.id LIMIT $2",
        conditions.join(" AND ")
    )
}

/// The ids of `filter`'s page.
pub(super) async fn page_ids(conn: &mut PgConnection, filter: &TaskFilter) -> Result<Vec<i64>> {
    let sql = statement(filter);
    bind(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), filter)
        .fetch_all(conn)
        .await
        .map_err(db)
}

/// Binds `$1` .. `$13` of [`statement`] for `filter`.
pub(super) fn bind<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    filter: &TaskFilter,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let search = &filter.search;
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
    query
        .bind(filter.after_id.map_or(0, |id| id.0))
        .bind(i64::from(filter.limit))
        .bind(filter.queue.clone())
        .bind(filter.state.map(TaskState::as_str))
        .bind(search.tag.as_ref().map(|tag| format!("t:{tag}")))
        .bind(search.worker_id.clone())
        .bind(search.concurrency_key.clone())
        .bind(search.created_after)
        .bind(search.created_before)
        .bind(search.finished_after)
        .bind(search.error_contains.clone())
        .bind(search.ids.clone())
        .bind(label)
}

#[cfg(test)]
mod tests {
    use super::super::costs::{NOW, assert_reads, database, on_postgres, task};
    use super::*;
    use crate::store::Search;

    fn filter(state: Option<TaskState>, search: Search) -> TaskFilter {
        TaskFilter {
            queue: None,
            state,
            search,
            after_id: None,
            limit: 100,
            bodies: false,
            max_bytes: usize::MAX,
        }
    }

    /// 20,000 tasks submitted a millisecond apart, every tenth with a tag and a key, succeeded
    /// by w1, but for the last 200, failed by w2; statistics taken.
    async fn store() -> std::sync::Arc<super::super::PgStore> {
        let tasks = (0..20_000)
            .map(|i| {
                let mut task = task(0, NOW);
                task.created_at = NOW + i;
                if i % 10 == 0 {
                    task.tags = vec![format!("t{}", i % 1000)];
                    task.concurrency_key = Some(format!("k{}", i % 1000));
                }
                task
            })
            .collect();
        let store = database(tasks).await;
        for sql in [
            "UPDATE tasks SET state = 'succeeded', completed_by = 'w1', updated_at = created_at",
            "UPDATE tasks SET state = 'failed', completed_by = 'w2', error = 'boom' \
             WHERE id > 19800",
            "VACUUM ANALYZE tasks",
            "ANALYZE task_labels",
        ] {
            sqlx::query(sql).execute(&store.pool).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn every_filter_the_console_uses_reads_an_index_and_never_the_whole_table() {
        if !on_postgres() {
            return;
        }
        let store = store().await;
        let text = |s: &str| Some(s.to_owned());
        let failed = Some(TaskState::Failed);
        let cases = [
            (
                filter(
                    None,
                    Search {
                        tag: text("t10"),
                        ..Search::default()
                    },
                ),
                "task_labels_pkey",
            ),
            (
                filter(
                    None,
                    Search {
                        concurrency_key: text("k10"),
                        ..Search::default()
                    },
                ),
                "task_labels_pkey",
            ),
            (
                filter(
                    failed,
                    Search {
                        worker_id: text("w2"),
                        ..Search::default()
                    },
                ),
                "tasks_by_state",
            ),
            (
                filter(
                    None,
                    Search {
                        finished_after: Some(NOW + 19_990),
                        ..Search::default()
                    },
                ),
                "tasks_finished",
            ),
            (
                filter(
                    None,
                    Search {
                        created_after: Some(NOW + 19_990),
                        ..Search::default()
                    },
                ),
                "tasks_created",
            ),
            (
                filter(
                    failed,
                    Search {
                        error_contains: text("boom"),
                        ..Search::default()
                    },
                ),
                "tasks_by_state",
            ),
            (
                filter(
                    None,
                    Search {
                        ids: Some(vec![1, 2]),
                        ..Search::default()
                    },
                ),
                "tasks_pkey",
            ),
        ];
        for (filter, index) in cases {
            let explain = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "EXPLAIN (FORMAT JSON) {}",
                statement(&filter)
            )));
            let plan: serde_json::Value =
                bind(explain, &filter).fetch_one(&store.pool).await.unwrap();
            let plan = plan.to_string();
            let read = index
                .split('|')
                .find(|index| plan.contains(&format!("\"Index Name\":\"{index}\"")));
            assert_reads(&plan, read.unwrap_or(index));
        }
    }
}
