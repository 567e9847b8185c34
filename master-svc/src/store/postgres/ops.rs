//! The SQL behind each store operation. Writes take a connection inside a transaction the caller
//! commits; reads take any connection of the pool.
//!
//! Several masters may run these at once against one database, so every "read, decide, write"
//! locks what it reads: `FOR UPDATE` for one task, `FOR UPDATE SKIP LOCKED` where many masters
//! compete for the same rows (leasing, expiry), so no task is ever handed to two leasers and no
//! master waits on another's choice.

use std::collections::{HashMap, VecDeque};

use common::TaskId;
use sqlx::{PgConnection, Row};

use super::counts;
use super::gates;
use super::rows::{columns, tags_text, task_from_row, write_all};
use crate::model::{Conflict, Millis, NewTask, TaskRecord};
use crate::store::{DecideEach, Inserted, QueueRecord, Resubmit, StoreError};
use crate::store::{db, labels};

type Result<T> = std::result::Result<T, StoreError>;

/// Inserts `tasks` in one statement; a known idempotency key yields the existing task. Only a
/// task that would be created is refused by a sealed queue (the caller then rolls back).
pub(super) async fn insert(
    conn: &mut PgConnection,
    tasks: Vec<NewTask>,
    resubmit: Resubmit,
) -> Result<Vec<Inserted>> {
    let sealed = lock_queues(conn, tasks.iter().map(|t| t.queue.as_str())).await?;
    let created = insert_rows(conn, &tasks).await?;
    let keys: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.idempotency_key.clone())
        .collect();
    let existing = if keys.len() > created.keyed.len() {
        by_idempotency_keys(conn, &keys).await?
    } else {
        HashMap::new()
    };
    let inserted = match_inserted(&tasks, created, existing);
    for (new, known) in tasks.iter().zip(&inserted).filter(|(_, i)| !i.created) {
        resubmit(new, &known.task)?;
    }
    if let Some(queue) = inserted
        .iter()
        .find(|i| i.created && sealed.contains(&i.task.queue))
    {
        return Err(Conflict::QueueSealed(queue.task.queue.clone()).into());
    }
    Ok(inserted)
}

/// Share-locks the batch's queues, so a seal waits for this insert or this insert sees the seal,
/// recording first those not yet known (once per queue: a queue already recorded costs one
/// statement). Returns the sealed ones. A queue forgotten between the two statements
/// ([`forget_queue`]) is recorded again.
pub(super) async fn lock_queues<'a>(
    conn: &mut PgConnection,
    queues: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>> {
    let mut names: Vec<&str> = queues.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    loop {
        let locked: Vec<(String, bool)> = sqlx::query_as(
            "SELECT name, sealed FROM queues WHERE name = ANY($1) ORDER BY name FOR SHARE",
        )
        .bind(&names)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        if locked.len() == names.len() {
            let sealed = locked.into_iter().filter(|(_, sealed)| *sealed);
            return Ok(sealed.map(|(name, _)| name).collect());
        }
        sqlx::query("INSERT INTO queues (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING")
            .bind(&names)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
}

/// Forgets a queue with no task that is not sealed and has no settings. The queue's row is
/// locked first, so an insert that share-locked it has committed its tasks (and they are seen),
/// and an insert that comes after finds it gone and records it again.
pub(super) async fn forget_queue(conn: &mut PgConnection, name: &str) -> Result<bool> {
    let kept: Option<bool> = sqlx::query_scalar(concat!(
        "SELECT sealed OR ",
        gates::gated!(),
        " FROM queues WHERE name = $1 FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let has_tasks: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasks WHERE queue = $1)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    if kept != Some(false) || has_tasks {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM queues WHERE name = $1",
        "DELETE FROM queue_counts WHERE queue = $1 AND n = 0",
    ] {
        sqlx::query(sql)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(true)
}

/// The rows one insert created: those with an idempotency key by key, the others in id order
/// (which is the order of the batch: the insert reads it sorted).
pub(super) struct Created {
    keyed: HashMap<String, TaskRecord>,
    pub(super) unkeyed: VecDeque<TaskRecord>,
}

pub(super) async fn insert_rows(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<Created> {
    let column = |f: fn(&NewTask) -> i64| tasks.iter().map(f).collect::<Vec<i64>>();
    let rows = sqlx::query(concat!(
        "INSERT INTO tasks (queue, state, payload, priority, attempts, max_attempts, \
         default_lease_ms, created_at, run_at, updated_at, idempotency_key, delayed, \
         concurrency_key, tags) \
         SELECT queue, 'queued', payload, priority, 0, max_attempts, default_lease_ms, \
         created_at, run_at, created_at, idempotency_key, run_at > created_at, concurrency_key, \
         tags FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
         $6::int8[], $7::int8[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS batch \
         (queue, payload, priority, max_attempts, default_lease_ms, created_at, run_at, \
         idempotency_key, concurrency_key, tags, n) \
         ORDER BY n ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
        columns!()
    ))
    .bind(tasks.iter().map(|t| t.queue.as_str()).collect::<Vec<_>>())
    .bind(
        tasks
            .iter()
            .map(|t| t.payload.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(column(|t| t.priority.into()))
    .bind(column(|t| t.max_attempts.into()))
    .bind(column(|t| t.default_lease_ms))
    .bind(column(|t| t.created_at))
    .bind(column(|t| t.run_at))
    .bind(
        tasks
            .iter()
            .map(|t| t.idempotency_key.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        tasks
            .iter()
            .map(|t| t.concurrency_key.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(tasks.iter().map(|t| tags_text(&t.tags)).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut records = rows
        .iter()
        .map(task_from_row)
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db)?;
    records.sort_by_key(|task| task.id);
    label(conn, &records).await?;
    let mut created = Created {
        keyed: HashMap::new(),
        unkeyed: VecDeque::new(),
    };
    for task in records {
        match task.idempotency_key.clone() {
            Some(key) => {
                created.keyed.insert(key, task);
            }
            None => created.unkeyed.push_back(task),
        }
    }
    Ok(created)
}

/// Files new tasks under their tags and concurrency keys, for the search (migration 0010).
async fn label(conn: &mut PgConnection, tasks: &[TaskRecord]) -> Result<()> {
    let (labels, ids): (Vec<String>, Vec<i64>) = tasks
        .iter()
        .flat_map(|task| labels(task).map(|label| (label, task.id.0)))
        .unzip();
    if labels.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO task_labels (label, task_id) SELECT * FROM unnest($1::text[], $2::int8[])",
    )
    .bind(labels)
    .bind(ids)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn by_idempotency_keys(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<HashMap<String, TaskRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE idempotency_key = ANY($1)"
    ))
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let task = task_from_row(row).map_err(db)?;
            Ok((task.idempotency_key.clone().unwrap_or_default(), task))
        })
        .collect()
}

/// Pairs each task of the batch with its row: the first task with a key the insert created
/// gets the new row; a later one with the same key, or one whose key was known, the stored row.
fn match_inserted(
    tasks: &[NewTask],
    mut created: Created,
    existing: HashMap<String, TaskRecord>,
) -> Vec<Inserted> {
    tasks
        .iter()
        .map(|task| match &task.idempotency_key {
            None => Inserted {
                task: created.unkeyed.pop_front().expect("a row per unkeyed task"),
                created: true,
            },
            Some(key) => match created.keyed.remove(key) {
                Some(task) => Inserted {
                    task,
                    created: true,
                },
                None => Inserted {
                    task: existing[key].clone(),
                    created: false,
                },
            },
        })
        .collect()
}

pub(super) async fn ready_queues(
    conn: &mut PgConnection,
    queues: Vec<String>,
    now: Millis,
) -> Result<Vec<String>> {
    // A ready task, or a delayed one now due (the next lease promotes it): each the first
    // entry of a range of `tasks_queued`.
    sqlx::query_scalar(
        "SELECT q FROM unnest($1::text[]) AS q WHERE EXISTS (SELECT 1 FROM tasks \
         WHERE queue = q AND state = 'queued' AND NOT delayed AND run_at <= $2) \
         OR EXISTS (SELECT 1 FROM tasks \
         WHERE queue = q AND state = 'queued' AND delayed AND run_at <= $2)",
    )
    .bind(queues)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)
}

pub(super) async fn expire_leases(
    conn: &mut PgConnection,
    now: Millis,
    limit: u32,
    decide: DecideEach,
) -> Result<Vec<TaskRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE state = 'leased' AND lease_expires_at <= $1 \
         ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let expired = rows
        .iter()
        .map(|row| task_from_row(row).map(|task| decide(&task)))
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db)?;
    write_all(conn, &expired.iter().collect::<Vec<_>>())
        .await
        .map_err(db)?;
    Ok(expired)
}

/// Deletes up to `$2` tasks finished before `$1`, found in `tasks_finished`.
pub(super) const PURGE_FINISHED: &str = "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks \
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1 LIMIT $2 \
    FOR UPDATE SKIP LOCKED)";

pub(super) async fn purge_finished(
    conn: &mut PgConnection,
    before: Millis,
    limit: u32,
) -> Result<usize> {
    let done = sqlx::query(PURGE_FINISHED)
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(done.rows_affected() as usize)
}

pub(super) async fn get(conn: &mut PgConnection, id: TaskId) -> Result<Option<TaskRecord>> {
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.as_ref().map(task_from_row).transpose().map_err(db)
}

/// Queues with the `run_at` of their oldest queued task: the first ready one and the first
/// delayed one in `tasks_queued`, two look-ups whatever the number of tasks or priorities.
/// (The ready index is ordered by priority first; a `MIN(run_at)` over it read a queue's whole
/// backlog.)
pub(super) const QUEUES: &str = concat!(
    "SELECT name, sealed, LEAST( \
        (SELECT MIN(run_at) FROM tasks WHERE queue = name AND state = 'queued' AND NOT delayed), \
        (SELECT MIN(run_at) FROM tasks WHERE queue = name AND state = 'queued' AND delayed)), ",
    gates::settings_columns!(),
    " FROM queues WHERE $1::text IS NULL OR name = $1 ORDER BY name"
);

pub(super) async fn queues(
    conn: &mut PgConnection,
    name: Option<&str>,
) -> Result<Vec<QueueRecord>> {
    let rows = sqlx::query(QUEUES)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let counts = counts::read(conn, name).await?;
    let mut queues: Vec<QueueRecord> = rows
        .iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            let (settings, bucket, _) = gates::settings_from_row(row, 3)?;
            Ok(QueueRecord {
                counts: counts.get(&name).cloned().unwrap_or_default(),
                name,
                sealed: row.try_get(1)?,
                oldest_ready_at: row.try_get(2)?,
                settings,
                bucket,
                held_by_keys: 0,
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(db)?;
    for queue in &mut queues {
        if let Some(key_limit) = queue.settings.key_limit {
            queue.held_by_keys = gates::held_by_keys(conn, &queue.name, key_limit).await?;
        }
    }
    Ok(queues)
}

pub(super) async fn set_sealed(conn: &mut PgConnection, name: &str, sealed: bool) -> Result<()> {
    sqlx::query(
        "INSERT INTO queues (name, sealed) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed",
    )
    .bind(name)
    .bind(sealed)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}
