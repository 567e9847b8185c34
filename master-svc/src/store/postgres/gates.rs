//! Queue settings and the gates of flow control, in the shared store.
//!
//! A queue's settings, its token bucket and its rotation cursor are columns of its `queues` row
//! (migration `0006_flow_control`). Several masters lease from one database, so a limit holds
//! only if no two of them admit at once: a lease group locks the rows of the queues it must
//! gate (`FOR UPDATE`, in name order, all in one statement, so groups cannot deadlock), and only
//! then counts what is in flight, in a later statement whose snapshot sees every lease committed
//! before the lock was granted. The bucket and the cursor are written back in the group's commit,
//! which releases the locks. Queues without settings and without keyed tasks are never locked:
//! the group's first read tells them apart ([`look`](super::look)).

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::model::{Bucket, QueueSettings, RateLimit};
use crate::store::{ChangeSettings, StoreError, db};

type Result<T> = std::result::Result<T, StoreError>;

/// The settings columns of `queues`, in the order [`settings_from_row`] reads them, then the
/// bucket and the cursor.
macro_rules! settings_columns {
    () => {
        "paused, paused_until, max_in_flight, rate_per_sec, rate_burst, key_limit, \
         bucket_tokens, bucket_at, cursor_key"
    };
}
pub(super) use settings_columns;

/// Whether a `queues` row has any setting (a lease that ends frees a slot a waiter may take), in
/// SQL, for statements that only need the answer.
macro_rules! gated {
    () => {
        "(paused OR paused_until IS NOT NULL OR max_in_flight IS NOT NULL \
         OR rate_per_sec IS NOT NULL OR key_limit IS NOT NULL)"
    };
}
pub(super) use gated;

/// A queue's settings, bucket and cursor, as stored.
pub(super) type Stored = (QueueSettings, Option<Bucket>, Option<String>);

/// Settings, bucket and cursor from [`settings_columns`] starting at column `at`; all `NULL` (a
/// queue without a row, read through an outer join) is the default.
pub(super) fn settings_from_row(row: &PgRow, at: usize) -> sqlx::Result<Stored> {
    let count = |i: usize| -> sqlx::Result<Option<u32>> {
        Ok(row
            .try_get::<Option<i32>, _>(at + i)?
            .map(|n| n.max(0) as u32))
    };
    let rate_limit = match (row.try_get(at + 3)?, count(4)?) {
        (Some(per_sec), Some(burst)) => Some(RateLimit { per_sec, burst }),
        _ => None,
    };
    let settings = QueueSettings {
        paused: row.try_get::<Option<bool>, _>(at)?.unwrap_or(false),
        paused_until: row.try_get(at + 1)?,
        max_in_flight: count(2)?,
        rate_limit,
        key_limit: count(5)?,
    };
    let bucket = match (row.try_get(at + 6)?, row.try_get(at + 7)?) {
        (Some(tokens), Some(at)) => Some(Bucket { tokens, at }),
        _ => None,
    };
    Ok((settings, bucket, row.try_get(at + 8)?))
}

/// Locks the rows of `queues` (in name order, so that two groups locking some of the same
/// queues take them in the same order) and reads what they hold now. A queue without a row is
/// left out.
pub(super) async fn lock(
    conn: &mut PgConnection,
    queues: &[String],
) -> Result<HashMap<String, Stored>> {
    let rows = sqlx::query(concat!(
        "SELECT name, ",
        settings_columns!(),
        " FROM queues WHERE name = ANY($1) ORDER BY name FOR UPDATE"
    ))
    .bind(queues)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, settings_from_row(row, 1)?)))
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}

/// Tasks of queue `$name` leased now, from the counts (`queue_counts` plus the deltas not yet
/// folded in, this transaction's own included): one look-up whatever the queue's history.
macro_rules! leased_of {
    ($name:literal) => {
        concat!(
            "COALESCE((SELECT SUM(n) FROM (SELECT n FROM queue_counts WHERE queue = ",
            $name,
            " AND state = 'leased' UNION ALL SELECT delta FROM queue_count_changes \
             WHERE queue = ",
            $name,
            " AND state = 'leased') AS c), 0)::int8"
        )
    };
}

/// Reads the rows of `queues` as they are, without a lock, with the tasks leased of those that
/// have a cap or a key limit, in one statement: what a group deals by, before [`lock`]
/// confirms it. A queue without a row is left out.
pub(super) async fn read(
    conn: &mut PgConnection,
    queues: &[String],
) -> Result<(HashMap<String, Stored>, HashMap<String, u32>)> {
    let rows = sqlx::query(concat!(
        "SELECT name, ",
        settings_columns!(),
        ", CASE WHEN max_in_flight IS NOT NULL OR key_limit IS NOT NULL THEN ",
        leased_of!("queues.name"),
        " END FROM queues WHERE name = ANY($1)"
    ))
    .bind(queues)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut stored = HashMap::new();
    let mut leased = HashMap::new();
    for row in &rows {
        let name: String = row.try_get(0).map_err(db)?;
        if let Some(n) = row.try_get::<Option<i64>, _>(10).map_err(db)? {
            leased.insert(name.clone(), n.clamp(0, i64::from(u32::MAX)) as u32);
        }
        stored.insert(name, settings_from_row(row, 1).map_err(db)?);
    }
    Ok((stored, leased))
}

/// Tasks of `queue` leased now with each of `keys`, this transaction's own included.
pub(super) async fn keys_leased(
    conn: &mut PgConnection,
    queue: &str,
    keys: &[String],
) -> Result<HashMap<String, u32>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT k.key, (SELECT COUNT(*) FROM tasks WHERE queue = $1 AND state = 'leased' \
             AND concurrency_key IS NOT NULL AND concurrency_key = k.key) \
         FROM unnest($2::text[]) AS k (key)",
    )
    .bind(queue)
    .bind(keys)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(key, n)| (key, n.clamp(0, i64::from(u32::MAX)) as u32))
        .collect())
}

/// Tasks of each of `queues` leased now, from the counts (`queue_counts` plus the deltas not
/// yet folded in, this transaction's own included): one look-up whatever the queue's history.
/// (Counting `tasks` read every dead entry a drain of the queue left behind in the index.)
/// Exact once the queue is locked: every lease of it confirmed before commits before the lock
/// is granted, and a result or an expiry only lowers the count.
pub(super) async fn in_flight(
    conn: &mut PgConnection,
    queues: &[String],
) -> Result<HashMap<String, u32>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
        "SELECT q.name, ",
        leased_of!("q.name"),
        " FROM unnest($1::text[]) AS q (name)"
    ))
    .bind(queues)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(queue, n)| (queue, n.clamp(0, i64::from(u32::MAX)) as u32))
        .collect())
}

/// A queue's bucket and cursor as a lease group leaves them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Written {
    pub queue: String,
    pub bucket: Option<Bucket>,
    pub cursor: Option<String>,
}

/// Writes the buckets and cursors a group changed, in one statement, to rows it holds locked.
pub(super) async fn write(conn: &mut PgConnection, gates: &[Written]) -> Result<()> {
    if gates.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE queues SET bucket_tokens = v.tokens, bucket_at = v.at, cursor_key = v.cursor \
         FROM unnest($1::text[], $2::float8[], $3::int8[], $4::text[]) \
         AS v (name, tokens, at, cursor) WHERE queues.name = v.name",
    )
    .bind(gates.iter().map(|g| g.queue.as_str()).collect::<Vec<_>>())
    .bind(
        gates
            .iter()
            .map(|g| g.bucket.map(|b| b.tokens))
            .collect::<Vec<_>>(),
    )
    .bind(
        gates
            .iter()
            .map(|g| g.bucket.map(|b| b.at))
            .collect::<Vec<_>>(),
    )
    .bind(
        gates
            .iter()
            .map(|g| g.cursor.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Changes `name`'s settings as `change` says, creating the queue if unknown; the caller
/// commits. The row is locked before `change` sees it, so two changes (on any masters) apply
/// one after the other, and a lease gated by the row waits for the change or precedes it. A
/// changed rate limit starts with a full bucket.
pub(super) async fn change_settings(
    conn: &mut PgConnection,
    name: &str,
    change: ChangeSettings,
) -> Result<QueueSettings> {
    let (before, ..) = locked_settings(conn, name).await?;
    let after = change(&before).map_err(StoreError::Refused)?;
    let rate = after.rate_limit;
    sqlx::query(
        "UPDATE queues SET paused = $2, paused_until = $3, max_in_flight = $4, \
         rate_per_sec = $5, rate_burst = $6, key_limit = $7, \
         bucket_tokens = CASE WHEN $8 THEN NULL ELSE bucket_tokens END, \
         bucket_at = CASE WHEN $8 THEN NULL ELSE bucket_at END WHERE name = $1",
    )
    .bind(name)
    .bind(after.paused)
    .bind(after.paused_until)
    .bind(after.max_in_flight.map(count))
    .bind(rate.map(|r| r.per_sec))
    .bind(rate.map(|r| count(r.burst)))
    .bind(after.key_limit.map(count))
    .bind(rate != before.rate_limit)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(after)
}

/// A setting's count as the `INTEGER` column holds it (the API bounds them far below).
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The queue's row, created if unknown, locked. A queue forgotten between the two statements
/// ([`forget_queue`](super::ops::forget_queue)) is recorded again.
async fn locked_settings(conn: &mut PgConnection, name: &str) -> Result<Stored> {
    loop {
        sqlx::query("INSERT INTO queues (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            settings_columns!(),
            " FROM queues WHERE name = $1 FOR UPDATE"
        ))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        if let Some(row) = row {
            return settings_from_row(&row, 0).map_err(db);
        }
    }
}

/// Queued tasks of `queue` whose concurrency key has `key_limit` tasks leased: what the key
/// limit holds back. Reads the keys with tasks leased, and counts each one's queued tasks.
pub(super) async fn held_by_keys(
    conn: &mut PgConnection,
    queue: &str,
    key_limit: u32,
) -> Result<u64> {
    let held: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM((SELECT COUNT(*) FROM tasks WHERE queue = $1 AND state = 'queued' \
             AND NOT delayed AND concurrency_key IS NOT NULL \
             AND concurrency_key = busy.concurrency_key)), 0)::int8 \
         FROM (SELECT concurrency_key FROM tasks WHERE queue = $1 AND state = 'leased' \
             AND concurrency_key IS NOT NULL \
             GROUP BY concurrency_key HAVING COUNT(*) >= $2) AS busy",
    )
    .bind(queue)
    .bind(i64::from(key_limit))
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(held.max(0) as u64)
}
