//! The embedded store: one SQLite database file in WAL mode.
//!
//! Writes go through a single [`Writer`] thread that commits concurrent requests together (group
//! commit); reads use a small pool of read-only connections, which WAL lets run beside the writer.

mod audit;
mod cluster;
#[cfg(test)]
mod costs;
mod counts;
mod gates;
#[cfg(test)]
mod in_flight;
mod listing;
mod opening;
mod operations;
mod ops;
mod rows;
mod schema;
mod search;
mod writer;
#[cfg(test)]
mod writes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{TaskId, TaskState};
use rusqlite::Connection;

use counts::Counts;
pub use schema::Synchronous;
use writer::Writer;

use super::{
    ChangeSettings, Chunk, ChunkDone, Decide, DecideEach, Inserted, LeaseRules, Leased,
    NewOperation, OperationRecord, QueueRecord, Resubmit, Store, StoreError, TaskFilter, TaskPage,
    Updated, db,
};
use crate::model::{
    AuditRecord, LeaseQuery, LeasedBy, MasterRecord, Millis, NewTask, QueueSettings, TaskRecord,
};

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Tasks in a SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    counts: Arc<Counts>,
    /// Held for the life of the store: no other master opens this database meanwhile.
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, as its only master, and starts its
    /// writer thread. `integrity_check` runs SQLite's quick check first.
    pub fn open(
        path: &Path,
        synchronous: Synchronous,
        integrity_check: bool,
    ) -> Result<SqliteStore, StoreError> {
        opening::check_directory(path)?;
        let lock = opening::lock(path)?;
        if integrity_check && path.exists() {
            opening::quick_check(path)?;
        }
        let conn = schema::open_writer(path, synchronous).map_err(|e| {
            StoreError::unusable_by(format!("cannot open database file {}", path.display()), e)
        })?;
        let counts = Arc::new(Counts::load(&conn).map_err(db)?);
        gates::recount_leased(&conn).map_err(db)?;
        operations::release_all(&conn).map_err(db)?;
        cluster::forget_all(&conn).map_err(db)?;
        let writer = Writer::start(conn).map_err(db)?;
        let readers = Arc::new(Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(SqliteStore {
            writer,
            readers,
            counts,
            _lock: lock,
        })
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(work))
            .await
            .map_err(db)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    // Every change is counted once it is committed: see `counts`.

    async fn insert(
        &self,
        tasks: Vec<NewTask>,
        resubmit: Resubmit,
    ) -> Result<Vec<Inserted>, StoreError> {
        let inserted = self
            .writer
            .write(move |conn| ops::insert(conn, tasks, resubmit))
            .await?;
        for new in inserted.iter().filter(|new| new.created) {
            self.counts.add(&new.task.queue, new.task.state, 1);
        }
        Ok(inserted)
    }

    async fn lease(
        &self,
        query: LeaseQuery,
        now: Millis,
        rules: LeaseRules,
    ) -> Result<Leased, StoreError> {
        let leased = self
            .writer
            .write(move |conn| ops::lease(conn, &query, now, rules))
            .await?;
        for task in &leased.tasks {
            self.counts
                .moved(&task.queue, TaskState::Queued, TaskState::Leased);
        }
        Ok(leased)
    }

    async fn update(&self, id: TaskId, decide: Decide) -> Result<Updated, StoreError> {
        let updated = self
            .writer
            .write_last(move |conn| ops::update(conn, id, decide))
            .await?;
        let (before, after) = (&updated.before, &updated.after);
        self.counts.moved(&after.queue, before.state, after.state);
        Ok(updated)
    }

    async fn expire_leases(
        &self,
        now: Millis,
        limit: u32,
        decide: DecideEach,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let expired = self
            .writer
            .write(move |conn| ops::expire_leases(conn, now, limit, decide))
            .await?;
        for task in &expired {
            self.counts
                .moved(&task.queue, TaskState::Leased, task.state);
        }
        Ok(expired)
    }

    async fn purge_finished(&self, before: Millis, limit: u32) -> Result<usize, StoreError> {
        let purged = self
            .writer
            .write(move |conn| ops::purge_finished(conn, before, limit))
            .await?;
        for (queue, state) in &purged {
            self.counts.add(queue, *state, -1);
        }
        Ok(purged.len())
    }

    async fn record_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.writer
            .write_last(move |conn| audit::record(conn, &record))
            .await
    }

    async fn audit_page(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |conn| audit::page(conn, before_id, limit))
            .await
    }

    async fn purge_audit(&self, before: Millis, limit: u32) -> Result<usize, StoreError> {
        self.writer
            .write_last(move |conn| audit::purge(conn, before, limit))
            .await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.read(move |conn| ops::get(conn, id)).await
    }

    async fn list(&self, filter: TaskFilter) -> Result<TaskPage, StoreError> {
        let sizes = filter.state.map_or_else(Default::default, |state| {
            listing::Sizes::of(&self.counts, filter.queue.as_deref(), state)
        });
        self.read(move |conn| listing::list(conn, &filter, sizes))
            .await
    }

    async fn queues(&self, name: Option<String>) -> Result<Vec<QueueRecord>, StoreError> {
        let counts = self.counts.all();
        self.read(move |conn| ops::queues(conn, name.as_deref(), counts))
            .await
    }

    async fn change_settings(
        &self,
        name: String,
        change: ChangeSettings,
    ) -> Result<QueueSettings, StoreError> {
        self.writer
            .write(move |conn| gates::change_settings(conn, &name, change))
            .await
    }

    async fn set_sealed(&self, name: String, sealed: bool) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| ops::set_sealed(conn, &name, sealed))
            .await
    }

    async fn forget_queue(&self, name: String) -> Result<bool, StoreError> {
        let queue = name.clone();
        let forgotten = self
            .writer
            .write(move |conn| ops::forget_queue(conn, &queue))
            .await?;
        if forgotten {
            self.counts.forget(&name);
        }
        Ok(forgotten)
    }

    async fn ready_queues(
        &self,
        queues: Vec<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| ops::ready_queues(conn, queues, now))
            .await
    }

    async fn create_operation(&self, new: NewOperation) -> Result<OperationRecord, StoreError> {
        self.writer
            .write(move |conn| operations::create(conn, &new))
            .await
    }

    async fn operation(&self, id: i64) -> Result<Option<OperationRecord>, StoreError> {
        self.read(move |conn| operations::get(conn, id)).await
    }

    async fn operations(&self, limit: u32) -> Result<Vec<OperationRecord>, StoreError> {
        self.read(move |conn| operations::recent(conn, limit)).await
    }

    async fn claim_operation(
        &self,
        owner: String,
        now: Millis,
        until: Millis,
    ) -> Result<Option<OperationRecord>, StoreError> {
        self.writer
            .write(move |conn| operations::claim(conn, &owner, now, until))
            .await
    }

    async fn run_chunk(&self, chunk: Chunk) -> Result<Option<ChunkDone>, StoreError> {
        let done = self
            .writer
            .write(move |conn| operations::run_chunk(conn, chunk))
            .await?;
        if let Some(chunk) = &done {
            for updated in &chunk.updated {
                let (before, after) = (&updated.before, &updated.after);
                self.counts.moved(&after.queue, before.state, after.state);
            }
            for task in &chunk.deleted {
                self.counts.add(&task.queue, task.state, -1);
            }
        }
        Ok(done)
    }

    async fn fail_operation(
        &self,
        id: i64,
        owner: String,
        error: String,
        errors: u64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| operations::fail(conn, id, &owner, &error, errors, now))
            .await
    }

    async fn release_operation(&self, id: i64, owner: String) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| operations::release(conn, id, &owner))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await?;
        has_room(&self.readers.path)?;
        if !self.writer.writable() {
            // After a failed commit only a write tells whether writes succeed again.
            self.writer.write_last(probe_write).await?;
        }
        Ok(())
    }

    fn kind(&self) -> common::StoreKind {
        common::StoreKind::Sqlite
    }

    async fn beat_master(&self, master: MasterRecord) -> Result<(), StoreError> {
        self.writer
            .write_last(move |conn| cluster::beat(conn, &master))
            .await
    }

    async fn masters(&self) -> Result<Vec<MasterRecord>, StoreError> {
        self.read(cluster::masters).await
    }

    async fn forget_master(&self, id: String) -> Result<(), StoreError> {
        self.writer
            .write_last(move |conn| cluster::forget(conn, &id))
            .await
    }

    async fn purge_masters(&self, before: Millis) -> Result<usize, StoreError> {
        self.writer
            .write_last(move |conn| cluster::purge(conn, before))
            .await
    }

    async fn leased_by(&self) -> Result<Vec<LeasedBy>, StoreError> {
        self.read(cluster::leased_by).await
    }
}

/// Free space the database's filesystem must have for the store to be ready: room for a group of
/// writes. A small write proves little on a full disk: the probe's row, a heartbeat or a purge
/// can fit in pages the WAL file already has, and mark the store writable, while every
/// submission fails.
const READY_ROOM_BYTES: u64 = 1 << 20;

/// Fails unless the filesystem holding `path` has [`READY_ROOM_BYTES`] free.
fn has_room(path: &Path) -> Result<(), StoreError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|e| db(std::io::Error::from(e)))?;
    let free = stat.blocks_available() * stat.fragment_size();
    if free < READY_ROOM_BYTES {
        let full = format!("{} has {free} bytes free", path.display());
        return Err(db(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            full,
        )));
    }
    Ok(())
}

/// Rewrites the probe's row: a write as small as one can be, which still needs room on disk.
fn probe_write(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO writer_probe (id, writes) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET writes = writes + 1",
    )
    .and_then(|mut statement| statement.execute([]))
    .map(drop)
    .map_err(db)
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
