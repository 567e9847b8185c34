//! Leasing for a whole group of lease requests in two statements, however many requests.
//!
//! Requests that ask for the same queues share one read of the ready tasks: their best tasks,
//! as many as they want together, locked, skipping rows another master is leasing at this very
//! moment rather than waiting for it (no task goes to two leasers, no master waits on another's
//! choice). Each queue is read separately so that every read is a short walk of the
//! `tasks_ready` index. The tasks are then dealt to the requests in arrival order and leased
//! with one `UPDATE`.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::ops::db;
use super::rows::{columns, task_from_row};
use crate::model::{Millis, TaskRecord};
use crate::store::{LeaseQuery, Leased, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// Leases for every query; answers in the queries' order.
pub async fn lease_all(conn: &mut PgConnection, queries: &[LeaseQuery]) -> Result<Vec<Leased>> {
    let mut by_queues: HashMap<&[String], Vec<usize>> = HashMap::new();
    for (i, query) in queries.iter().enumerate() {
        by_queues.entry(&query.queues).or_default().push(i);
    }
    let mut dealt: Vec<Vec<i64>> = vec![Vec::new(); queries.len()];
    // Rows this transaction locked for one set of queues are not skipped by the read for another
    // set that shares a queue (the lock is its own), so they are excluded by id.
    let mut taken: Vec<i64> = Vec::new();
    for (queues, members) in &by_queues {
        let wanted = members
            .iter()
            .map(|&i| i64::from(queries[i].max_tasks))
            .sum();
        let now = members
            .iter()
            .map(|&i| queries[i].now)
            .max()
            .unwrap_or_default();
        let mut ready = ready_ids(conn, queues, now, wanted, &taken)
            .await?
            .into_iter();
        for &i in members {
            dealt[i] = ready.by_ref().take(queries[i].max_tasks as usize).collect();
            taken.extend(&dealt[i]);
        }
    }
    let mut leased = lease_ids(conn, queries, &dealt).await?;
    let mut answers = Vec::with_capacity(queries.len());
    let mut drained: HashMap<&[String], bool> = HashMap::new();
    for (query, ids) in queries.iter().zip(&dealt) {
        let tasks: Vec<TaskRecord> = ids.iter().filter_map(|id| leased.remove(id)).collect();
        let drained = match (tasks.is_empty(), drained.get(query.queues.as_slice())) {
            (false, _) => false,
            (true, Some(&known)) => known,
            (true, None) => {
                let known = is_drained(conn, &query.queues).await?;
                *drained.entry(&query.queues).or_insert(known)
            }
        };
        answers.push(Leased { tasks, drained });
    }
    Ok(answers)
}

/// Ids of up to `limit` ready tasks of `queues`, best first, locked; none of `taken`.
///
/// Delayed tasks now due are first moved into the ready index (`promoted`, locked as they are
/// moved) and compete with the ready ones: the statement's read of the index does not see the
/// rows its own `UPDATE` changes. Each delayed task is moved once, by the first lease of its
/// queue after it is due, so a lease costs the same however many tasks are still delayed.
async fn ready_ids(
    conn: &mut PgConnection,
    queues: &[String],
    now: Millis,
    limit: i64,
    taken: &[i64],
) -> Result<Vec<i64>> {
    sqlx::query_scalar(
        "WITH promoted AS (UPDATE tasks SET delayed = false WHERE id IN (SELECT id FROM tasks \
             WHERE queue = ANY($1) AND state = 'queued' AND delayed AND run_at <= $2 \
             FOR UPDATE SKIP LOCKED) RETURNING id, priority, run_at) \
         SELECT c.id FROM ( \
             SELECT r.* FROM unnest($1::text[]) AS q (name) CROSS JOIN LATERAL \
             (SELECT id, priority, run_at FROM tasks WHERE queue = q.name AND state = 'queued' \
             AND NOT delayed AND run_at <= $2 AND id <> ALL($4) \
             ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS r \
             UNION ALL \
             SELECT id, priority, run_at FROM promoted WHERE id <> ALL($4)) AS c \
         ORDER BY c.priority DESC, c.run_at, c.id LIMIT $3",
    )
    .bind(queues)
    .bind(now)
    .bind(limit)
    .bind(taken)
    .fetch_all(conn)
    .await
    .map_err(db)
}

/// Leases each dealt task to the worker of the query it was dealt to; the leased tasks by id.
async fn lease_ids(
    conn: &mut PgConnection,
    queries: &[LeaseQuery],
    dealt: &[Vec<i64>],
) -> Result<HashMap<i64, TaskRecord>> {
    let pairs = || {
        queries
            .iter()
            .zip(dealt)
            .flat_map(|(q, ids)| ids.iter().map(move |id| (q, *id)))
    };
    if pairs().next().is_none() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(concat!(
        "UPDATE tasks SET state = 'leased', attempts = attempts + 1, updated_at = v.at, \
         lease_id = left(md5(random()::text || tasks.id::text), 16), lease_worker = v.leaser, \
         lease_ms = COALESCE(v.asked_ms, default_lease_ms), \
         lease_expires_at = v.at + COALESCE(v.asked_ms, default_lease_ms), lease_end = NULL, \
         cancel_requested = false, delayed = false \
         FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[]) AS v (task_id, leaser, at, asked_ms) \
         WHERE tasks.id = v.task_id RETURNING ",
        columns!()
    ))
    .bind(pairs().map(|(_, id)| id).collect::<Vec<_>>())
    .bind(pairs().map(|(q, _)| q.worker_id.as_str()).collect::<Vec<_>>())
    .bind(pairs().map(|(q, _)| q.now).collect::<Vec<_>>())
    .bind(pairs().map(|(q, _)| q.lease_ms).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| task_from_row(row).map(|task| (task.id.0, task)))
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}

/// Nothing of `queues` is queued or leased, and every one of them is sealed.
async fn is_drained(conn: &mut PgConnection, queues: &[String]) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM tasks WHERE queue = ANY($1) AND state = 'queued') \
         AND NOT EXISTS (SELECT 1 FROM tasks WHERE queue = ANY($1) AND state = 'leased') \
         AND (SELECT count(*) FROM queues WHERE name = ANY($1) AND sealed) = cardinality($1)",
    )
    .bind(queues)
    .fetch_one(conn)
    .await
    .map_err(db)
}
