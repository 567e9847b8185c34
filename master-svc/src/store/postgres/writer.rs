//! Group commit of leases and conditional changes (results, heartbeats, releases, cancels,
//! retries).
//!
//! Under load many workers lease and report at once; one transaction each would cost a WAL
//! flush each. Instead a loop takes every job waiting and runs them in one transaction. The
//! changes first: they lock all their tasks with one `SELECT ... FOR UPDATE` and apply the
//! engine's decisions in turn in memory (two changes to one task see each other). Then the
//! leases: a look at their queues (which also promotes due delayed tasks), then one read of
//! ready tasks per set of queues asked for ([`lease`]). Then one `UPDATE` writes every changed
//! and every leased row, and one commit; only then is each job answered. A job that arrives
//! alone commits alone, with no added delay. A group is thus six round trips (`BEGIN`, lock,
//! look, read, write, `COMMIT`), whatever its size, and one more when a lease finds nothing (its
//! queues' backlog, read after the write). Queues with flow-control settings or keyed tasks add
//! theirs: a read of their rows and a count, reads through their gates, and after the write
//! their confirmation: a lock of the rows of those the group took from, a count, and the gates'
//! write ([`Gates::confirm`](super::admission::Gates::confirm)).
//!
//! A few such loops run at once, so that one group's commit (a WAL flush: milliseconds on a real
//! disk) overlaps the next group's work. A loop holds the intake from taking its group until its
//! leases know their gates (after the look): the jobs that arrive meanwhile make one next group,
//! not several small ones. Groups of leases are larger and fewer: a drain of 30,000 no-op tasks
//! ran 12 % faster, with or without flow-control settings (`bench limits`, BENCHMARKS.md).
//!
//! They cannot deadlock, with each other or with other masters' loops: changes lock their tasks
//! in id order, and a group waits for locks only in its change phase and for its gated queues'
//! rows, all locked in one statement in name order (whoever holds one of those rows waits for
//! nothing more); leases skip locked rows rather than wait, and after them a group only writes
//! what it holds and commits.

use std::collections::HashMap;

use common::{TaskId, TaskState};
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::admission::Freed;
use super::gates::gated;
use super::intake::{self, Jobs};
use super::lease::{self, Chosen, LeaseJob};
use super::rows::{COLUMN_COUNT, columns, task_from_row, write_all};
use crate::model::TaskRecord;
use crate::store::db;
use crate::store::{Decide, Leased, StoreError, Updated};

/// Most changes committed in one transaction; bounds the latency a large group adds.
const MAX_GROUP: usize = 512;
/// Changes waiting for the loops before senders are made to wait.
const QUEUE_DEPTH: usize = 8192;
/// Groups in flight at once.
const LOOPS: usize = 4;

/// Begins a group's transaction with sorting priced out, without JIT, and with each statement's
/// plan made once per connection (one round trip).
///
/// The lease read must walk `tasks_ready` in its order and stop at the limit. When the
/// statistics say few tasks are queued (taken while the queues were drained, or never taken
/// on a new table) while many are, the planner prefers to read every ready task from
/// `tasks_queued` and sort them: 90 ms and a 4.8 MB sort on disk per read at 50,000 ready
/// tasks, against 2.5 ms. With sorts priced out it takes the ordered index whatever the
/// statistics; a sort with no alternative (the group's other statements) still runs, but its
/// plan's cost then passes `jit_above_cost`, and compiling it took 760 ms: JIT is off too.
///
/// A prepared statement is planned anew at each run while PostgreSQL expects a plan for the
/// parameters at hand to beat the generic one, and it always did for the lease read (its
/// `LIMIT` unknown, the generic plan is priced for more rows): half a millisecond a group, more
/// than the read itself, and more again once the read also looked at its queues' gates
/// (`look`). The group's statements have one plan whatever their parameters (index walks in
/// the order wanted, look-ups by id), so the generic one is kept: a drain at lease batch 1
/// went from 6,164–7,145 to 7,334–7,737 tasks/s.
pub(super) const BEGIN: &str = "BEGIN; SET LOCAL enable_sort = off; SET LOCAL jit = off; \
    SET LOCAL plan_cache_mode = force_generic_plan";

type Answer<T> = Result<T, StoreError>;

/// A job for the group, with where its answer goes.
enum Job {
    Lease(LeaseJob, oneshot::Sender<Answer<Leased>>),
    Update(TaskId, Decide, oneshot::Sender<Answer<Updated>>),
}

/// Handle to the group-commit loop.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the loops; they end when the writer is dropped.
    pub(super) fn start(pool: &PgPool) -> Writer {
        Writer {
            jobs: intake::start(pool, QUEUE_DEPTH, LOOPS, run),
        }
    }

    /// Leases in the next group; answers once that group is committed.
    pub(super) async fn lease(&self, job: LeaseJob) -> Answer<Leased> {
        intake::ask(&self.jobs, |reply| Job::Lease(job, reply)).await
    }

    /// Applies `decide` to the task in the next group; answers once that group is committed.
    pub(super) async fn update(&self, id: TaskId, decide: Decide) -> Answer<Updated> {
        intake::ask(&self.jobs, |reply| Job::Update(id, decide, reply)).await
    }
}

async fn run(pool: PgPool, jobs: Jobs<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        let Some(intake) = intake::take(&jobs, &mut group, MAX_GROUP, |_| 1).await else {
            return;
        };
        let mut leases = Vec::new();
        let mut changes = Vec::new();
        for job in group.drain(..) {
            match job {
                Job::Lease(query, reply) => leases.push((query, reply)),
                Job::Update(id, decide, reply) => changes.push((id, decide, reply)),
            }
        }
        // A group of changes alone waits for no gate: the next loop may take the next group.
        let intake = (!leases.is_empty()).then_some(intake);
        commit_group(&pool, leases, changes, intake).await;
    }
}

/// The jobs waiting, held by the loop that takes the next group.
type Intake = intake::Intake<Job>;

/// Runs a group in one transaction and answers every job: with its own outcome once the group
/// is committed, or with the error that rolled the group back. The `intake`, if held, is let go
/// once the group's leases know their gates.
async fn commit_group(
    pool: &PgPool,
    leases: Vec<(LeaseJob, oneshot::Sender<Answer<Leased>>)>,
    changes: Vec<(TaskId, Decide, oneshot::Sender<Answer<Updated>>)>,
    intake: Option<Intake>,
) {
    let (queries, lease_replies): (Vec<_>, Vec<_>) = leases.into_iter().unzip();
    let (decisions, change_replies): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .map(|(id, decide, reply)| ((id, decide), reply))
        .unzip();
    match run_group(pool, queries, decisions, intake).await {
        Ok((leased, updated)) => {
            for (reply, answer) in lease_replies.into_iter().zip(leased) {
                let _ = reply.send(Ok(answer));
            }
            for (reply, answer) in change_replies.into_iter().zip(updated) {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            tracing::error!(error = %crate::chain::Chain(&e), "group commit failed; the group is rolled back");
            let error = || e.clone();
            for reply in lease_replies {
                let _ = reply.send(Err(error()));
            }
            for reply in change_replies {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

async fn run_group(
    pool: &PgPool,
    queries: Vec<LeaseJob>,
    changes: Vec<(TaskId, Decide)>,
    intake: Option<Intake>,
) -> Answer<(Vec<Leased>, Vec<Answer<Updated>>)> {
    let mut tx = pool.begin_with(BEGIN).await.map_err(db)?;
    let decided = if changes.is_empty() {
        Decided::default()
    } else {
        decide_all(&mut tx, changes).await?
    };
    let mut chosen = if queries.is_empty() {
        Chosen::default()
    } else {
        lease::choose(
            &mut tx,
            &queries,
            decided.queued,
            decided.freed,
            move || drop(intake),
        )
        .await?
    };
    // One write for the changes and the leases: disjoint rows, since the leases skipped every
    // queued task the changes hold (the changes' other tasks are not queued in the table).
    let written: Vec<&TaskRecord> = decided
        .changed
        .iter()
        .chain(chosen.dealt.iter().flatten())
        .collect();
    write_all(&mut tx, &written).await.map_err(db)?;
    if !queries.is_empty() {
        lease::confirm(&mut tx, &queries, &mut chosen).await?;
    }
    let leased = if queries.is_empty() {
        Vec::new()
    } else {
        lease::answer(&mut tx, &queries, chosen).await?
    };
    tx.commit().await.map_err(db)?;
    Ok((leased, decided.answers))
}

/// The changes of a group, decided but not yet written.
#[derive(Default)]
pub(super) struct Decided {
    /// Each change's answer, in the changes' order.
    pub(super) answers: Vec<Answer<Updated>>,
    /// The records to write: every task a change changed, as the last change left it.
    pub(super) changed: Vec<TaskRecord>,
    /// The tasks the changes locked that are queued in the table: not for this group's leases.
    queued: Vec<i64>,
    /// The leases the changes end: slots this group's leases may fill.
    freed: Freed,
}

/// Locks the changes' tasks and applies each decision in order, in memory.
pub(super) async fn decide_all(
    conn: &mut PgConnection,
    changes: Vec<(TaskId, Decide)>,
) -> Answer<Decided> {
    let ids: Vec<i64> = changes.iter().map(|(id, _)| id.0).collect();
    let locked = lock(conn, &ids).await?;
    let mut current: HashMap<TaskId, TaskRecord> = locked
        .iter()
        .map(|(id, locked)| (*id, locked.task.clone()))
        .collect();
    let answers: Vec<Answer<Updated>> = changes
        .into_iter()
        .map(|(id, decide)| {
            let task = current.get_mut(&id).ok_or(StoreError::NotFound(id))?;
            let before = task.clone();
            let after = decide(&before)?;
            *task = after.clone();
            let queue = &locked[&id];
            Ok(Updated {
                before,
                after,
                queue_sealed: queue.sealed,
                queue_gated: queue.gated,
            })
        })
        .collect();
    let changed: Vec<TaskRecord> = current
        .into_values()
        .filter(|task| task != &locked[&task.id].task)
        .collect();
    let mut freed = Freed::default();
    for task in &changed {
        freed.count(&locked[&task.id].task, task);
    }
    let queued = locked
        .values()
        .filter(|locked| locked.task.state == TaskState::Queued)
        .map(|locked| locked.task.id.0)
        .collect();
    Ok(Decided {
        answers,
        changed,
        queued,
        freed,
    })
}

/// A task a change locked, with what the change's answer tells of its queue.
struct Locked {
    task: TaskRecord,
    /// Whether the queue is sealed (its waiters may be told it is drained).
    sealed: bool,
    /// Whether the queue has settings (a lease that ends frees a slot a waiter may take).
    gated: bool,
}

/// The tasks with these ids, locked, each with its queue's flags.
async fn lock(conn: &mut PgConnection, ids: &[i64]) -> Result<HashMap<TaskId, Locked>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        ", COALESCE(sealed, false), COALESCE(",
        gated!(),
        ", false) FROM tasks LEFT JOIN queues ON queues.name = tasks.queue \
         WHERE id = ANY($1) ORDER BY id FOR UPDATE OF tasks"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let task = task_from_row(row)?;
            let (sealed, gated) = (row.try_get(COLUMN_COUNT)?, row.try_get(COLUMN_COUNT + 1)?);
            Ok((
                task.id,
                Locked {
                    task,
                    sealed,
                    gated,
                },
            ))
        })
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}

#[cfg(test)]
mod tests {
    use super::super::costs::{NOW, database, on_postgres, task};
    use super::*;
    use crate::engine::rules;
    use crate::model::LeaseQuery;
    use crate::store::{Decide, Store};

    #[tokio::test]
    async fn a_lease_does_not_take_a_queued_task_that_a_change_of_its_group_holds() {
        if !on_postgres() {
            return;
        }
        let store = database(Vec::new()).await;
        let inserted = store
            .insert(vec![task(0, NOW)], rules::on_resubmit)
            .await
            .unwrap();
        let id = inserted[0].task.id;
        let cancel: Decide = Box::new(|task| rules::on_cancel(task, NOW));
        let lease = LeaseJob {
            query: LeaseQuery {
                worker_id: "w01".into(),
                queues: vec!["default".into()],
                max_tasks: 1,
                lease_ms: None,
            },
            now: NOW,
            rules: crate::engine::LEASE_RULES,
        };
        let (leased, updated) = run_group(&store.pool, vec![lease], vec![(id, cancel)], None)
            .await
            .unwrap();
        assert!(leased[0].tasks.is_empty(), "leased {:?}", leased[0].tasks);
        assert_eq!(
            updated[0].as_ref().unwrap().after.state,
            TaskState::Cancelled
        );
        let stored = store.get(id).await.unwrap().unwrap();
        assert_eq!(stored.state, TaskState::Cancelled);
    }
}
