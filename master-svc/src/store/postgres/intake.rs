//! The intake of the group-commit loops, for submissions ([`submitter`](super::submitter)) and for
//! leases and changes ([`writer`](super::writer)): a few loops take turns at one queue of jobs,
//! each taking the jobs waiting as one group, so that one group's commit overlaps the next
//! group's statements.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

use crate::store::StoreError;

/// The jobs waiting, shared by the loops.
pub(super) type Jobs<J> = Arc<Mutex<mpsc::Receiver<J>>>;

/// The jobs waiting, held by the loop that takes the next group.
pub(super) type Intake<J> = OwnedMutexGuard<mpsc::Receiver<J>>;

/// Starts `loops` loops running `run` on one queue of at most `depth` waiting jobs (senders wait
/// beyond it); they end when the returned sender is dropped.
pub(super) fn start<J, F>(
    pool: &PgPool,
    depth: usize,
    loops: usize,
    run: impl Fn(PgPool, Jobs<J>) -> F,
) -> mpsc::Sender<J>
where
    J: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (jobs, rx) = mpsc::channel(depth);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..loops {
        tokio::spawn(run(pool.clone(), rx.clone()));
    }
    jobs
}

/// Waits for a job, then adds it and the jobs waiting behind it to `group` until their `weight`
/// reaches `max` (a job weighing more makes a group of its own). Answers the intake, held: no
/// other loop takes a group until it is dropped. `None` once the sender is gone.
pub(super) async fn take<J>(
    jobs: &Jobs<J>,
    group: &mut Vec<J>,
    max: usize,
    weight: impl Fn(&J) -> usize,
) -> Option<Intake<J>> {
    // Held while this loop waits for a first job, so the other loops queue behind it rather
    // than split a burst into groups of one.
    let mut rx = Arc::clone(jobs).lock_owned().await;
    let first = rx.recv().await?;
    let mut size = weight(&first);
    group.push(first);
    while size < max {
        match rx.try_recv() {
            Ok(job) => {
                size += weight(&job);
                group.push(job);
            }
            Err(_) => break,
        }
    }
    Some(rx)
}

/// Sends the job `make` builds around its reply, and waits for the answer, which comes once the
/// job's group is committed or rolled back.
pub(super) async fn ask<J, T>(
    jobs: &mpsc::Sender<J>,
    make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> J,
) -> Result<T, StoreError> {
    let (reply, answer) = oneshot::channel();
    jobs.send(make(reply))
        .await
        .map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}
