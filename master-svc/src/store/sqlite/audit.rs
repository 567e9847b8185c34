//! The audit log's rows (migration 8): appended by the writer, read by a reader, newest first.

use rusqlite::{Connection, params};

use super::super::{StoreError, db};
use crate::model::{AuditRecord, Millis};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) fn record(conn: &Connection, record: &AuditRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, target, status) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            record.at,
            record.actor,
            record.action,
            record.target,
            record.status
        ])
    })
    .map_err(db)?;
    Ok(())
}

pub(super) fn page(
    conn: &Connection,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT id, at, actor, action, target, status FROM audit_log \
             WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(db)?;
    let rows = statement
        .query_map(params![before_id.unwrap_or(i64::MAX), limit], |row| {
            Ok(AuditRecord {
                id: row.get(0)?,
                at: row.get(1)?,
                actor: row.get(2)?,
                action: row.get(3)?,
                target: row.get(4)?,
                status: row.get(5)?,
            })
        })
        .map_err(db)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db)
}

pub(super) fn purge(conn: &Connection, before: Millis, limit: u32) -> Result<usize> {
    conn.prepare_cached(
        "DELETE FROM audit_log WHERE id IN \
         (SELECT id FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)",
    )
    .and_then(|mut s| s.execute(params![before, limit]))
    .map_err(db)
}
