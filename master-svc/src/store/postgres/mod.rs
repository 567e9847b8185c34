//! The shared store: a PostgreSQL database that any number of masters use at once.
//!
//! Leases and conditional changes are group-committed ([`writer`], [`lease`]); every other write
//! is one transaction on a pooled connection ([`ops`]). PostgreSQL's own locking makes the
//! masters behave as one. Long-polls on every master are woken by changes on any
//! master through `LISTEN/NOTIFY` ([`notify`]), and every master reads time from the database's
//! clock ([`clock`]), so leases expire at the same moment whichever master looks. Queue counts
//! are kept by triggers and folded by the masters ([`counts`]).

mod admission;
mod audit;
pub mod clock;
mod cluster;
mod connect;
#[cfg(test)]
mod costs;
mod counts;
#[cfg(test)]
mod flow_costs;
#[cfg(test)]
mod flow_parity;
mod gates;
mod intake;
mod lanes;
mod lease;
mod listing;
mod look;
mod notify;
mod operations;
mod ops;
mod rows;
mod search;
mod submitter;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::TaskId;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{Acquire, PgConnection, Postgres, Transaction};

use self::clock::DatabaseClock;
use self::connect::connect_with_retry;
pub use self::connect::describe;
use self::lease::LeaseJob;
use self::notify::{Announcer, Listener};
use self::submitter::Submitter;
use self::writer::Writer;
use super::{
    Announcement, ChangeSettings, Chunk, ChunkDone, Decide, DecideEach, Inserted, LeaseRules,
    Leased, NewOperation, OperationRecord, QueueRecord, Resubmit, Store, StoreError, TaskFilter,
    TaskPage, Updated, Wake, db,
};
use crate::model::{
    AuditRecord, LeaseQuery, LeasedBy, MasterRecord, Millis, NewTask, QueueSettings, TaskRecord,
};

/// Schema migrations, embedded in the binary. sqlx holds an advisory lock while it migrates, so
/// every replica can run them at start-up: one does the work, the others find it done.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a watch is kept if its master stops before ending it: past the longest wait.
const WATCH_FOR: Duration = Duration::from_secs(common::MAX_WAIT_SECS + 60);

/// Tasks in a PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<DatabaseClock>,
    writer: Writer,
    submitter: Submitter,
    announcer: Announcer,
    listener: Listener,
    /// Stops folding the queue count changes when the store is dropped.
    _folding: tokio_util::sync::DropGuard,
}

impl PgStore {
    /// Connects with at most `max_connections` pooled connections, migrates, starts listening
    /// for other masters' announcements, and announces that this master joined.
    ///
    /// While the server cannot be reached, retries with backoff for up to `connect_within`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        connect_within: Duration,
    ) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db)?;
        let pool = connect_with_retry(options, max_connections, connect_within).await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::unusable_by("migrating the database failed", e))?;
        let listener = Listener::connect(&pool).await?;
        let announcer = Announcer::start(pool.clone());
        announcer.joined(&pool).await?;
        Ok(PgStore {
            clock: DatabaseClock::start(pool.clone()).await?,
            writer: Writer::start(&pool),
            submitter: Submitter::start(&pool),
            announcer,
            listener,
            _folding: counts::keep_folded(pool.clone()),
            pool,
        })
    }

    /// The database's clock, as every master sharing this store should read it.
    pub fn clock(&self) -> Arc<DatabaseClock> {
        self.clock.clone()
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(db)
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(db)
    }
}

/// Commits `tx` and passes `output` on; on an error the transaction is dropped, which rolls it
/// back.
async fn commit<T>(
    tx: Transaction<'static, Postgres>,
    output: Result<T, StoreError>,
) -> Result<T, StoreError> {
    let output = output?;
    tx.commit().await.map_err(db)?;
    Ok(output)
}

/// A read-only transaction that reads one snapshot throughout.
async fn read_only(conn: &mut PgConnection) -> Result<Transaction<'_, Postgres>, StoreError> {
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    Ok(tx)
}

fn conn<'t>(tx: &'t mut Transaction<'static, Postgres>) -> &'t mut PgConnection {
    tx
}

#[async_trait]
impl Store for PgStore {
    async fn insert(
        &self,
        tasks: Vec<NewTask>,
        resubmit: Resubmit,
    ) -> Result<Vec<Inserted>, StoreError> {
        if tasks.iter().all(|task| task.idempotency_key.is_none()) {
            return self.submitter.insert(tasks).await;
        }
        let mut tx = self.begin().await?;
        let output = ops::insert(conn(&mut tx), tasks, resubmit).await;
        commit(tx, output).await
    }

    async fn lease(
        &self,
        query: LeaseQuery,
        now: Millis,
        rules: LeaseRules,
    ) -> Result<Leased, StoreError> {
        self.writer.lease(LeaseJob { query, now, rules }).await
    }

    async fn change_settings(
        &self,
        name: String,
        change: ChangeSettings,
    ) -> Result<QueueSettings, StoreError> {
        let mut tx = self.begin().await?;
        let output = gates::change_settings(conn(&mut tx), &name, change).await;
        commit(tx, output).await
    }

    async fn update(&self, id: TaskId, decide: Decide) -> Result<Updated, StoreError> {
        self.writer.update(id, decide).await
    }

    async fn expire_leases(
        &self,
        now: Millis,
        limit: u32,
        decide: DecideEach,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tx = self.begin().await?;
        let output = ops::expire_leases(conn(&mut tx), now, limit, decide).await;
        commit(tx, output).await
    }

    async fn purge_finished(&self, before: Millis, limit: u32) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let output = ops::purge_finished(conn(&mut tx), before, limit).await;
        commit(tx, output).await
    }

    async fn record_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        audit::record(&mut *self.connection().await?, &record).await
    }

    async fn audit_page(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::page(&mut *self.connection().await?, before_id, limit).await
    }

    async fn purge_audit(&self, before: Millis, limit: u32) -> Result<usize, StoreError> {
        audit::purge(&mut *self.connection().await?, before, limit).await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        ops::get(&mut *self.connection().await?, id).await
    }

    async fn list(&self, filter: TaskFilter) -> Result<TaskPage, StoreError> {
        let mut conn = self.connection().await?;
        let mut tx = read_only(&mut conn).await?;
        let output = listing::list(&mut tx, &filter).await;
        tx.commit().await.map_err(db)?;
        output
    }

    async fn queues(&self, name: Option<String>) -> Result<Vec<QueueRecord>, StoreError> {
        // One snapshot for the queue list and its counts.
        let mut conn = self.connection().await?;
        let mut tx = read_only(&mut conn).await?;
        let output = ops::queues(&mut tx, name.as_deref()).await;
        tx.commit().await.map_err(db)?;
        output
    }

    async fn set_sealed(&self, name: String, sealed: bool) -> Result<(), StoreError> {
        ops::set_sealed(&mut *self.connection().await?, &name, sealed).await
    }

    async fn forget_queue(&self, name: String) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let output = ops::forget_queue(conn(&mut tx), &name).await;
        commit(tx, output).await
    }

    async fn ready_queues(
        &self,
        queues: Vec<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        ops::ready_queues(&mut *self.connection().await?, queues, now).await
    }

    async fn create_operation(&self, new: NewOperation) -> Result<OperationRecord, StoreError> {
        operations::create(&self.pool, &new).await
    }

    async fn operation(&self, id: i64) -> Result<Option<OperationRecord>, StoreError> {
        operations::get(&self.pool, id).await
    }

    async fn operations(&self, limit: u32) -> Result<Vec<OperationRecord>, StoreError> {
        operations::recent(&self.pool, limit).await
    }

    async fn claim_operation(
        &self,
        owner: String,
        now: Millis,
        until: Millis,
    ) -> Result<Option<OperationRecord>, StoreError> {
        operations::claim(&self.pool, &owner, now, until).await
    }

    async fn run_chunk(&self, chunk: Chunk) -> Result<Option<ChunkDone>, StoreError> {
        let mut tx = self.begin().await?;
        let output = operations::run_chunk(conn(&mut tx), chunk).await;
        commit(tx, output).await
    }

    async fn fail_operation(
        &self,
        id: i64,
        owner: String,
        error: String,
        errors: u64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        operations::fail(&self.pool, id, &owner, &error, errors, now).await
    }

    async fn release_operation(&self, id: i64, owner: String) -> Result<(), StoreError> {
        operations::release(&self.pool, id, &owner).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A write, not `SELECT 1`: a transaction given an id must write and flush its commit
        // record, which fails on a server out of disk or a read-only standby after a failover.
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(conn(&mut tx))
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    fn kind(&self) -> common::StoreKind {
        common::StoreKind::Postgres
    }

    async fn beat_master(&self, master: MasterRecord) -> Result<(), StoreError> {
        cluster::beat(&self.pool, &master).await
    }

    async fn masters(&self) -> Result<Vec<MasterRecord>, StoreError> {
        cluster::masters(&self.pool).await
    }

    async fn forget_master(&self, id: String) -> Result<(), StoreError> {
        cluster::forget(&self.pool, &id).await
    }

    async fn purge_masters(&self, before: Millis) -> Result<usize, StoreError> {
        cluster::purge(&self.pool, before).await
    }

    async fn leased_by(&self) -> Result<Vec<LeasedBy>, StoreError> {
        cluster::leased_by(&self.pool).await
    }

    fn announce(&self, queue: &str, wake: Wake) {
        self.announcer.announce(queue, wake);
    }

    async fn watch(&self, id: TaskId) -> Result<(), StoreError> {
        notify::watch(&self.pool, id, WATCH_FOR).await
    }

    async fn unwatch(&self, id: TaskId) {
        notify::unwatch(&self.pool, id).await
    }

    async fn next_announcement(&self) -> Announcement {
        self.listener.next(self.announcer.instance()).await
    }
}
