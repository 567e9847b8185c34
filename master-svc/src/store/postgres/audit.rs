//! The audit log's rows (migration `0009_audit_log`): one statement each, autocommitted, so a
//! record is durable when its `INSERT` returns.

use sqlx::{PgConnection, Row};

use super::super::{StoreError, db};
use crate::model::{AuditRecord, Millis};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) async fn record(conn: &mut PgConnection, record: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, status) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(record.at)
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.target)
    .bind(i32::from(record.status))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

pub(super) async fn page(
    conn: &mut PgConnection,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, target, status FROM audit_log \
         WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before_id.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let status: i32 = row.try_get("status")?;
            Ok(AuditRecord {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                status: u16::try_from(status).unwrap_or(0),
            })
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db)
}

pub(super) async fn purge(conn: &mut PgConnection, before: Millis, limit: u32) -> Result<usize> {
    let deleted = sqlx::query(
        "DELETE FROM audit_log WHERE id IN \
         (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
    )
    .bind(before)
    .bind(i64::from(limit))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(deleted.rows_affected() as usize)
}
