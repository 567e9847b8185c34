//! The key rotation's reads: which concurrency keys are next after a queue's cursor, and each
//! one's best ready tasks.
//!
//! The keys are walked in `tasks_lanes` one look-up per key (a recursive statement: "the first
//! key after this one"), however many tasks each key holds, from the cursor to the end and then
//! from the first key, stepping over keys whose leased tasks already fill the key limit, until
//! enough keys with room are found; all in one statement, since on a shared database every
//! statement is a round trip. Each key's share of the lease is then read in a second statement,
//! locked, skipping rows another master is leasing ([`read`]), and a third tops it up when some
//! keys fell short.

use std::collections::HashMap;

use sqlx::{PgConnection, Row};

use super::rows::{columns, task_from_row};
use crate::model::{LaneTasks, TaskRecord};
use crate::store::{StoreError, db};

type Result<T> = std::result::Result<T, StoreError>;

/// Most keys one walk visits: keys without room are stepped over, and under a key limit with
/// many keys busy there may be many.
const MAX_KEYS_VISITED: i64 = 1_000;

/// The first key of queue `$1` after `$after` in byte order that has a ready task.
macro_rules! next_key {
    ($after:literal) => {
        concat!(
            "(SELECT concurrency_key FROM tasks WHERE queue = $1 AND state = 'queued' \
             AND NOT delayed AND concurrency_key IS NOT NULL AND concurrency_key > ",
            $after,
            " ORDER BY concurrency_key LIMIT 1)"
        )
    };
}

/// Tasks of queue `$1` with key `$key` leased, under a key limit (`$3`; without one, 0): those
/// in `tasks_keys_leased`, plus what the group's own unwritten leases and results add or take
/// away (`$6`, `$7`).
macro_rules! leased {
    ($key:literal) => {
        concat!(
            "CASE WHEN $3::int8 IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM tasks WHERE queue = $1 \
             AND state = 'leased' AND concurrency_key IS NOT NULL AND concurrency_key = ",
            $key,
            ") + COALESCE((SELECT e.delta FROM unnest($6::text[], $7::int8[]) AS e (key, delta) \
             WHERE e.key = ",
            $key,
            "), 0) END"
        )
    };
}

/// The walk: each row a key, whether the walk has wrapped to the first key, the key it started
/// at (where it stops when it comes round), how many keys it visited and found with room (fewer
/// than `$3` leased; every key when `$3` is `NULL`), and the key's leased tasks. It stops after
/// `$4` keys with room or `$5` keys.
pub(super) const WALK: &str = concat!(
    "WITH RECURSIVE walk (key, wrapped, first, visited, found, leased) AS ( \
         SELECT s.key, s.wrapped, s.key, 1, CASE WHEN $3::int8 IS NULL OR l.n < $3 THEN 1 \
             ELSE 0 END, l.n \
         FROM (SELECT COALESCE(a.key, b.key), $2::text IS NULL OR a.key IS NULL \
             FROM (SELECT ",
    next_key!("COALESCE($2, '')"),
    ") AS a (key) CROSS JOIN LATERAL (SELECT CASE WHEN a.key IS NULL AND $2 IS NOT NULL \
             THEN ",
    next_key!("''"),
    " END) AS b (key)) AS s (key, wrapped) \
         CROSS JOIN LATERAL (SELECT ",
    leased!("s.key"),
    ") AS l (n) WHERE s.key IS NOT NULL \
     UNION ALL \
         SELECT s.key, s.wrapped, w.first, w.visited + 1, w.found + CASE WHEN $3::int8 IS NULL \
             OR l.n < $3 THEN 1 ELSE 0 END, l.n \
         FROM walk AS w CROSS JOIN LATERAL (SELECT ",
    next_key!("w.key"),
    ") AS a (key) CROSS JOIN LATERAL (SELECT COALESCE(a.key, CASE WHEN NOT w.wrapped THEN ",
    next_key!("''"),
    " END), w.wrapped OR a.key IS NULL) AS s (key, wrapped) \
         CROSS JOIN LATERAL (SELECT ",
    leased!("s.key"),
    ") AS l (n) \
         WHERE s.key IS NOT NULL AND s.key <> w.first AND w.visited < $5 AND w.found < $4) \
     SELECT key, leased::int8, visited FROM walk WHERE $3::int8 IS NULL OR leased < $3",
);

/// Where the rotation of one queue goes on from, and what bounds it.
#[derive(Debug)]
pub(super) struct Walk<'a> {
    pub queue: &'a str,
    /// The last key served; `None` starts from the first key.
    pub cursor: Option<&'a str>,
    /// The key limit: keys with this many leased are stepped over.
    pub per_key: Option<u32>,
    /// Tasks leased (positive) or freed (negative) per key by the group, not yet written.
    pub pending: &'a HashMap<String, i64>,
    /// Keys with room wanted.
    pub wanted: u32,
}

/// The keys with ready tasks and room, in rotation order, each with its tasks leased now.
pub(super) async fn keys(conn: &mut PgConnection, walk: &Walk<'_>) -> Result<Vec<(String, u32)>> {
    let (pending_keys, deltas): (Vec<&str>, Vec<i64>) = walk
        .pending
        .iter()
        .map(|(key, delta)| (key.as_str(), *delta))
        .unzip();
    let rows = sqlx::query(WALK)
        .bind(walk.queue)
        .bind(walk.cursor)
        .bind(walk.per_key.map(i64::from))
        .bind(i64::from(walk.wanted))
        .bind(MAX_KEYS_VISITED)
        .bind(pending_keys)
        .bind(deltas)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    let mut keys = rows
        .iter()
        .map(|row| {
            let leased: i64 = row.try_get(1)?;
            let visited: i32 = row.try_get(2)?;
            Ok((visited, row.try_get(0)?, leased.max(0) as u32))
        })
        .collect::<sqlx::Result<Vec<(i32, String, u32)>>>()
        .map_err(db)?;
    keys.sort_by_key(|(visited, ..)| *visited);
    Ok(keys.into_iter().map(|(_, key, n)| (key, n)).collect())
}

/// The lanes of the keys with room (`rooms`, each key with its room, in rotation order), for a
/// lease of `wanted` tasks, as the embedded store reads them: the rotation deals one task per key
/// per round, so each key's share of the lease is read first, then more from the keys that had
/// it all while others fell short. About `wanted` tasks are read and locked, not a lease's worth
/// per key.
pub(super) async fn read(
    conn: &mut PgConnection,
    queue: &str,
    rooms: Vec<(String, u32)>,
    wanted: u32,
    taken: &[i64],
) -> Result<Vec<LaneTasks<TaskRecord>>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let share = wanted.div_ceil(rooms.len() as u32);
    let shares: Vec<(String, u32)> = rooms
        .iter()
        .map(|(key, room)| (key.clone(), share.min(*room)))
        .collect();
    let mut by_key = tasks(conn, queue, &shares, taken).await?;
    let read: usize = by_key.values().map(Vec::len).sum();
    let short = wanted.saturating_sub(read as u32);
    if short > 0 {
        top_up(conn, queue, &shares, &rooms, short, &mut by_key, taken).await?;
    }
    Ok(rooms
        .into_iter()
        .map(|(key, _)| LaneTasks {
            tasks: by_key.remove(&key).unwrap_or_default(),
            key,
        })
        .collect())
}

/// Reads `short` more tasks from the keys that had their whole share and have room left, the
/// first keys first. One statement asks each of them for up to `short`; what the first keys
/// give is taken, in rotation order, until `short` are (a key at a time, as the embedded store
/// asks, in a round trip each).
async fn top_up(
    conn: &mut PgConnection,
    queue: &str,
    shares: &[(String, u32)],
    rooms: &[(String, u32)],
    mut short: u32,
    by_key: &mut HashMap<String, Vec<TaskRecord>>,
    taken: &[i64],
) -> Result<()> {
    let had = |key: &str| by_key.get(key).map_or(0, Vec::len) as u32;
    let more: Vec<(String, u32)> = shares
        .iter()
        .zip(rooms)
        .filter(|((key, share), (_, room))| had(key) == *share && had(key) < *room)
        .map(|((key, _), (_, room))| (key.clone(), (room - had(key)).min(short)))
        .collect();
    if more.is_empty() {
        return Ok(());
    }
    let mut read: Vec<i64> = by_key.values().flatten().map(|task| task.id.0).collect();
    read.extend_from_slice(taken);
    let mut extra = tasks(conn, queue, &more, &read).await?;
    for (key, _) in &more {
        let extra = extra.remove(key).unwrap_or_default();
        let n = extra.len().min(short as usize);
        short -= n as u32;
        by_key
            .entry(key.clone())
            .or_default()
            .extend(extra.into_iter().take(n));
    }
    Ok(())
}

/// Up to the number given for each key of its best ready tasks (none of `taken`), locked,
/// skipping rows another master is leasing; by key, best first.
pub(super) async fn tasks(
    conn: &mut PgConnection,
    queue: &str,
    rooms: &[(String, u32)],
    taken: &[i64],
) -> Result<HashMap<String, Vec<TaskRecord>>> {
    let rows = sqlx::query(concat!(
        "SELECT t.* FROM unnest($2::text[], $3::int8[]) AS l (key, room) CROSS JOIN LATERAL \
         (SELECT ",
        columns!(),
        " FROM tasks WHERE queue = $1 AND state = 'queued' AND NOT delayed \
         AND concurrency_key IS NOT NULL AND concurrency_key = l.key AND id <> ALL($4) \
         ORDER BY priority DESC, run_at, id LIMIT l.room FOR UPDATE SKIP LOCKED) AS t",
    ))
    .bind(queue)
    .bind(
        rooms
            .iter()
            .map(|(key, _)| key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rooms
            .iter()
            .map(|(_, room)| i64::from(*room))
            .collect::<Vec<_>>(),
    )
    .bind(taken)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut by_key: HashMap<String, Vec<TaskRecord>> = HashMap::new();
    for row in &rows {
        let task = task_from_row(row).map_err(db)?;
        let key = task.concurrency_key.clone().unwrap_or_default();
        by_key.entry(key).or_default().push(task);
    }
    for tasks in by_key.values_mut() {
        tasks.sort_by_key(super::lease::rank);
    }
    Ok(by_key)
}
