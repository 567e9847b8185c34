//! Group commit of leases and conditional changes (results, heartbeats, releases, cancels,
//! retries).
//!
//! Under load many workers lease and report at once; one transaction each would cost a WAL
//! flush each. Instead a loop takes every job waiting and runs them in one transaction. The
//! changes first: they lock all their tasks with one `SELECT ... FOR UPDATE`, apply the engine's
//! decisions in turn in memory (two changes to one task see each other), and write every changed
//! row with one `UPDATE`. Then the leases: one read of ready tasks per set of queues asked for,
//! and one `UPDATE` for all of them ([`lease`]). One commit, and only then is each job answered.
//! A job that arrives alone commits alone, with no added delay.
//!
//! A few such loops run at once, so that one group's commit (a WAL flush: milliseconds on a real
//! disk) overlaps the next group's work. They cannot deadlock, with each other or with other
//! masters' loops: changes lock their tasks in id order, and a group waits for locks only in its
//! change phase; leases skip locked rows rather than wait, and after them a group only commits.

use std::collections::HashMap;
use std::sync::Arc;

use common::TaskId;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::lease::{self, LeaseJob};
use super::rows::{columns, task_from_row, write_all};
use crate::model::TaskRecord;
use crate::store::db;
use crate::store::{Decide, Leased, StoreError, Updated};

/// Most changes committed in one transaction; bounds the latency a large group adds.
const MAX_GROUP: usize = 512;
/// Changes waiting for the loops before senders are made to wait.
const QUEUE_DEPTH: usize = 8192;
/// Groups in flight at once.
const LOOPS: usize = 4;

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
    pub(super) fn start(pool: PgPool) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..LOOPS {
            tokio::spawn(run(pool.clone(), rx.clone()));
        }
        Writer { jobs }
    }

    /// Leases in the next group; answers once that group is committed.
    pub(super) async fn lease(&self, job: LeaseJob) -> Answer<Leased> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Lease(job, reply)).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies `decide` to the task in the next group; answers once that group is committed.
    pub(super) async fn update(&self, id: TaskId, decide: Decide) -> Answer<Updated> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Update(id, decide, reply)).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn send(&self, job: Job) -> Answer<()> {
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)
    }
}

async fn run(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        if !take_group(&rx, &mut group).await {
            return;
        }
        let mut leases = Vec::new();
        let mut changes = Vec::new();
        for job in group.drain(..) {
            match job {
                Job::Lease(query, reply) => leases.push((query, reply)),
                Job::Update(id, decide, reply) => changes.push((id, decide, reply)),
            }
        }
        commit_group(&pool, leases, changes).await;
    }
}

/// Fills `group` with the jobs waiting, after waiting for one; false once the writer is gone.
async fn take_group(rx: &Mutex<mpsc::Receiver<Job>>, group: &mut Vec<Job>) -> bool {
    // Held while this loop waits for a first job, so the other loops queue behind it rather
    // than split a burst into groups of one.
    let mut rx = rx.lock().await;
    let Some(first) = rx.recv().await else {
        return false;
    };
    group.push(first);
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    true
}

/// Runs a group in one transaction and answers every job: with its own outcome once the group
/// is committed, or with the error that rolled the group back.
async fn commit_group(
    pool: &PgPool,
    leases: Vec<(LeaseJob, oneshot::Sender<Answer<Leased>>)>,
    changes: Vec<(TaskId, Decide, oneshot::Sender<Answer<Updated>>)>,
) {
    let (queries, lease_replies): (Vec<_>, Vec<_>) = leases.into_iter().unzip();
    let (decisions, change_replies): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .map(|(id, decide, reply)| ((id, decide), reply))
        .unzip();
    match run_group(pool, queries, decisions).await {
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
) -> Answer<(Vec<Leased>, Vec<Answer<Updated>>)> {
    let mut tx = pool.begin().await.map_err(db)?;
    let updated = if changes.is_empty() {
        Vec::new()
    } else {
        decide_all(&mut tx, changes).await?
    };
    let leased = if queries.is_empty() {
        Vec::new()
    } else {
        lease::lease_all(&mut tx, &queries).await?
    };
    tx.commit().await.map_err(db)?;
    Ok((leased, updated))
}

/// Locks the changes' tasks, applies each decision in order, and writes what changed.
async fn decide_all(
    conn: &mut PgConnection,
    changes: Vec<(TaskId, Decide)>,
) -> Answer<Vec<Answer<Updated>>> {
    let ids: Vec<i64> = changes.iter().map(|(id, _)| id.0).collect();
    let locked = lock(conn, &ids).await?;
    let mut current: HashMap<TaskId, TaskRecord> = locked
        .iter()
        .map(|(id, (task, _))| (*id, task.clone()))
        .collect();
    let answers: Vec<Answer<Updated>> = changes
        .into_iter()
        .map(|(id, decide)| {
            let task = current.get_mut(&id).ok_or(StoreError::NotFound(id))?;
            let before = task.clone();
            let after = decide(&before)?;
            *task = after.clone();
            Ok(Updated {
                before,
                after,
                queue_sealed: locked[&id].1,
            })
        })
        .collect();
    let changed: Vec<&TaskRecord> = current
        .values()
        .filter(|task| task != &&locked[&task.id].0)
        .collect();
    write_all(conn, &changed).await.map_err(db)?;
    Ok(answers)
}

/// The tasks with these ids, locked, each with whether its queue is sealed.
async fn lock(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<HashMap<TaskId, (TaskRecord, bool)>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        ", COALESCE((SELECT sealed FROM queues WHERE name = tasks.queue), false) \
         FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE OF tasks"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let task = task_from_row(row)?;
            let sealed: bool = row.try_get(21)?;
            Ok((task.id, (task, sealed)))
        })
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}
