//! Opening a SQLite database: pragmas and migrations.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// Each entry moves the schema one version up; `PRAGMA user_version` records how far it is.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, even after a purge
    queue            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    default_lease_ms INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    lease_id         TEXT,
    lease_worker     TEXT,
    lease_expires_at INTEGER,
    lease_ms         INTEGER,
    lease_end        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    error            TEXT,
    completed_by     TEXT,
    idempotency_key  TEXT UNIQUE
);
-- Partial indexes keep each hot path's index as small as the set it serves: the ready set for
-- leasing, the leased set for expiry, the finished set for retention.
CREATE INDEX tasks_ready    ON tasks (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX tasks_leased   ON tasks (lease_expires_at) WHERE state = 'leased';
CREATE INDEX tasks_finished ON tasks (updated_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE TABLE queues (
    name   TEXT PRIMARY KEY,
    sealed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"#,
    r#"
-- A partial index's condition is evaluated at every insert and update of a row. Written as
-- `state IN (...)` it made SQLite build a temporary table of the list each time (two for every
-- update of a task); as comparisons it builds none. The retention purge states the condition
-- in the same words, as a query must for SQLite to use a partial index.
DROP INDEX tasks_finished;
CREATE INDEX tasks_finished ON tasks (updated_at)
    WHERE state = 'succeeded' OR state = 'failed' OR state = 'cancelled';
"#,
    r#"
-- Delayed tasks are kept out of the ready index until they are due. In it, a walk to the one
-- ready task stepped over every delayed task of a higher priority (300,000 made a lease take
-- 20 ms instead of 1). `delayed` is set when a task is queued with `run_at` after the decision
-- that queued it, and cleared by a lease of its queue once `run_at` has passed (ops::promote).
ALTER TABLE tasks ADD COLUMN delayed INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET delayed = 1 WHERE state = 'queued' AND run_at > updated_at;
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, run_at, id)
    WHERE state = 'queued' AND delayed = 0;
-- Queued tasks by time, ready and delayed apart: the delayed ones due (promotion, readiness
-- checks) and the oldest ready one (`GET /queues`) are each one look-up, however many
-- priorities are in use.
CREATE INDEX tasks_queued ON tasks (queue, delayed, run_at) WHERE state = 'queued';
"#,
    r#"
-- `GET /tasks?state=` and `?queue=` (and both) walk an index in id order and stop at the end of
-- the page; they read the whole table before (87 ms at 1M tasks). See listing.rs.
CREATE INDEX tasks_by_state ON tasks (state, id);
CREATE INDEX tasks_by_queue ON tasks (queue, state, id);
"#,
    r#"
-- One row the readiness probe rewrites after a failed commit: only a write tells whether
-- writes succeed again (e.g. once a full disk has room).
CREATE TABLE writer_probe (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    writes INTEGER NOT NULL
);
"#,
    r#"
-- Listing indexes that cost what the listing needs. Migration 4's (state, id) and (queue, state,
-- id) moved at every change of state: every task's lease and result deleted and inserted an
-- entry in each, a quarter of the drain's rate. Here no listing index moves when a task goes
-- from queued to leased to succeeded:
-- * a queue's tasks by id: the queue and the id never change, so no update writes it;
-- * failed and cancelled tasks by id, alone and by queue: the states an operator looks for,
--   which tasks enter at most once, so only those rare changes write them;
-- * queued, leased and succeeded tasks are listed from the indexes the hot paths keep anyway
--   (tasks_queued, tasks_leased, tasks_finished) or by walking ids (see listing.rs).
-- tasks_leased carries the queue: whether a queue has a leased task (a lease that found nothing)
-- is then read from it alone, as migration 4's (state, id) read it.
DROP INDEX tasks_by_state;
DROP INDEX tasks_by_queue;
CREATE INDEX tasks_by_queue ON tasks (queue, id);
CREATE INDEX tasks_stopped_by_state ON tasks (state, id)
    WHERE state = 'failed' OR state = 'cancelled';
CREATE INDEX tasks_stopped_by_queue ON tasks (queue, state, id)
    WHERE state = 'failed' OR state = 'cancelled';
DROP INDEX tasks_leased;
CREATE INDEX tasks_leased ON tasks (lease_expires_at, queue) WHERE state = 'leased';
"#,
    r#"
-- Flow control (engine::limits, store::sqlite::gates). A queue's settings, its token bucket and
-- the key rotation's cursor live in its row; a lease of a queue with settings reads and writes
-- them in its own transaction.
ALTER TABLE queues ADD COLUMN paused        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN paused_until  INTEGER;
ALTER TABLE queues ADD COLUMN max_in_flight INTEGER;
ALTER TABLE queues ADD COLUMN rate_per_sec  REAL;
ALTER TABLE queues ADD COLUMN rate_burst    INTEGER;
ALTER TABLE queues ADD COLUMN key_limit     INTEGER;
ALTER TABLE queues ADD COLUMN bucket_tokens REAL;
ALTER TABLE queues ADD COLUMN bucket_at     INTEGER;
ALTER TABLE queues ADD COLUMN cursor_key    TEXT;
ALTER TABLE tasks ADD COLUMN concurrency_key TEXT;
-- Ready tasks with a concurrency key are leased by the key rotation, from their own index: each
-- key's ready tasks, best first (the next key after the cursor is one look-up). The ready index
-- keeps the others, so every ready task is in one of the two, and tasks without a key cost
-- what they cost before.
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, run_at, id)
    WHERE state = 'queued' AND delayed = 0 AND concurrency_key IS NULL;
CREATE INDEX tasks_lanes ON tasks (queue, concurrency_key, priority DESC, run_at, id)
    WHERE state = 'queued' AND delayed = 0 AND concurrency_key IS NOT NULL;
-- Tasks leased per key: a key limit's count. Only keyed tasks enter it.
CREATE INDEX tasks_keys_leased ON tasks (queue, concurrency_key)
    WHERE state = 'leased' AND concurrency_key IS NOT NULL;
"#,
    r#"
-- The tasks leased of a queue with a cap or a key limit (store::sqlite::gates): moved by each
-- lease and each end of one in the transaction that makes it, and counted afresh whenever its
-- settings change and at every start. NULL for a queue with neither.
ALTER TABLE queues ADD COLUMN leased INTEGER;
"#,
    r#"
-- Attempt history (model::history). The last lease's attempt, start, heartbeats and end are
-- columns of the task's row, written by the transitions that change them; the leases before it
-- and the refused requests are JSON (NULL while there is none), written when a lease moves the
-- last one there. A lease from before this migration reads as attempt `attempts`, started at its
-- deadline less its length, ended at the task's last change.
ALTER TABLE tasks ADD COLUMN lease_attempt INTEGER;
ALTER TABLE tasks ADD COLUMN lease_started_at INTEGER;
ALTER TABLE tasks ADD COLUMN lease_heartbeats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_beat_at INTEGER;
ALTER TABLE tasks ADD COLUMN lease_ended_at INTEGER;
ALTER TABLE tasks ADD COLUMN history TEXT;
"#,
    r#"
-- The audit log of operator actions (store::sqlite::audit): appended to, read newest first by
-- id, purged by age through `audit_at`.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    status  INTEGER NOT NULL
);
CREATE INDEX audit_at ON audit_log (at);
"#,
    r#"
-- Finding tasks and acting on them in bulk (listing.rs's search, store::operations).
-- Tags are kept with the task (JSON, NULL without any), read with it, never indexed there.
-- Tags and concurrency keys are found through task_labels ('t:' || tag, 'k:' || key), a side
-- table written at submission only: no lease or result moves an entry of it. The trigger keeps
-- it free of deleted tasks (the retention purge, a bulk delete).
ALTER TABLE tasks ADD COLUMN tags TEXT;
CREATE TABLE task_labels (
    label   TEXT    NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (label, task_id)
) WITHOUT ROWID;
CREATE INDEX task_labels_by_task ON task_labels (task_id);
INSERT INTO task_labels (label, task_id)
    SELECT 'k:' || concurrency_key, id FROM tasks WHERE concurrency_key IS NOT NULL;
CREATE TRIGGER tasks_delete_labels AFTER DELETE ON tasks
    BEGIN DELETE FROM task_labels WHERE task_id = old.id; END;
-- created_at never changes, so no update moves this index; failed tasks by the worker that
-- failed them enter theirs once, at the failure.
CREATE INDEX tasks_by_created ON tasks (created_at, id);
CREATE INDEX tasks_failed_by_worker ON tasks (completed_by, id) WHERE state = 'failed';
-- Bulk operations: the request, the progress, and which master runs it until when.
CREATE TABLE operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT    NOT NULL,
    filter      TEXT    NOT NULL, -- the API's filter, as JSON
    max_tasks   INTEGER,          -- the request's `limit`
    dry_run     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    matched     INTEGER NOT NULL DEFAULT 0,
    done        INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    cursor      INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    owner       TEXT,
    owned_until INTEGER
);
CREATE INDEX operations_running ON operations (id) WHERE state = 'running';
"#,
    r#"
-- The masters' heartbeats (engine::masters, store::sqlite::cluster): a master's row is written
-- at every beat and deleted when it stops. A SQLite file has one master, but the same table as
-- PostgreSQL's keeps `GET /masters` one path.
CREATE TABLE masters (
    id         TEXT    PRIMARY KEY,
    version    TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];

/// How SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Synchronous {
    /// fsync at every commit: an acknowledged write survives power loss.
    Full,
    /// fsync at checkpoints only: survives a process crash, may lose the last commits on power
    /// loss.
    Normal,
}

/// Opens the writer's connection, creating the database and bringing the schema up to date.
pub(super) fn open_writer(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Savepoints (one per job in a group commit) journal in memory, not in a temp file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -8_192)?; // KiB: 8 MiB of page cache
    // Room for every statement the writer runs, so that none is compiled twice.
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&conn)?;
    Ok(conn)
}

/// Opens a read-only connection for queries that must not wait behind the writer.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{ops, rows};

    /// Column `column` of every row `sql` returns, its parameters left unbound.
    fn column(conn: &Connection, sql: &str, column: usize) -> Vec<String> {
        let mut statement = conn.prepare(sql).unwrap();
        let mut rows = statement.raw_query();
        let mut values = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            values.push(row.get(column).unwrap());
        }
        values
    }

    #[test]
    fn updating_a_task_builds_no_temporary_table() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let opcodes = column(&conn, &format!("EXPLAIN {}", rows::UPDATE), 1);
        assert!(
            !opcodes.iter().any(|op| op == "OpenEphemeral"),
            "{opcodes:?}"
        );
    }

    /// The schema as `sqlite_schema` records it: every table and index with its definition.
    fn schema(conn: &Connection) -> Vec<String> {
        column(
            conn,
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_schema \
             ORDER BY name",
            0,
        )
    }

    #[test]
    fn a_database_of_version_5_is_upgraded_to_the_schema_of_a_new_one_with_its_tasks_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..5] {
            old.execute_batch(sql).unwrap();
        }
        old.execute_batch(
            "PRAGMA user_version = 5; \
             INSERT INTO tasks (queue, state, payload, priority, attempts, max_attempts, \
                 default_lease_ms, created_at, run_at, updated_at) \
             VALUES ('a', 'succeeded', '1', 0, 1, 3, 1, 1, 1, 1), \
                    ('a', 'failed', '2', 0, 3, 3, 1, 1, 1, 1), \
                    ('b', 'cancelled', '3', 0, 0, 3, 1, 1, 1, 1);",
        )
        .unwrap();
        drop(old);

        let upgraded = open_writer(&path, Synchronous::Normal).unwrap();
        let new = open_writer(&dir.path().join("new.db"), Synchronous::Normal).unwrap();

        assert_eq!(schema(&upgraded), schema(&new));
        let stopped = column(
            &upgraded,
            "SELECT queue || ' ' || state FROM tasks INDEXED BY tasks_stopped_by_state \
             WHERE state = 'failed' OR state = 'cancelled' ORDER BY state, id",
            0,
        );
        assert_eq!(stopped, ["b cancelled", "a failed"]);
    }

    #[test]
    fn the_leases_by_worker_are_read_from_the_leased_tasks_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let plan = column(
            &conn,
            &format!("EXPLAIN QUERY PLAN {}", super::super::cluster::LEASED_BY),
            3,
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX tasks_leased")),
            "{plan:?}"
        );
    }

    #[test]
    fn the_retention_purge_reads_the_finished_tasks_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let plan = column(
            &conn,
            &format!("EXPLAIN QUERY PLAN {}", ops::PURGE_FINISHED),
            3,
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX tasks_finished")),
            "{plan:?}"
        );
    }
}
