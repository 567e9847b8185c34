//! Leasing for a whole group of lease requests in one read per set of queues, however many
//! requests.
//!
//! Requests that ask for the same queues share one read of the ready tasks: their best tasks,
//! as many as they want together, locked, skipping rows another master is leasing at this very
//! moment rather than waiting for it (no task goes to two leasers, no master waits on another's
//! choice). Each queue is read separately so that every read is a short walk of the
//! `tasks_ready` index. The tasks are then dealt to the requests in arrival order and leased by
//! the engine's rule; the group writes them with its changes, in one `UPDATE` ([`writer`]).
//!
//! [`writer`]: super::writer

use std::collections::HashMap;

use sqlx::{PgConnection, Row};

use super::rows::{columns, task_from_row};
use crate::model::{LeaseQuery, Millis, QueueBacklog, TaskRecord};
use crate::store::{LeaseRules, Leased, StoreError, db};

type Result<T> = std::result::Result<T, StoreError>;

/// One lease request of a group: what is asked, at what time, and the engine's rule.
#[derive(Debug)]
pub(super) struct LeaseJob {
    pub query: LeaseQuery,
    pub now: Millis,
    pub rules: LeaseRules,
}

/// Chooses ready tasks for every job, none of `held`, and leases each by its job's rule; what
/// each job was dealt, in the jobs' order. Nothing is written: the caller writes the leases
/// ([`write_all`](super::rows::write_all)) and then [`answer`]s.
pub(super) async fn choose(
    conn: &mut PgConnection,
    jobs: &[LeaseJob],
    held: Vec<i64>,
) -> Result<Vec<Vec<TaskRecord>>> {
    let mut by_queues: HashMap<&[String], Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        by_queues.entry(&job.query.queues).or_default().push(i);
    }
    let mut dealt: Vec<Vec<TaskRecord>> = vec![Vec::new(); jobs.len()];
    // Rows this transaction locked for one set of queues are not skipped by the read for another
    // set that shares a queue (the lock is its own), so they are excluded by id, as are the
    // caller's.
    let mut taken = held;
    for (queues, members) in &by_queues {
        let wanted = members
            .iter()
            .map(|&i| i64::from(jobs[i].query.max_tasks))
            .sum();
        let now = members
            .iter()
            .map(|&i| jobs[i].now)
            .max()
            .unwrap_or_default();
        let mut ready = ready_tasks(conn, queues, now, wanted, &taken)
            .await?
            .into_iter();
        for &i in members {
            let job = &jobs[i];
            dealt[i] = ready
                .by_ref()
                .take(job.query.max_tasks as usize)
                .map(|task| (job.rules.grant)(task, &job.query, job.now))
                .collect();
            taken.extend(dealt[i].iter().map(|task| task.id.0));
        }
    }
    Ok(dealt)
}

/// Answers every job with what it was dealt, once written; a job dealt nothing also gets its
/// queues' backlog, read after the group's writes.
pub(super) async fn answer(
    conn: &mut PgConnection,
    jobs: &[LeaseJob],
    dealt: Vec<Vec<TaskRecord>>,
) -> Result<Vec<Leased>> {
    let mut backlogs: HashMap<&[String], Vec<QueueBacklog>> = HashMap::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, tasks) in jobs.iter().zip(dealt) {
        let queues = job.query.queues.as_slice();
        let backlog = match (tasks.is_empty(), backlogs.get(queues)) {
            (false, _) => Vec::new(),
            (true, Some(known)) => known.clone(),
            (true, None) => {
                let known = backlog(conn, queues).await?;
                backlogs.entry(queues).or_insert(known).clone()
            }
        };
        answers.push(Leased {
            tasks,
            backlog,
            reopens: Vec::new(),
        });
    }
    Ok(answers)
}

/// Leases for every job, alone in a transaction: choose, write, answer.
#[cfg(test)]
pub(super) async fn lease_all(conn: &mut PgConnection, jobs: &[LeaseJob]) -> Result<Vec<Leased>> {
    let dealt = choose(conn, jobs, Vec::new()).await?;
    let granted: Vec<&TaskRecord> = dealt.iter().flatten().collect();
    super::rows::write_all(conn, &granted).await.map_err(db)?;
    answer(conn, jobs, dealt).await
}

/// Up to `limit` ready tasks of `queues`, best first, locked; none of `taken`.
///
/// Delayed tasks now due are first moved into the ready index (`promoted`, locked as they are
/// moved) and compete with the ready ones: the statement's read of the index does not see the
/// rows its own `UPDATE` changes. Each delayed task is moved once, by the first lease of its
/// queue after it is due, so a lease costs the same however many tasks are still delayed.
async fn ready_tasks(
    conn: &mut PgConnection,
    queues: &[String],
    now: Millis,
    limit: i64,
    taken: &[i64],
) -> Result<Vec<TaskRecord>> {
    let rows = sqlx::query(concat!(
        "WITH promoted AS (UPDATE tasks SET delayed = false WHERE id IN (SELECT id FROM tasks \
             WHERE queue = ANY($1) AND state = 'queued' AND delayed AND run_at <= $2 \
             FOR UPDATE SKIP LOCKED) RETURNING ",
        columns!(),
        ") SELECT c.* FROM ( \
             SELECT r.* FROM unnest($1::text[]) AS q (name) CROSS JOIN LATERAL \
             (SELECT ",
        columns!(),
        " FROM tasks WHERE queue = q.name AND state = 'queued' \
             AND NOT delayed AND run_at <= $2 AND id <> ALL($4) \
             ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS r \
             UNION ALL \
             SELECT * FROM promoted WHERE id <> ALL($4)) AS c \
         ORDER BY c.priority DESC, c.run_at, c.id LIMIT $3",
    ))
    .bind(queues)
    .bind(now)
    .bind(limit)
    .bind(taken)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(task_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}

/// Whether queue `q.name` has tasks in `$state`, from the counts (`queue_counts` plus the
/// deltas not yet folded in, this transaction's own included): exact, and one look-up whatever
/// the table holds. (An `EXISTS` on `tasks` read past every dead row a drain left behind, or the
/// whole table when the statistics were stale: 20 ms per empty lease after a 100,000-task drain,
/// in the transaction that also commits the results the lease carried.)
macro_rules! any_in {
    ($state:literal) => {
        concat!(
            "COALESCE((SELECT SUM(n) FROM (SELECT n FROM queue_counts \
             WHERE queue = q.name AND state = '",
            $state,
            "' UNION ALL \
             SELECT delta FROM queue_count_changes \
             WHERE queue = q.name AND state = '",
            $state,
            "') AS c), 0) > 0"
        )
    };
}

/// What the engine needs of each of `queues` to tell whether it is drained, in one statement.
pub(super) async fn backlog(
    conn: &mut PgConnection,
    queues: &[String],
) -> Result<Vec<QueueBacklog>> {
    let rows = sqlx::query(concat!(
        "SELECT COALESCE(s.sealed, false), ",
        any_in!("queued"),
        ", ",
        any_in!("leased"),
        " FROM unnest($1::text[]) WITH ORDINALITY AS q (name, n) \
         LEFT JOIN queues AS s ON s.name = q.name ORDER BY q.n",
    ))
    .bind(queues)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(QueueBacklog {
                sealed: row.try_get(0)?,
                queued: row.try_get(1)?,
                leased: row.try_get(2)?,
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}
