//! The SQL behind each store operation, as plain functions on a connection. Writes run on the
//! writer thread inside a group transaction; reads run on a pooled read-only connection.
//!
//! Every `LIMIT` on a parameter is written `LIMIT ?n + 0`: SQLite's planner looks at the value
//! bound to a bare `LIMIT ?n` and so recompiles the statement each time it is bound again (a
//! tenth of the writer thread's time in a drain at lease batch 1); an expression it does not look
//! into keeps the cached statement.

use std::collections::{BTreeSet, HashMap, HashSet};

use common::{StateCounts, TaskId, TaskState};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::gates;
use super::rows::{COLUMNS, UPDATE, parse_state, tags_text, task_from_row, update_params};
use crate::model::{
    Admission, Conflict, Gate, Lane, LaneTasks, LeaseQuery, Millis, NewTask, QueueBacklog,
    TaskRecord,
};
use crate::store::{
    Decide, DecideEach, Inserted, LeaseRules, Leased, QueueRecord, Resubmit, StoreError, Updated,
};
use crate::store::{db, labels};

type Result<T> = std::result::Result<T, StoreError>;

/// Inserts `tasks`; a known idempotency key yields the existing task. Only a task that would be
/// created is refused by a sealed queue: replaying an accepted submission after the seal still
/// returns its task, as an idempotent retry must.
pub(super) fn insert(
    conn: &Connection,
    tasks: Vec<NewTask>,
    resubmit: Resubmit,
) -> Result<Vec<Inserted>> {
    let mut open_queues: BTreeSet<String> = BTreeSet::new();
    tasks
        .into_iter()
        .map(|new| {
            if let Some(task) = by_idempotency_key(conn, new.idempotency_key.as_deref())? {
                resubmit(&new, &task)?;
                return Ok(Inserted {
                    task,
                    created: false,
                });
            }
            let task = new;
            if !open_queues.contains(&task.queue) {
                open_queue(conn, &task.queue)?;
                open_queues.insert(task.queue.clone());
            }
            insert_one(conn, task)
        })
        .collect()
}

fn by_idempotency_key(conn: &Connection, key: Option<&str>) -> Result<Option<TaskRecord>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE idempotency_key = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([key], task_from_row).optional())
        .map_err(db)
}

/// Records the queue if it is new; fails if it is sealed.
fn open_queue(conn: &Connection, queue: &str) -> Result<()> {
    if is_sealed(conn, queue)? {
        return Err(Conflict::QueueSealed(queue.to_owned()).into());
    }
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")
        .and_then(|mut s| s.execute([queue]))
        .map_err(db)?;
    Ok(())
}

fn insert_one(conn: &Connection, task: NewTask) -> Result<Inserted> {
    let sql = format!(
        "INSERT INTO tasks (queue, state, payload, priority, attempts, max_attempts, \
         default_lease_ms, created_at, run_at, updated_at, idempotency_key, delayed, \
         concurrency_key, tags) \
         VALUES (?1, 'queued', ?2, ?3, 0, ?4, ?5, ?6, ?7, ?6, ?8, ?7 > ?6, ?9, ?10) \
         RETURNING {COLUMNS}"
    );
    let task = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(
                params![
                    task.queue,
                    task.payload.to_string(),
                    task.priority,
                    task.max_attempts,
                    task.default_lease_ms,
                    task.created_at,
                    task.run_at,
                    task.idempotency_key,
                    task.concurrency_key,
                    tags_text(&task.tags),
                ],
                task_from_row,
            )
        })
        .map_err(db)?;
    label(conn, &task)?;
    Ok(Inserted {
        task,
        created: true,
    })
}

/// Files a new task under its tags and concurrency key, for the search (migration 11).
fn label(conn: &Connection, task: &TaskRecord) -> Result<()> {
    let mut statement = conn
        .prepare_cached("INSERT INTO task_labels (label, task_id) VALUES (?1, ?2)")
        .map_err(db)?;
    for label in labels(task) {
        statement.execute(params![label, task.id.0]).map_err(db)?;
    }
    Ok(())
}

/// Leases the best ready tasks: each is read, leased by `rules.grant` and written back as
/// [`update`] does. An `UPDATE ... RETURNING` would be one statement instead of two, but SQLite
/// materialises what it returns in a temporary b-tree, opened and closed for every task (a tenth
/// of the writer's time in a push drain). Each queue gives what its gate admits, its keyed tasks
/// by the key rotation ([`gates`]), and its gate is written back with the leases.
pub(super) fn lease(
    conn: &Connection,
    query: &LeaseQuery,
    now: Millis,
    rules: LeaseRules,
) -> Result<Leased> {
    let mut offered = Vec::new();
    let mut reopens = Vec::new();
    for queue in &query.queues {
        promote(conn, queue, now)?;
        let gate = gates::gate(conn, queue)?;
        let admission = (rules.admit)(&gate, now);
        if let Some(at) = admission.reopens_at {
            reopens.push((queue.clone(), at));
        }
        let wanted = admission.tasks.min(query.max_tasks);
        let candidates = match wanted {
            0 => Vec::new(),
            _ => queue_candidates(conn, &gate, &admission, wanted, now, rules)?,
        };
        offered.push((gate, candidates));
    }
    let mut chosen: Vec<Candidate> = offered
        .iter()
        .flat_map(|(_, candidates)| candidates.iter().map(|(_, candidate)| *candidate))
        .collect();
    chosen.sort_by_key(best_first);
    chosen.truncate(query.max_tasks as usize);
    let chosen_ids: HashSet<i64> = chosen.iter().map(|(id, ..)| *id).collect();
    for (gate, candidates) in &offered {
        let taken: Vec<Lane> = candidates
            .iter()
            .filter(|(_, (id, ..))| chosen_ids.contains(id))
            .map(|(lane, _)| lane.clone())
            .collect();
        let after = (rules.settle)(gate, now, &taken);
        if let Some(at) = after.reopens_at {
            reopens.push((gate.queue.clone(), at));
        }
        gates::write_gate(conn, gate, &after, taken.len() as u32)?;
    }
    if chosen.is_empty() {
        return Ok(Leased {
            tasks: Vec::new(),
            backlog: backlog(conn, &query.queues)?,
            reopens,
        });
    }
    let tasks = chosen
        .into_iter()
        .map(|(id, ..)| {
            let task = get(conn, TaskId(id))?.ok_or(StoreError::NotFound(TaskId(id)))?;
            let task = (rules.grant)(task, query, now);
            write(conn, &task)?;
            Ok(task)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Leased {
        tasks,
        backlog: Vec::new(),
        reopens,
    })
}

/// The best `wanted` ready tasks of the gate's queue, as the queue's limits admit them: those
/// without a key by priority, and those with one as the key rotation deals them. Each with
/// where it came from, in the order dealt.
fn queue_candidates(
    conn: &Connection,
    gate: &Gate,
    admission: &Admission,
    wanted: u32,
    now: Millis,
    rules: LeaseRules,
) -> Result<Vec<(Lane, Candidate)>> {
    let mut candidates: Vec<(Lane, Candidate)> = ready_candidates(conn, &gate.queue, now, wanted)?
        .into_iter()
        .map(|candidate| (Lane::Unkeyed, candidate))
        .collect();
    let lanes = gates::lanes(conn, gate, admission, wanted)?;
    if !lanes.is_empty() {
        let ranks: HashMap<i64, Candidate> = lanes
            .iter()
            .flat_map(|lane| lane.tasks.iter().map(|ranked| (ranked.0, *ranked)))
            .collect();
        let lanes = lanes
            .into_iter()
            .map(|lane| LaneTasks {
                key: lane.key,
                tasks: lane.tasks.into_iter().map(|(id, ..)| TaskId(id)).collect(),
            })
            .collect();
        for (lane, id) in (rules.deal)(lanes, wanted) {
            candidates.push((lane, ranks[&id.0]));
        }
        // The best of both. (The rotation dealt at most one task per key per round, so which
        // of its tasks go when there are too many does not favour a key.)
        candidates.sort_by_key(|(_, candidate)| best_first(candidate));
        candidates.truncate(wanted as usize);
    }
    Ok(candidates)
}

/// Moves `queue`'s delayed tasks that are due at `now` into the ready index. Each task is moved
/// once, by the first lease of its queue after it is due, so the cost follows the tasks that
/// became ready, not those still waiting: with none due it is one look-up.
pub(super) const PROMOTE: &str = "UPDATE tasks SET delayed = 0 WHERE queue = ?1 \
    AND state = 'queued' AND delayed = 1 AND run_at <= ?2";

fn promote(conn: &Connection, queue: &str, now: Millis) -> Result<()> {
    conn.prepare_cached(PROMOTE)
        .and_then(|mut s| s.execute(params![queue, now]))
        .map_err(db)?;
    Ok(())
}

/// The best ready tasks of one queue. `INDEXED BY`: the walk of `tasks_ready` in its order
/// stops at the `LIMIT`; the planner might otherwise take `tasks_queued`'s range and sort it.
pub(super) const READY_CANDIDATES: &str = "SELECT id, priority, run_at FROM tasks \
    INDEXED BY tasks_ready WHERE queue = ?1 AND state = 'queued' AND delayed = 0 \
    AND concurrency_key IS NULL \
    AND run_at <= ?2 ORDER BY priority DESC, run_at, id LIMIT ?3 + 0";

/// A ready task's id, priority and `run_at`: what orders candidates of several queues.
type Candidate = gates::Ranked;

/// The order tasks are leased in: highest priority first, then oldest `run_at`, then id.
fn best_first(&(id, priority, run_at): &Candidate) -> (std::cmp::Reverse<i32>, i64, i64) {
    (std::cmp::Reverse(priority), run_at, id)
}

/// The best `limit` ready tasks of one queue: each queue is read separately so that every read
/// is a short walk of the `tasks_ready` index.
fn ready_candidates(
    conn: &Connection,
    queue: &str,
    now: Millis,
    limit: u32,
) -> Result<Vec<Candidate>> {
    let mut statement = conn.prepare_cached(READY_CANDIDATES).map_err(db)?;
    let rows = statement
        .query_map(params![queue, now, limit], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(db)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db)
}

/// Whether a queue has a task ready at `?2`: a ready one, or a delayed one now due (promoted by
/// the next lease). Each is the first entry of a range of `tasks_queued`.
pub(super) const HAS_READY: &str = "SELECT EXISTS (SELECT 1 FROM tasks WHERE queue = ?1 \
    AND state = 'queued' AND delayed = 0 AND run_at <= ?2) \
    OR EXISTS (SELECT 1 FROM tasks WHERE queue = ?1 AND state = 'queued' AND delayed = 1 \
    AND run_at <= ?2)";

pub(super) fn ready_queues(
    conn: &Connection,
    queues: Vec<String>,
    now: Millis,
) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached(HAS_READY).map_err(db)?;
    let mut ready = Vec::new();
    for queue in queues {
        let has_ready: bool = statement
            .query_row(params![queue, now], |row| row.get(0))
            .map_err(db)?;
        if has_ready {
            ready.push(queue);
        }
    }
    Ok(ready)
}

/// What the engine needs of each queue to tell whether it is drained: a look-up of `queues`, one
/// of `tasks_queued`, and a read of `tasks_leased` (which holds the queue) that stops at the
/// queue's first leased task. `INDEXED BY`: the planner otherwise walks the queue's tasks in
/// `tasks_by_queue`, every finished one of them, to find none leased.
pub(super) const BACKLOG: &str = "SELECT \
    COALESCE((SELECT sealed FROM queues WHERE name = ?1), 0), \
    EXISTS (SELECT 1 FROM tasks WHERE queue = ?1 AND state = 'queued'), \
    EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_leased WHERE state = 'leased' AND queue = ?1)";

fn backlog(conn: &Connection, queues: &[String]) -> Result<Vec<QueueBacklog>> {
    let mut statement = conn.prepare_cached(BACKLOG).map_err(db)?;
    queues
        .iter()
        .map(|queue| {
            statement
                .query_row([queue], |row| {
                    Ok(QueueBacklog {
                        sealed: row.get(0)?,
                        queued: row.get(1)?,
                        leased: row.get(2)?,
                    })
                })
                .map_err(db)
        })
        .collect()
}

/// What a change of a task needs to know of its queue.
#[derive(Debug, Default)]
struct Flags {
    sealed: bool,
    /// It has settings: a lease that ends frees a slot a waiter may take.
    gated: bool,
    /// It keeps its count of leases (a cap or a key limit): a lease that starts or ends moves it.
    counted: bool,
}

fn flags(conn: &Connection, queue: &str) -> Result<Flags> {
    let sql = format!(
        "SELECT sealed, {}, leased IS NOT NULL FROM queues WHERE name = ?1",
        gates::GATED
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row([queue], |row| {
                Ok(Flags {
                    sealed: row.get(0)?,
                    gated: row.get(1)?,
                    counted: row.get(2)?,
                })
            })
            .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(db)
}

/// 1 if a change leased the task, -1 if it ended its lease, else 0.
fn leases_started(before: &TaskRecord, after: &TaskRecord) -> i64 {
    let leased = |task: &TaskRecord| i64::from(task.state == TaskState::Leased);
    leased(after) - leased(before)
}

fn is_sealed(conn: &Connection, queue: &str) -> Result<bool> {
    conn.prepare_cached("SELECT sealed FROM queues WHERE name = ?1")
        .and_then(|mut s| s.query_row([queue], |row| row.get(0)).optional())
        .map(Option::unwrap_or_default)
        .map_err(db)
}

/// Reads, decides, and writes last: at most one statement changes anything, and it comes last,
/// so a failure leaves nothing behind (the writer runs this without a savepoint). When a lease
/// of a queue that counts them starts or ends, the queue's count moves first, and back if the
/// task's write fails. (In a savepoint of its own, a result cost a capped queue's drain 7 %.)
pub(super) fn update(conn: &Connection, id: TaskId, decide: Decide) -> Result<Updated> {
    let before = get(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let after = decide(&before)?;
    let Flags {
        sealed: queue_sealed,
        gated: queue_gated,
        counted,
    } = flags(conn, &after.queue)?;
    let moved = leases_started(&before, &after);
    if counted && moved != 0 {
        gates::move_leased(conn, &after.queue, moved)?;
        if let Err(e) = write(conn, &after) {
            // The count moved and the task did not: move it back, or, if even that fails, give
            // up the group (the writer finds its transaction gone and fails every job of it).
            if gates::move_leased(conn, &after.queue, -moved).is_err() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(e);
        }
    } else if after != before {
        write(conn, &after)?;
    }
    Ok(Updated {
        before,
        after,
        queue_sealed,
        queue_gated,
    })
}

fn write(conn: &Connection, task: &TaskRecord) -> Result<()> {
    let params = update_params(task);
    conn.prepare_cached(UPDATE)
        .and_then(|mut s| s.execute(params_from_iter(params.iter())))
        .map_err(db)?;
    Ok(())
}

pub(super) fn expire_leases(
    conn: &Connection,
    now: Millis,
    limit: u32,
    decide: DecideEach,
) -> Result<Vec<TaskRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks WHERE state = 'leased' AND lease_expires_at <= ?1 \
         ORDER BY lease_expires_at LIMIT ?2 + 0"
    );
    let expired = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params![now, limit], task_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db)?;
    let mut ended: HashMap<&str, i64> = HashMap::new();
    let expired = expired
        .iter()
        .map(|task| {
            let after = decide(task);
            write(conn, &after)?;
            *ended.entry(task.queue.as_str()).or_default() += leases_started(task, &after);
            Ok(after)
        })
        .collect::<Result<Vec<_>>>()?;
    for (queue, n) in ended.into_iter().filter(|(_, n)| *n != 0) {
        gates::move_leased(conn, queue, n)?;
    }
    Ok(expired)
}

/// Deletes up to `?2` tasks finished before `?1`. Its condition on `state` is the
/// `tasks_finished` index's, word for word: SQLite uses a partial index only then. `INDEXED BY`:
/// the planner took migration 4's `tasks_by_state` instead, which read every finished task, old
/// or not.
pub(super) const PURGE_FINISHED: &str = "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks \
    INDEXED BY tasks_finished \
    WHERE (state = 'succeeded' OR state = 'failed' OR state = 'cancelled') \
    AND updated_at < ?1 LIMIT ?2 + 0) RETURNING queue, state";

/// Deletes finished tasks; returns the queue and state of each.
pub(super) fn purge_finished(
    conn: &Connection,
    before: Millis,
    limit: u32,
) -> Result<Vec<(String, TaskState)>> {
    conn.prepare_cached(PURGE_FINISHED)
        .and_then(|mut s| {
            s.query_map(params![before, limit], |row| {
                Ok((row.get(0)?, parse_state(row.get_ref(1)?.as_str()?)?))
            })?
            .collect()
        })
        .map_err(db)
}

pub(super) fn get(conn: &Connection, id: TaskId) -> Result<Option<TaskRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id.0], task_from_row).optional())
        .map_err(db)
}

/// `run_at` of a queue's oldest queued task: the first ready one and the first delayed one in
/// `tasks_queued`, two look-ups whatever the number of tasks or priorities. (The ready index is
/// ordered by priority first; a `MIN(run_at)` over it read a queue's whole backlog.)
pub(super) const OLDEST_QUEUED: &str = "SELECT MIN(run_at) FROM ( \
        SELECT MIN(run_at) AS run_at FROM tasks \
        WHERE queue = ?1 AND state = 'queued' AND delayed = 0 \
        UNION ALL \
        SELECT MIN(run_at) FROM tasks WHERE queue = ?1 AND state = 'queued' AND delayed = 1)";

/// Queues with their flags from the database and their `counts` from the store's tally.
pub(super) fn queues(
    conn: &Connection,
    name: Option<&str>,
    counts: HashMap<String, StateCounts>,
) -> Result<Vec<QueueRecord>> {
    let mut queues: Vec<QueueRecord> = conn
        .prepare_cached(&format!(
            "SELECT name, sealed, {} FROM queues WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
            gates::SETTINGS_COLUMNS
        ))
        .and_then(|mut s| {
            s.query_map([name], |row| {
                let (settings, bucket, _) = gates::settings_from_row(row, 2)?;
                Ok(QueueRecord {
                    name: row.get(0)?,
                    counts: StateCounts::default(),
                    oldest_ready_at: None,
                    sealed: row.get(1)?,
                    settings,
                    bucket,
                    held_by_keys: 0,
                })
            })?
            .collect()
        })
        .map_err(db)?;
    for queue in &mut queues {
        if let Some(counts) = counts.get(&queue.name) {
            queue.counts = counts.clone();
        }
        queue.oldest_ready_at = conn
            .prepare_cached(OLDEST_QUEUED)
            .and_then(|mut s| s.query_row([&queue.name], |row| row.get(0)))
            .map_err(db)?;
        if let Some(key_limit) = queue.settings.key_limit {
            queue.held_by_keys = gates::held_by_keys(conn, &queue.name, key_limit)?;
        }
    }
    Ok(queues)
}

pub(super) fn set_sealed(conn: &Connection, name: &str, sealed: bool) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO queues (name, sealed) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed",
    )
    .and_then(|mut s| s.execute(params![name, sealed]))
    .map_err(db)?;
    Ok(())
}

/// Forgets a queue with no task that is not sealed and has no settings; `tasks_by_queue` tells
/// there is no task.
pub(super) fn forget_queue(conn: &Connection, name: &str) -> Result<bool> {
    let deleted = conn
        .prepare_cached(&format!(
            "DELETE FROM queues WHERE name = ?1 AND NOT sealed AND NOT {} \
             AND NOT EXISTS (SELECT 1 FROM tasks WHERE queue = ?1)",
            gates::GATED
        ))
        .and_then(|mut s| s.execute([name]))
        .map_err(db)?;
    Ok(deleted > 0)
}
