//! The masters' heartbeat rows (migration 12), and the tasks leased per worker. One master opens
//! a database, so at opening no other master's row can be live ([`forget_all`]); the table is
//! there so that `GET /masters` reads as it does on PostgreSQL.

use rusqlite::{Connection, Row, params};

use super::super::{StoreError, db};
use crate::model::{LeasedBy, MasterRecord, Millis};

type Result<T> = std::result::Result<T, StoreError>;

/// The leased tasks by worker and queue. `INDEXED BY`: the leased set's own index, so that the
/// finished tasks (millions, perhaps) are never read. A lease from before migration 9 has no
/// start: its deadline less its length.
pub(super) const LEASED_BY: &str = "SELECT lease_worker, queue, COUNT(*), \
    MAX(COALESCE(lease_started_at, lease_expires_at - lease_ms)), MAX(lease_beat_at) \
    FROM tasks INDEXED BY tasks_leased WHERE state = 'leased' GROUP BY lease_worker, queue";

pub(super) fn beat(conn: &Connection, master: &MasterRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO masters (id, version, started_at, seen_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, seen_at = excluded.seen_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            master.id,
            master.version,
            master.started_at,
            master.seen_at
        ])
    })
    .map(drop)
    .map_err(db)
}

pub(super) fn masters(conn: &Connection) -> Result<Vec<MasterRecord>> {
    let mut statement = conn
        .prepare_cached("SELECT id, version, started_at, seen_at FROM masters")
        .map_err(db)?;
    let rows = statement
        .query_map([], |row| {
            Ok(MasterRecord {
                id: row.get(0)?,
                version: row.get(1)?,
                started_at: row.get(2)?,
                seen_at: row.get(3)?,
            })
        })
        .map_err(db)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db)
}

pub(super) fn forget(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM masters WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map(drop)
        .map_err(db)
}

pub(super) fn purge(conn: &Connection, before: Millis) -> Result<usize> {
    conn.prepare_cached("DELETE FROM masters WHERE seen_at < ?1")
        .and_then(|mut s| s.execute([before]))
        .map_err(db)
}

/// Deletes every row: those of this database's earlier masters, which stopped without saying
/// so (only one master at a time opens it).
pub(super) fn forget_all(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM masters", []).map(drop)
}

pub(super) fn leased_by(conn: &Connection) -> Result<Vec<LeasedBy>> {
    let mut statement = conn.prepare_cached(LEASED_BY).map_err(db)?;
    let rows = statement.query_map([], leased_row).map_err(db)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db)
}

fn leased_row(row: &Row<'_>) -> rusqlite::Result<LeasedBy> {
    Ok(LeasedBy {
        worker_id: row.get(0)?,
        queue: row.get(1)?,
        tasks: row.get::<_, i64>(2)? as u64,
        last_leased_at: row.get(3)?,
        last_beat_at: row.get(4)?,
    })
}
