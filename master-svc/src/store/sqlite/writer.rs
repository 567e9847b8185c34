//! Group commit: one thread owns the write connection and commits many requests at once.
//!
//! Every write is a job sent to this thread. The thread takes whatever jobs are waiting, runs each
//! inside its own savepoint (so one job's failure undoes only its own changes), commits them in a
//! single transaction — one fsync for the whole group — and only then answers each job. Under
//! load, groups grow by themselves; with one client, a job commits alone with no added delay.
//! Having a single writer also makes leasing trivially exclusive: no task can go to two leasers.

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Most jobs committed in one transaction; bounds the latency a large group adds.
const MAX_GROUP: usize = 512;
/// Jobs waiting for the writer before senders are made to wait.
const QUEUE_DEPTH: usize = 8192;

/// What a job leaves to be done once the group's commit is known.
type Reply = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;
/// A job gets the connection inside the group's transaction, or `None` if none could be begun.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Reply + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped.
    pub fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in the next group and returns its output once that group is durably committed.
    /// If `work` fails, whatever it changed is undone (it runs in a savepoint of its own).
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(move |conn| in_savepoint(conn, work)).await
    }

    /// As [`write`](Self::write), for work that changes the database in at most one statement,
    /// its last: a failure then leaves nothing to undo, and the savepoint (a sub-journal per job,
    /// a real cost at thousands of results a second) is skipped.
    pub async fn write_last<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work).await
    }

    async fn submit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let output = match conn {
                Some(conn) => work(conn),
                None => Err(StoreError::Database("no write transaction".into())),
            };
            Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => output,
                    Err(e) => Err(StoreError::Database(e.to_string())),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group.drain(..));
    }
}

fn commit_group(conn: &Connection, jobs: impl Iterator<Item = Job>) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        let e = Arc::new(e);
        tracing::error!(error = %e, "cannot begin a write transaction");
        jobs.for_each(|job| job(None)(Err(e.clone())));
        return;
    }
    let replies: Vec<Reply> = jobs.map(|job| job(Some(conn))).collect();
    let commit = run_cached(conn, "COMMIT").map_err(Arc::new);
    if let Err(e) = &commit {
        tracing::error!(error = %e, "commit failed; the group is rolled back");
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies {
        reply(commit.clone());
    }
}

/// Runs `work` so that if it fails, its partial changes are undone and the group goes on.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    exec(conn, "SAVEPOINT job")?;
    let output = work(conn);
    if output.is_err() {
        exec(conn, "ROLLBACK TO job")?;
    }
    exec(conn, "RELEASE job")?;
    output
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    run_cached(conn, sql).map_err(db)
}

/// Runs a statement without parameters, compiled once per connection.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
}

pub fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}
