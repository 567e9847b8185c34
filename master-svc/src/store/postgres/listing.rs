//! `GET /tasks`: a page of tasks in id order, filtered by queue and state.
//!
//! Each filter has a statement of its own, so that each walks an index in id order and stops at
//! the end of the page: the primary key unfiltered, `tasks_by_state` (state, id) for a state,
//! `tasks_by_queue` (queue, state, id) for a queue. A queue's tasks in id order are the merge of
//! its states' ranges, each cut at the page size. (One statement with `$2::text IS NULL OR
//! queue = $2` terms read the whole table whatever the filter.)
//!
//! A page is also cut by bytes ([`TaskPage::fitting`]), and read without payloads and results
//! unless asked for them.

use common::TaskState;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, Postgres};

use super::rows::{columns, summary_columns, task_from_row};
use crate::store::db;
use crate::store::{StoreError, TaskFilter, TaskPage};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) const BY_ID: &str = "SELECT id FROM tasks WHERE id > $1 ORDER BY id LIMIT $2";

pub(super) const BY_STATE: &str =
    "SELECT id FROM tasks WHERE state = $3 AND id > $1 ORDER BY id LIMIT $2";

/// A queue's page: the first ids after the cursor of each state asked for, merged.
pub(super) const BY_QUEUE: &str = "SELECT t.id FROM unnest($4::text[]) AS s (state) \
    CROSS JOIN LATERAL (SELECT id FROM tasks WHERE queue = $3 AND state = s.state AND id > $1 \
    ORDER BY id LIMIT $2) AS t ORDER BY t.id LIMIT $2";

/// The page `filter` asks for. The caller runs this in one snapshot. The sizes are read first
/// (from TOAST pointers, without reading the values), so that bodies past the byte limit are
/// neither read nor sent.
pub(super) async fn list(conn: &mut PgConnection, filter: &TaskFilter) -> Result<TaskPage> {
    let ids = if filter.search.is_empty() {
        page_ids(filter).fetch_all(&mut *conn).await.map_err(db)?
    } else {
        super::search::page_ids(conn, filter).await?
    };
    let sizes: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, octet_length(payload)::int8 + COALESCE(octet_length(result), 0), \
         COALESCE(octet_length(error), 0)::int8 FROM tasks WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let sized: Vec<(i64, usize)> = sizes
        .into_iter()
        .map(|(id, bodies, error)| {
            let size = if filter.bodies { bodies + error } else { error };
            (id, size as usize)
        })
        .collect();
    let (ids, cut) = TaskPage::fitting(&sized, filter.max_bytes);
    let sql = if filter.bodies {
        concat!(
            "SELECT ",
            columns!(),
            " FROM tasks WHERE id = ANY($1) ORDER BY id"
        )
    } else {
        concat!(
            "SELECT ",
            summary_columns!(),
            " FROM tasks WHERE id = ANY($1) ORDER BY id"
        )
    };
    let rows = sqlx::query(sql)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let tasks = rows
        .iter()
        .map(task_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(db)?;
    Ok(TaskPage { tasks, cut })
}

fn page_ids(filter: &TaskFilter) -> QueryScalar<'static, Postgres, i64, PgArguments> {
    let after = filter.after_id.map_or(0, |id| id.0);
    let limit = i64::from(filter.limit);
    let state = filter.state.map(TaskState::as_str);
    match (filter.queue.clone(), state) {
        (None, None) => sqlx::query_scalar(BY_ID).bind(after).bind(limit),
        (None, Some(state)) => sqlx::query_scalar(BY_STATE)
            .bind(after)
            .bind(limit)
            .bind(state),
        (Some(queue), state) => {
            let states: Vec<&str> = match state {
                Some(state) => vec![state],
                None => TaskState::ALL.iter().map(|s| s.as_str()).collect(),
            };
            sqlx::query_scalar(BY_QUEUE)
                .bind(after)
                .bind(limit)
                .bind(queue)
                .bind(states)
        }
    }
}
