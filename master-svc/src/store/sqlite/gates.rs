//! Queue settings and the gates of flow control, in the embedded store.
//!
//! A queue's settings, its token bucket and its rotation cursor are columns of its `queues` row
//! (migration 7). Every lease reads its queues' rows as [`Gate`]s (with its tasks leased, kept in
//! the row for a cap or a key limit, migration 8) and writes back what the engine's `settle`
//! changed, in the lease's transaction; the single writer makes that exact. Tasks with a
//! concurrency key are leased by the key rotation: it walks the keys with ready tasks in
//! `tasks_lanes` from the cursor, skipping keys with no room, and reads each key's best tasks, a
//! few index look-ups per key. Tasks without a key, and every queue without keyed tasks, cost
//! what they did before.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::model::{Admission, Bucket, Gate, GateAfter, LaneTasks, QueueSettings, RateLimit};
use crate::store::{ChangeSettings, StoreError, db};

type Result<T> = std::result::Result<T, StoreError>;

/// Most keys one lease looks at: keys without room are stepped over, and under a key limit with
/// many keys busy there may be many.
const MAX_KEYS_VISITED: usize = 1_000;

/// The settings columns of `queues`, in the order [`settings_from_row`] reads them, then the
/// bucket and the cursor.
pub(super) const SETTINGS_COLUMNS: &str = "paused, paused_until, max_in_flight, rate_per_sec, \
    rate_burst, key_limit, bucket_tokens, bucket_at, cursor_key";

/// Whether a `queues` row has any setting (a lease that ends frees a slot a waiter may take).
pub(super) const GATED: &str = "(paused OR paused_until IS NOT NULL OR max_in_flight IS NOT NULL \
    OR rate_per_sec IS NOT NULL OR key_limit IS NOT NULL)";

/// A queue's settings, bucket and cursor: [`SETTINGS_COLUMNS`] from column `at`.
type Stored = (QueueSettings, Option<Bucket>, Option<String>);

/// Settings, bucket and cursor from [`SETTINGS_COLUMNS`] starting at column `at`.
pub(super) fn settings_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Stored> {
    let rate_limit = match (row.get(at + 3)?, row.get(at + 4)?) {
        (Some(per_sec), Some(burst)) => Some(RateLimit { per_sec, burst }),
        _ => None,
    };
    let settings = QueueSettings {
        paused: row.get(at)?,
        paused_until: row.get(at + 1)?,
        max_in_flight: row.get(at + 2)?,
        rate_limit,
        key_limit: row.get(at + 5)?,
    };
    let bucket = match (row.get(at + 6)?, row.get(at + 7)?) {
        (Some(tokens), Some(at)) => Some(Bucket { tokens, at }),
        _ => None,
    };
    Ok((settings, bucket, row.get(at + 8)?))
}

/// `queue`'s settings, bucket, cursor and kept count of leases, if it has a row.
fn stored(conn: &Connection, queue: &str) -> Result<Option<(Stored, Option<u32>)>> {
    let sql = format!("SELECT {SETTINGS_COLUMNS}, leased FROM queues WHERE name = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row([queue], |row| Ok((settings_from_row(row, 0)?, row.get(9)?)))
                .optional()
        })
        .map_err(db)
}

/// The gate of `queue`, as a lease reads it: with its tasks leased if its row keeps them.
pub(super) fn gate(conn: &Connection, queue: &str) -> Result<Gate> {
    let ((settings, bucket, cursor), leased) = stored(conn, queue)?.unwrap_or_default();
    Ok(Gate {
        queue: queue.to_owned(),
        settings,
        bucket,
        in_flight: leased.unwrap_or(0),
        cursor,
    })
}

/// Tasks of the queue `queues.name` leased, counted. `tasks_leased` holds every leased task with
/// its queue, so this reads the leased set, but every queue's, not the queue's alone: a lease
/// does not count, it reads `queues.leased`, which this sets when the settings change and at
/// every start ([`recount_leased`]), and leases and their ends move ([`move_leased`]).
const COUNT_LEASED: &str = "(SELECT COUNT(*) FROM tasks INDEXED BY tasks_leased \
    WHERE state = 'leased' AND queue = queues.name)";

/// Whether a queue's row keeps its tasks leased: [`QueueSettings::counts_leases`] in SQL.
const COUNTS_LEASES: &str = "(max_in_flight IS NOT NULL OR key_limit IS NOT NULL)";

/// Counts afresh the tasks leased of every queue with a cap or a key limit (at start: whatever
/// happened before, the count is exact from here).
pub(super) fn recount_leased(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        &format!("UPDATE queues SET leased = {COUNT_LEASED} WHERE {COUNTS_LEASES}"),
        [],
    )?;
    Ok(())
}

/// Adds `n` (negative for leases that ended) to `queue`'s tasks leased, if its row keeps them.
pub(super) fn move_leased(conn: &Connection, queue: &str, n: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE queues SET leased = leased + ?2 WHERE name = ?1 AND leased IS NOT NULL",
    )
    .and_then(|mut s| s.execute(params![queue, n]))
    .map_err(db)?;
    Ok(())
}

/// Writes what a lease that took `taken` tasks changed of the gate; nothing when it changed
/// nothing.
pub(super) fn write_gate(
    conn: &Connection,
    gate: &Gate,
    after: &GateAfter,
    taken: u32,
) -> Result<()> {
    let counted = gate.settings.counts_leases() && taken > 0;
    if after.bucket == gate.bucket && after.cursor == gate.cursor && !counted {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO queues (name, bucket_tokens, bucket_at, cursor_key) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET bucket_tokens = ?2, bucket_at = ?3, cursor_key = ?4, \
         leased = leased + ?5",
    )
    .and_then(|mut s| {
        s.execute(params![
            gate.queue,
            after.bucket.map(|b| b.tokens),
            after.bucket.map(|b| b.at),
            after.cursor,
            taken,
        ])
    })
    .map_err(db)?;
    Ok(())
}

/// A ready task's id, priority and `run_at`: what orders it among others.
pub(super) type Ranked = (i64, i32, i64);

/// The concurrency keys of `gate`'s queue that have ready tasks and room, in rotation order
/// from its cursor (until they are `wanted` keys or the round is done), each with its best tasks.
/// The rotation deals one task per key per round, so each key's share of the lease is read
/// first, then more from the keys that had it all while the others fell short: about `wanted`
/// tasks read, however many each key has.
pub(super) fn lanes(
    conn: &Connection,
    gate: &Gate,
    admission: &Admission,
    wanted: u32,
) -> Result<Vec<LaneTasks<Ranked>>> {
    let queue = gate.queue.as_str();
    let keys = keys_with_room(conn, gate, admission, wanted)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let share = wanted.div_ceil(keys.len() as u32);
    let mut lanes = Vec::with_capacity(keys.len());
    for (key, room, best) in &keys {
        let mut tasks = vec![*best];
        if share.min(*room) > 1 {
            tasks.extend(best_of_key(conn, queue, key, 1, share.min(*room) - 1)?);
        }
        lanes.push(LaneTasks {
            key: key.clone(),
            tasks,
        });
    }
    let read: usize = lanes.iter().map(|lane| lane.tasks.len()).sum();
    let mut short = wanted.saturating_sub(read as u32);
    for (lane, (_, room, _)) in lanes.iter_mut().zip(&keys) {
        let had = lane.tasks.len() as u32;
        if short == 0 || had < share.min(*room) || had == *room {
            continue;
        }
        let more = best_of_key(conn, queue, &lane.key, had, (room - had).min(short))?;
        short -= more.len() as u32;
        lane.tasks.extend(more);
    }
    Ok(lanes)
}

/// The keys of `gate`'s queue with ready tasks and room under the key limit, in rotation order
/// from the cursor, each with its room and its best task; at most `wanted` of them.
fn keys_with_room(
    conn: &Connection,
    gate: &Gate,
    admission: &Admission,
    wanted: u32,
) -> Result<Vec<(String, u32, Ranked)>> {
    let queue = gate.queue.as_str();
    let mut keys = Vec::new();
    let mut after = gate.cursor.clone().unwrap_or_default();
    let mut wrapped = gate.cursor.is_none();
    let mut first: Option<String> = None;
    // A key holds no more leases than its queue: under a key limit above the queue's leases and
    // all this lease can add, no key reaches it, and none is counted.
    let reach = gate.in_flight.saturating_add(wanted);
    let count = admission.per_key.is_some_and(|limit| reach >= limit);
    for _ in 0..MAX_KEYS_VISITED {
        let Some(next) = next_key(conn, queue, &after, count)? else {
            if wrapped {
                break;
            }
            wrapped = true;
            after = String::new();
            continue;
        };
        if first.as_ref() == Some(&next.key) {
            break;
        }
        first.get_or_insert_with(|| next.key.clone());
        let room = admission.room(next.in_flight).min(wanted);
        if room > 0 {
            keys.push((next.key.clone(), room, next.best));
        }
        if keys.len() == wanted as usize {
            break;
        }
        after = next.key;
    }
    Ok(keys)
}

/// The first concurrency key after `after` in byte order (every key, after the empty string)
/// that has a ready task, with its best ready task and, if `count` (a key limit is set), its
/// tasks leased now: one look-up in `tasks_lanes` (and a count in `tasks_keys_leased`). `None`
/// at the end of the round.
fn next_key(conn: &Connection, queue: &str, after: &str, count: bool) -> Result<Option<NextKey>> {
    conn.prepare_cached(if count { NEXT_KEY_COUNTED } else { NEXT_KEY })
        .and_then(|mut s| {
            s.query_row([queue, after], |row| {
                Ok(NextKey {
                    key: row.get(0)?,
                    best: (row.get(1)?, row.get(2)?, row.get(3)?),
                    in_flight: row.get(4)?,
                })
            })
            .optional()
        })
        .map_err(db)
}

/// A key of the rotation, its best ready task, and its tasks leased (0 when not counted).
struct NextKey {
    key: String,
    best: Ranked,
    in_flight: u32,
}

const NEXT_KEY: &str = "SELECT concurrency_key, id, priority, run_at, 0 \
    FROM tasks INDEXED BY tasks_lanes \
    WHERE queue = ?1 AND state = 'queued' AND delayed = 0 AND concurrency_key IS NOT NULL \
    AND concurrency_key > ?2 ORDER BY concurrency_key, priority DESC, run_at, id LIMIT 1";

pub(super) const NEXT_KEY_COUNTED: &str = "SELECT t.concurrency_key, t.id, t.priority, t.run_at, \
    (SELECT COUNT(*) FROM tasks AS l INDEXED BY tasks_keys_leased WHERE l.queue = ?1 \
        AND l.state = 'leased' AND l.concurrency_key IS NOT NULL \
        AND l.concurrency_key = t.concurrency_key) \
    FROM tasks AS t INDEXED BY tasks_lanes \
    WHERE t.queue = ?1 AND t.state = 'queued' AND t.delayed = 0 \
    AND t.concurrency_key IS NOT NULL AND t.concurrency_key > ?2 \
    ORDER BY t.concurrency_key, t.priority DESC, t.run_at, t.id LIMIT 1";

/// Up to `limit` of the key's ready tasks after its best `skip`, best first.
fn best_of_key(
    conn: &Connection,
    queue: &str,
    key: &str,
    skip: u32,
    limit: u32,
) -> Result<Vec<Ranked>> {
    conn.prepare_cached(
        "SELECT id, priority, run_at FROM tasks INDEXED BY tasks_lanes WHERE queue = ?1 \
         AND state = 'queued' AND delayed = 0 AND concurrency_key IS NOT NULL \
         AND concurrency_key = ?2 ORDER BY priority DESC, run_at, id LIMIT ?4 + 0 OFFSET ?3 + 0",
    )
    .and_then(|mut s| {
        s.query_map(params![queue, key, skip, limit], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect()
    })
    .map_err(db)
}

/// Changes `name`'s settings as `change` says, creating the queue if unknown. A changed rate
/// limit starts with a full bucket.
pub(super) fn change_settings(
    conn: &Connection,
    name: &str,
    change: ChangeSettings,
) -> Result<QueueSettings> {
    let ((before, ..), _) = stored(conn, name)?.unwrap_or_default();
    let after = change(&before).map_err(StoreError::Refused)?;
    let rate = after.rate_limit;
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, paused_until, max_in_flight, rate_per_sec, rate_burst, \
         key_limit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (name) DO UPDATE SET paused = ?2, paused_until = ?3, max_in_flight = ?4, \
         rate_per_sec = ?5, rate_burst = ?6, key_limit = ?7, \
         bucket_tokens = CASE WHEN ?8 THEN NULL ELSE bucket_tokens END, \
         bucket_at = CASE WHEN ?8 THEN NULL ELSE bucket_at END",
    )
    .and_then(|mut s| {
        s.execute(params![
            name,
            after.paused,
            after.paused_until,
            after.max_in_flight,
            rate.map(|r| r.per_sec),
            rate.map(|r| r.burst),
            after.key_limit,
            rate != before.rate_limit,
        ])
    })
    .map_err(db)?;
    conn.prepare_cached(&format!(
        "UPDATE queues SET leased = CASE WHEN {COUNTS_LEASES} THEN {COUNT_LEASED} \
         END WHERE name = ?1"
    ))
    .and_then(|mut s| s.execute([name]))
    .map_err(db)?;
    Ok(after)
}

/// Queued tasks of `queue` whose concurrency key has `key_limit` tasks leased: what the key
/// limit holds back. Reads the keys with tasks leased, and counts each one's queued tasks.
pub(super) fn held_by_keys(conn: &Connection, queue: &str, key_limit: u32) -> Result<u64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM((SELECT COUNT(*) FROM tasks INDEXED BY tasks_lanes \
             WHERE queue = ?1 AND state = 'queued' AND delayed = 0 \
             AND concurrency_key IS NOT NULL AND concurrency_key = busy.concurrency_key)), 0) \
         FROM (SELECT concurrency_key FROM tasks INDEXED BY tasks_keys_leased \
             WHERE queue = ?1 AND state = 'leased' AND concurrency_key IS NOT NULL \
             GROUP BY concurrency_key HAVING COUNT(*) >= ?2) AS busy",
    )
    .and_then(|mut s| s.query_row(params![queue, key_limit], |row| row.get(0)))
    .map_err(db)
}
