//! Group commit of conditional changes: results, heartbeats, releases, cancels and retries.
//!
//! Under load many workers report at once. Each change reads its task, lets the engine decide,
//! and writes the task back; one transaction per change would cost five round trips and a WAL
//! flush each. Instead one loop takes every change waiting, locks all their tasks with one
//! `SELECT ... FOR UPDATE` (in id order, so that two masters' groups cannot deadlock), applies
//! the decisions in turn in memory (two changes to one task see each other), writes every
//! changed row with one `UPDATE` and commits once; only then is each change answered. A change
//! that arrives alone commits alone, with no added delay.

use std::collections::HashMap;

use common::TaskId;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::ops::db;
use super::rows::{columns, task_from_row, write_all};
use crate::model::TaskRecord;
use crate::store::{Decide, StoreError, Updated};

/// Most changes committed in one transaction; bounds the latency a large group adds.
const MAX_GROUP: usize = 512;
/// Changes waiting for the loop before senders are made to wait.
const QUEUE_DEPTH: usize = 8192;

type Answer = Result<Updated, StoreError>;

struct Job {
    id: TaskId,
    decide: Decide,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the group-commit loop.
#[derive(Debug)]
pub struct Updater {
    jobs: mpsc::Sender<Job>,
}

impl Updater {
    /// Starts the loop; it ends when the updater is dropped.
    pub fn start(pool: PgPool) -> Updater {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(pool, rx));
        Updater { jobs }
    }

    /// Applies `decide` to the task in the next group; answers once that group is committed.
    pub async fn update(&self, id: TaskId, decide: Decide) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job { id, decide, reply };
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (changes, replies): (Vec<_>, Vec<_>) = group
            .drain(..)
            .map(|job| ((job.id, job.decide), job.reply))
            .unzip();
        match commit_group(&pool, changes).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; the group is rolled back");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database(e.to_string())));
                }
            }
        }
    }
}

/// One transaction for the whole group: lock, decide each change in order, write, commit.
async fn commit_group(
    pool: &PgPool,
    changes: Vec<(TaskId, Decide)>,
) -> Result<Vec<Answer>, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let ids: Vec<i64> = changes.iter().map(|(id, _)| id.0).collect();
    let locked = lock(&mut tx, &ids).await?;
    let mut current: HashMap<TaskId, TaskRecord> = locked
        .iter()
        .map(|(id, (task, _))| (*id, task.clone()))
        .collect();
    let answers: Vec<Answer> = changes
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
    write_all(&mut tx, &changed).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
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
