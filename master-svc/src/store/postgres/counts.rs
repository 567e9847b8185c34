//! Tasks per queue and state, without reading every task (see migration `0002_queue_counts`).
//!
//! Triggers append each change's net deltas to `queue_count_changes`; the counts are
//! `queue_counts` plus those deltas. Every master folds the deltas into `queue_counts` every
//! second, one at a time (an advisory lock), so the deltas read with the counts stay few.

use std::collections::HashMap;
use std::time::Duration;

use common::{StateCounts, TaskState};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::store::StoreError;
use crate::store::db;

/// How often each master folds the deltas.
const FOLD_EVERY: Duration = Duration::from_secs(1);
/// Advisory lock key that lets one master fold at a time (the bytes of "lhcounts").
const FOLD_LOCK: i64 = 0x6c68_636f_756e_7473;

/// Counts of one queue, or of every queue when `name` is `None`.
pub(super) async fn read(
    conn: &mut PgConnection,
    name: Option<&str>,
) -> Result<HashMap<String, StateCounts>, StoreError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT queue, state, SUM(n)::BIGINT FROM ( \
             SELECT queue, state, n FROM queue_counts WHERE $1::text IS NULL OR queue = $1 \
             UNION ALL \
             SELECT queue, state, delta FROM queue_count_changes \
             WHERE $1::text IS NULL OR queue = $1) AS counted \
         GROUP BY queue, state",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut counts: HashMap<String, StateCounts> = HashMap::new();
    for (queue, state, n) in rows {
        if let Ok(state) = state.parse::<TaskState>() {
            counts.entry(queue).or_default().set(state, n.max(0) as u64);
        }
    }
    Ok(counts)
}

/// Folds the deltas every [`FOLD_EVERY`] until the returned guard is dropped.
pub(super) fn keep_folded(pool: PgPool) -> DropGuard {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FOLD_EVERY) => {}
                () = stopped.cancelled() => return,
            }
            if let Err(e) = fold(&pool).await {
                tracing::warn!(error = %crate::chain::Chain(&e), "cannot fold the queue count changes; will try again");
            }
        }
    });
    stop.drop_guard()
}

/// Moves the committed deltas into `queue_counts`, in one transaction; skipped while another
/// master is at it.
pub(super) async fn fold(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(FOLD_LOCK)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    if !locked {
        return Ok(());
    }
    sqlx::query(
        "WITH moved AS (DELETE FROM queue_count_changes RETURNING queue, state, delta) \
         INSERT INTO queue_counts (queue, state, n) \
         SELECT queue, state, SUM(delta) FROM moved GROUP BY queue, state \
         ON CONFLICT (queue, state) DO UPDATE SET n = queue_counts.n + EXCLUDED.n",
    )
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)
}
