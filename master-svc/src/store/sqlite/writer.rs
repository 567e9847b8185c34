//! Group commit: one thread owns the write connection and commits many requests at once.
//!
//! Every write is a job sent to this thread. The thread takes whatever jobs are waiting, runs each
//! inside its own savepoint (so one job's failure undoes only its own changes), commits them in a
//! single transaction — one fsync for the whole group — and only then answers each job. Under
//! load, groups grow by themselves; with one client, a job commits alone with no added delay.
//! Having a single writer also makes leasing trivially exclusive: no task can go to two leasers.
//!
//! An answer is a promise: a job is answered success only if its writes are in the transaction
//! that committed. SQLite may roll back the *whole* transaction when a statement fails with
//! `SQLITE_FULL` or an I/O error (e.g. a large job spills the page cache onto a full disk). After
//! that, a savepoint no longer exists to roll back to, and a later job's statements would each
//! run as a transaction of their own, committed at once. So the writer checks after every job
//! that the group's transaction is still open, and when it is not, or a savepoint could not be
//! undone, the group is lost: no later job runs, and every job of the group is answered with the
//! error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Most jobs committed in one transaction; bounds the latency a large group adds.
const MAX_GROUP: usize = 512;
/// Jobs waiting for the writer before senders are made to wait.
const QUEUE_DEPTH: usize = 8192;

/// Why a group's transaction did not commit; every job of the group is answered with it.
#[derive(Debug, thiserror::Error)]
pub(super) enum GroupFailed {
    /// `BEGIN` failed: no job ran.
    #[error("cannot begin a write transaction")]
    Begin(#[source] rusqlite::Error),
    /// A job's failure took the group's transaction with it (or left changes no savepoint could
    /// undo); the jobs after it did not run.
    #[error("the write transaction was lost")]
    Lost(#[source] rusqlite::Error),
    /// A job's failure ended the transaction without an error of the writer's own to report.
    #[error("the write transaction was rolled back by the database (disk full or I/O error)")]
    RolledBack,
    /// `COMMIT` failed.
    #[error("commit failed")]
    Commit(#[source] rusqlite::Error),
}

/// What a job leaves to be done once the group's commit is known.
type Reply = Box<dyn FnOnce(Result<(), Arc<GroupFailed>>) + Send>;

/// A job ran: its reply, and whether its work failed (so its savepoint must be rolled back).
struct Ran {
    reply: Reply,
    failed: bool,
}

/// A job's work: run on the connection inside the group's transaction, or with `None` when the
/// group failed before its turn.
type Work = Box<dyn FnOnce(Option<&Connection>) -> Ran + Send>;

/// One write request.
struct Job {
    /// Whether the work runs in a savepoint of its own.
    savepoint: bool,
    run: Work,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    writable: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped.
    pub(super) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let writable = Arc::new(AtomicBool::new(true));
        let flag = writable.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, &flag))?;
        Ok(Writer { jobs, writable })
    }

    /// Whether the last group committed (false from a failed group until one commits again).
    pub(super) fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// Runs `work` in the next group and returns its output once that group is durably committed.
    /// If `work` fails, whatever it changed is undone (it runs in a savepoint of its own).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(true, work).await
    }

    /// As [`write`](Self::write), for work that changes the database in at most one statement,
    /// its last: a failure then leaves nothing to undo, and the savepoint (a sub-journal per job,
    /// a real cost at thousands of results a second) is skipped.
    pub(super) async fn write_last<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(false, work).await
    }

    async fn submit<T, F>(&self, savepoint: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |conn: Option<&Connection>| {
            let output = match conn {
                Some(conn) => work(conn),
                // Never seen: the reply answers with the group's failure.
                None => Err(StoreError::Closed),
            };
            let failed = output.is_err();
            let reply: Reply = Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => output,
                    Err(e) => Err(StoreError::Database(e)),
                };
                let _ = tx.send(answer);
            });
            Ran { reply, failed }
        });
        let job = Job { savepoint, run };
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>, writable: &AtomicBool) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group.drain(..), writable);
    }
}

/// Runs the jobs in one transaction, records in `writable` whether it committed, then answers
/// each (in that order, so that a client told of a failure finds the store not writable).
fn commit_group(conn: &Connection, jobs: impl Iterator<Item = Job>, writable: &AtomicBool) {
    let mut replies = Vec::new();
    let mut failure = begin(conn).err();
    for job in jobs {
        let ran = match failure {
            Some(_) => (job.run)(None),
            None => match run_job(conn, job) {
                Ok(ran) => ran,
                Err((ran, lost)) => {
                    failure = Some(lost);
                    ran
                }
            },
        };
        replies.push(ran.reply);
    }
    let outcome = match failure {
        Some(e) => Err(e),
        None => run_cached(conn, "COMMIT").map_err(GroupFailed::Commit),
    };
    if let Err(e) = &outcome {
        tracing::error!(error = %crate::chain::Chain(e), "group commit failed; every write of the group is undone");
        rollback(conn);
    }
    writable.store(outcome.is_ok(), Ordering::Relaxed);
    let outcome = outcome.map_err(Arc::new);
    for reply in replies {
        reply(outcome.clone());
    }
}

/// Begins the group's transaction, first ending any a failure left open.
fn begin(conn: &Connection) -> Result<(), GroupFailed> {
    rollback(conn);
    run_cached(conn, "BEGIN IMMEDIATE").map_err(GroupFailed::Begin)
}

/// Runs one job in the open transaction. `Err` when the group's transaction is lost by it: the
/// transaction is gone, or the job's changes could not be undone.
fn run_job(conn: &Connection, job: Job) -> Result<Ran, (Ran, GroupFailed)> {
    if job.savepoint
        && let Err(e) = run_cached(conn, "SAVEPOINT job")
    {
        return Err(((job.run)(None), GroupFailed::Lost(e)));
    }
    let ran = (job.run)(Some(conn));
    let ended = match (job.savepoint, ran.failed) {
        (false, _) => Ok(()),
        (true, true) => {
            run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
        }
        (true, false) => run_cached(conn, "RELEASE job"),
    };
    match ended {
        Err(e) => Err((ran, GroupFailed::Lost(e))),
        Ok(()) if conn.is_autocommit() => Err((ran, GroupFailed::RolledBack)),
        Ok(()) => Ok(ran),
    }
}

/// Rolls back the open transaction, if any.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %crate::chain::Chain(&e), "cannot roll back the write transaction");
    }
}

/// Runs a statement without parameters, compiled once per connection.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
}
