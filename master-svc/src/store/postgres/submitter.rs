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

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::intake::{self, Jobs};
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
    pub(super) fn start(pool: &PgPool) -> Submitter {
        Submitter {
            jobs: intake::start(pool, QUEUE_DEPTH, LOOPS, run),
        }
    }

    /// Inserts `tasks` (none with an idempotency key) in the next group; answers once that
    /// group is committed.
    pub(super) async fn insert(&self, tasks: Vec<NewTask>) -> Answer {
        intake::ask(&self.jobs, |reply| Job { tasks, reply }).await
    }
}

async fn run(pool: PgPool, jobs: Jobs<Job>) {
    let mut group = Vec::new();
    loop {
        if intake::take(&jobs, &mut group, MAX_GROUP_TASKS, |job| job.tasks.len())
            .await
            .is_none()
        {
            return;
        }
        let (tasks, replies): (Vec<_>, Vec<_>) =
            group.drain(..).map(|job| (job.tasks, job.reply)).unzip();
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
