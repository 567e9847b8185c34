//! The masters' heartbeat rows (migration `0011_masters`), one statement each, autocommitted;
//! and the tasks leased per worker, whichever master leased them.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::super::{StoreError, db};
use crate::model::{LeasedBy, MasterRecord, Millis};

type Result<T> = std::result::Result<T, StoreError>;

/// The leased tasks by worker and queue: read through a leased-only index (`tasks_leased`, or
/// `tasks_by_state`'s leased range), never the finished tasks. A lease from before migration
/// 0007 has no start: its deadline less its length.
pub(super) const LEASED_BY: &str = "SELECT lease_worker, queue, COUNT(*) AS tasks, \
    MAX(COALESCE(lease_started_at, lease_expires_at - lease_ms)) AS last_leased_at, \
    MAX(lease_beat_at) AS last_beat_at \
    FROM tasks WHERE state = 'leased' GROUP BY lease_worker, queue";

pub(super) async fn beat(pool: &PgPool, master: &MasterRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO masters (id, version, started_at, seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, seen_at = excluded.seen_at",
    )
    .bind(&master.id)
    .bind(&master.version)
    .bind(master.started_at)
    .bind(master.seen_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(super) async fn masters(pool: &PgPool) -> Result<Vec<MasterRecord>> {
    let rows = sqlx::query("SELECT id, version, started_at, seen_at FROM masters")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(MasterRecord {
                id: row.try_get("id")?,
                version: row.try_get("version")?,
                started_at: row.try_get("started_at")?,
                seen_at: row.try_get("seen_at")?,
            })
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db)
}

pub(super) async fn forget(pool: &PgPool, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM masters WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(super) async fn purge(pool: &PgPool, before: Millis) -> Result<usize> {
    let deleted = sqlx::query("DELETE FROM masters WHERE seen_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(deleted.rows_affected() as usize)
}

pub(super) async fn leased_by(pool: &PgPool) -> Result<Vec<LeasedBy>> {
    let rows = sqlx::query(LEASED_BY).fetch_all(pool).await.map_err(db)?;
    rows.iter()
        .map(leased_row)
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db)
}

fn leased_row(row: &PgRow) -> std::result::Result<LeasedBy, sqlx::Error> {
    let tasks: i64 = row.try_get("tasks")?;
    Ok(LeasedBy {
        worker_id: row.try_get("lease_worker")?,
        queue: row.try_get("queue")?,
        tasks: tasks as u64,
        last_leased_at: row.try_get("last_leased_at")?,
        last_beat_at: row.try_get("last_beat_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::costs::{on_postgres, plan};
    use super::LEASED_BY;

    #[tokio::test]
    async fn the_leases_by_worker_are_read_through_a_leased_only_index() {
        if !on_postgres() {
            return;
        }
        let plan = plan(LEASED_BY, |q| q).await;
        assert!(
            ["tasks_leased", "tasks_by_state"]
                .iter()
                .any(|index| plan.contains(&format!("\"Index Name\":\"{index}\""))),
            "no leased-only index: {plan}"
        );
        assert!(!plan.contains("Seq Scan"), "a scan of the table: {plan}");
    }
}
