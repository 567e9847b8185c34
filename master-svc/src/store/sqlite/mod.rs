//! The embedded store: one SQLite database file in WAL mode.
//!
//! Writes go through a single [`Writer`] thread that commits concurrent requests together (group
//! commit); reads use a small pool of read-only connections, which WAL lets run beside the writer.

mod ops;
mod rows;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::TaskId;
use rusqlite::Connection;

pub use schema::Synchronous;
use writer::{Writer, db};

use super::{
    Decide, DecideEach, Inserted, LeaseQuery, Leased, QueueRecord, Store, StoreError, TaskFilter,
    Updated,
};
use crate::model::{Millis, NewTask, TaskRecord};

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Tasks in a SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<SqliteStore, StoreError> {
        let conn = schema::open_writer(path, synchronous).map_err(db)?;
        let writer = Writer::start(conn).map_err(|e| StoreError::Database(e.to_string()))?;
        let readers = Arc::new(Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(SqliteStore { writer, readers })
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(work))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, tasks: Vec<NewTask>) -> Result<Vec<Inserted>, StoreError> {
        self.writer
            .write(move |conn| ops::insert(conn, tasks))
            .await
    }

    async fn lease(&self, query: LeaseQuery) -> Result<Leased, StoreError> {
        self.writer
            .write(move |conn| ops::lease(conn, &query))
            .await
    }

    async fn update(&self, id: TaskId, decide: Decide) -> Result<Updated, StoreError> {
        self.writer
            .write_last(move |conn| ops::update(conn, id, decide))
            .await
    }

    async fn expire_leases(
        &self,
        now: Millis,
        limit: u32,
        decide: DecideEach,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.writer
            .write(move |conn| ops::expire_leases(conn, now, limit, decide))
            .await
    }

    async fn purge_finished(&self, before: Millis, limit: u32) -> Result<usize, StoreError> {
        self.writer
            .write(move |conn| ops::purge_finished(conn, before, limit))
            .await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.read(move |conn| ops::get(conn, id)).await
    }

    async fn list(&self, filter: TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(move |conn| ops::list(conn, &filter)).await
    }

    async fn queues(&self, name: Option<String>) -> Result<Vec<QueueRecord>, StoreError> {
        self.read(move |conn| ops::queues(conn, name.as_deref()))
            .await
    }

    async fn set_sealed(&self, name: String, sealed: bool) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| ops::set_sealed(conn, &name, sealed))
            .await
    }

    async fn ready_queues(
        &self,
        queues: Vec<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| ops::ready_queues(conn, queues, now))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }
}

/// A pool of read-only connections, opened on demand.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    // A std mutex: it is held only to push or pop, never across a query or an await.
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().expect("reader pool poisoned").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path).map_err(db)?,
        };
        let output = work(&conn);
        let mut idle = self.idle.lock().expect("reader pool poisoned");
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        output
    }
}
