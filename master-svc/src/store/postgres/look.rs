//! A lease group's first read: one statement that promotes the due delayed tasks of every queue
//! the group asks for, tells which of those queues need their gates (settings, or ready tasks
//! with a concurrency key), and reads the ready tasks of the first set of queues that need none.
//!
//! One statement, not a look and then a read: on a shared database every statement is a round
//! trip, and a separate look cost the group commit 3 to 5 % of a drain. A group of queues
//! without settings and without keyed tasks thus costs what it cost before flow control, plus a
//! look-up of each queue's row and one of `tasks_lanes` (an empty range).

use sqlx::{PgConnection, Row};

use super::gates::gated;
use super::lease::rank;
use super::rows::{columns, task_from_row};
use crate::model::{Millis, TaskRecord};
use crate::store::{StoreError, db};

type Result<T> = std::result::Result<T, StoreError>;

/// Promotes the delayed tasks of the queues `$1` due at `$2`, and reads the best `$3` ready
/// tasks without a key of those of the queues `$5` that have no settings, none of `$4`, locked,
/// best first. Then a row for each queue of `$1` that needs its gate: its `id` `NULL`, its
/// `queue` the queue's name, and its `state` saying whether it has settings (`gated`, so that
/// none of its tasks was read here) and ready tasks with a key (`keyed`).
///
/// The statement does not see the rows its own `UPDATE` changes: promoted tasks are read from
/// what it returns (a queue whose only keyed tasks it promoted is told from them too), and the
/// group's later statements see them all. Each delayed task is moved once, by the first lease
/// of its queue after it is due, so a lease costs the same however many tasks are still delayed.
/// The due tasks are read in `tasks_queued`'s order, so that with sorts priced out the plan
/// walks that index whatever the statistics (the group's plans are made once, for any
/// parameters: [`BEGIN`](super::writer::BEGIN)); `tasks_by_state` served the same condition,
/// and read every queued task when the statistics had seen none.
pub(super) const LOOK_AND_READ: &str = concat!(
    "WITH promoted AS (UPDATE tasks SET delayed = false WHERE id IN (SELECT d.id \
         FROM unnest($1::text[]) AS q (name) CROSS JOIN LATERAL (SELECT id FROM tasks \
         WHERE queue = q.name AND state = 'queued' AND delayed AND run_at <= $2 \
         ORDER BY run_at FOR UPDATE SKIP LOCKED) AS d) RETURNING ",
    columns!(),
    "), look AS (SELECT q.name, COALESCE(",
    gated!(),
    ", false) AS gated, EXISTS (SELECT 1 FROM tasks WHERE queue = q.name \
         AND state = 'queued' AND NOT delayed AND concurrency_key IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM promoted AS p WHERE p.queue = q.name \
         AND p.concurrency_key IS NOT NULL) AS keyed \
         FROM unnest($1::text[]) AS q (name) LEFT JOIN queues AS s ON s.name = q.name) \
     (SELECT c.* FROM ( \
         SELECT r.* FROM look CROSS JOIN LATERAL (SELECT ",
    columns!(),
    " FROM tasks WHERE queue = look.name AND state = 'queued' AND NOT delayed \
         AND concurrency_key IS NULL AND run_at <= $2 AND id <> ALL($4) \
         ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS r \
         WHERE look.name = ANY($5) AND NOT look.gated \
         UNION ALL \
         SELECT p.* FROM promoted AS p JOIN look ON look.name = p.queue \
         WHERE p.queue = ANY($5) AND NOT look.gated AND p.concurrency_key IS NULL \
         AND p.id <> ALL($4)) AS c \
     ORDER BY c.priority DESC, c.run_at, c.id LIMIT $3) \
     UNION ALL \
     SELECT NULL, name, concat_ws(' ', CASE WHEN gated THEN 'gated' END, \
         CASE WHEN keyed THEN 'keyed' END), NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM look WHERE gated OR keyed",
);

/// What the first read found.
#[derive(Debug, Default)]
pub(super) struct Looked {
    /// The first set's ready tasks from queues without a gate, best first.
    pub pool: Vec<TaskRecord>,
    /// Each queue that needs its gate.
    pub needed: Vec<Needed>,
}

/// A queue that needs its gate, as the first read saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Needed {
    pub queue: String,
    /// It has settings: its tasks without a key were not read with the others, and are
    /// admitted through its gate, by this group's every read.
    pub gated: bool,
    /// It has ready tasks with a concurrency key.
    pub keyed: bool,
}

/// What the first read asks: every queue of the group, the first set's, how many of its tasks
/// at most, at what time, none of which tasks.
#[derive(Debug)]
pub(super) struct FirstRead<'a> {
    pub all: Vec<String>,
    pub set: &'a [String],
    pub wanted: i64,
    pub now: Millis,
    pub taken: &'a [i64],
}

pub(super) async fn look_and_read(conn: &mut PgConnection, read: FirstRead<'_>) -> Result<Looked> {
    let rows = sqlx::query(LOOK_AND_READ)
        .bind(&read.all)
        .bind(read.now)
        .bind(read.wanted)
        .bind(read.taken)
        .bind(read.set)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    let mut looked = Looked::default();
    for row in &rows {
        if row.try_get::<Option<i64>, _>(0).map_err(db)?.is_some() {
            looked.pool.push(task_from_row(row).map_err(db)?);
            continue;
        }
        let state: &str = row.try_get(2).map_err(db)?;
        looked.needed.push(Needed {
            queue: row.try_get(1).map_err(db)?,
            gated: state.contains("gated"),
            keyed: state.contains("keyed"),
        });
    }
    // `UNION ALL` keeps no order of its own.
    looked.pool.sort_by_key(rank);
    Ok(looked)
}
