//! Group commit of submissions without idempotency keys.
//!
//! Each `POST /tasks` as a transaction of its own cost PostgreSQL about 850 µs of CPU here
//! (BEGIN, the queues' share lock, the insert with its counting trigger, COMMIT and its flush),
//! against a few microseconds per task in a batch of 1,000 (BENCHMARKS.md, eighth session). So,
//! like the leases and results ([`writer`](super::writer)), the submissions waiting are taken
//! together: one transaction share-locks all their queues, refuses those that name a sealed
//! queue, inserts every other task in one statement, commits once, and answers each with its own
//! rows. A submission that arrives alone commits alone, with no added delay.
//!
//! Each submission stays whole: its tasks are all inserted, in its order and with ids in that
//! order, or it is refused before anything of it is written. Submissions with an idempotency key
//! are not grouped: two clients may send the same keys at once (a retry while the first try is
//! still in flight), and in one group their inserts could wait on each other's keys in opposite
//! orders; alone, each keeps the single statement it has always had.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::ops;
use crate::model::{Conflict, NewTask};
use crate::store::{Inserted, StoreError, db};

/// Most tasks inserted by one group; a larger submission makes a group of its own.
const MAX_GROUP_TASKS: usize = 1_000;
/// Submissions waiting for the loops before senders are made to wait.
const QUEUE_DEPTH: usize = 4096;
/// Groups in flight at once, so one group's flush overlaps the next group's statements.
const LOOPS: usize = 4;

type Answer = Result<Vec<Inserted>, StoreError>;

/// A submission, with where its answer goes.
struct Job {
    tasks: Vec<NewTask>,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the group-commit loops of submissions.
#[derive(Debug)]
pub(super) struct Submitter {
    jobs: mpsc::Sender<Job>,
}

impl Submitter {
    /// Starts the loops; they end when the submitter is dropped.
    pub(super) fn start(pool: PgPool) -> Submitter {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..LOOPS {
            tokio::spawn(run(pool.clone(), rx.clone()));
        }
        Submitter { jobs }
    }

    /// Inserts `tasks` (none with an idempotency key) in the next group; answers once that
    /// group is committed.
    pub(super) async fn insert(&self, tasks: Vec<NewTask>) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { tasks, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let group = {
            // Held while this loop waits for a first job, so the other loops queue behind it
            // rather than split a burst into groups of one.
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut size = first.tasks.len();
            let mut group = vec![first];
            while size < MAX_GROUP_TASKS {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.tasks.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        let (tasks, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|job| (job.tasks, job.reply)).unzip();
        match run_group(&pool, tasks).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %crate::chain::Chain(&e), "group commit of submissions failed; the group is rolled back");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs a group in one transaction: each submission's answer once it is committed, or the error
/// that rolled the whole group back.
async fn run_group(
    pool: &PgPool,
    submissions: Vec<Vec<NewTask>>,
) -> Result<Vec<Answer>, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let queues = submissions.iter().flatten().map(|task| task.queue.as_str());
    let sealed = ops::lock_queues(&mut tx, queues).await?;
    // Only a task that would be created is refused by a sealed queue, and without keys every
    // task would be: a submission naming one is refused whole, by its first such task.
    let refusals: Vec<Option<Conflict>> = submissions
        .iter()
        .map(|tasks| {
            let task = tasks.iter().find(|task| sealed.contains(&task.queue))?;
            Some(Conflict::QueueSealed(task.queue.clone()))
        })
        .collect();
    let sizes: Vec<usize> = submissions.iter().map(Vec::len).collect();
    let kept: Vec<NewTask> = submissions
        .into_iter()
        .zip(&refusals)
        .filter(|(_, refusal)| refusal.is_none())
        .flat_map(|(tasks, _)| tasks)
        .collect();
    let mut created = if kept.is_empty() {
        Default::default()
    } else {
        let created = ops::insert_rows(&mut tx, &kept).await?.unkeyed;
        tx.commit().await.map_err(db)?;
        created
    };
    Ok(sizes
        .into_iter()
        .zip(refusals)
        .map(|(size, refusal)| match refusal {
            Some(conflict) => Err(conflict.into()),
            None => Ok(created
                .drain(..size)
                .map(|task| Inserted {
                    task,
                    created: true,
                })
                .collect()),
        })
        .collect())
}
