//! Tests of what a task's changes write beside its row. Each index an insert or an update
//! maintains costs every submission or every transition, whatever reads it: a page of its b-tree
//! to find, change and commit. Counted as the pages a commit appends to the write-ahead log
//! (exact, and the same on any machine), against the same database without the indexes that
//! only the listing reads.

use common::{LeaseId, TaskState};
use rusqlite::{Connection, params_from_iter};
use serde_json::json;

use super::ops;
use super::rows::{UPDATE, update_params};
use super::schema::{Synchronous, open_writer};
use crate::engine::rules;
use crate::model::{LeaseRecord, Millis, NewTask, TaskRecord};

const NOW: Millis = 1_000_000;

/// The indexes the hot paths read: leasing, promotion, expiry and retention.
const HOT: [&str; 4] = [
    "tasks_ready",
    "tasks_queued",
    "tasks_leased",
    "tasks_finished",
];

fn database() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    (dir, conn)
}

/// The same database without the indexes only the listing reads.
fn without_listing_indexes() -> (tempfile::TempDir, Connection) {
    let (dir, conn) = database();
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'tasks' \
             AND name NOT LIKE 'sqlite_autoindex%'",
        )
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .unwrap();
    for name in names.iter().filter(|name| !HOT.contains(&name.as_str())) {
        conn.execute_batch(&format!("DROP INDEX {name}")).unwrap();
    }
    (dir, conn)
}

/// Pages the commits of `write` append to the write-ahead log.
fn pages_written(conn: &Connection, write: impl FnOnce(&Connection)) -> i64 {
    let frames = |mode: &str| -> i64 {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            row.get(1)
        })
        .unwrap()
    };
    frames("TRUNCATE");
    write(conn);
    frames("PASSIVE")
}

fn new_task() -> NewTask {
    NewTask {
        queue: "default".into(),
        payload: json!(1),
        priority: 0,
        max_attempts: 3,
        default_lease_ms: 30_000,
        created_at: NOW,
        run_at: NOW,
        idempotency_key: None,
        concurrency_key: None,
        tags: Vec::new(),
    }
}

fn insert(conn: &Connection) -> TaskRecord {
    ops::insert(conn, vec![new_task()], rules::on_resubmit)
        .unwrap()
        .remove(0)
        .task
}

/// Writes `task` as every decision about it is written, in a commit of its own.
fn write(conn: &Connection, task: &TaskRecord) {
    let params = update_params(task);
    conn.prepare_cached(UPDATE)
        .and_then(|mut s| s.execute(params_from_iter(params.iter())))
        .unwrap();
}

/// `task` leased, then succeeded: every task's common life after its submission.
fn lease_and_result(conn: &Connection, task: TaskRecord) {
    let leased = TaskRecord {
        state: TaskState::Leased,
        attempts: 1,
        updated_at: NOW + 1,
        lease: Some(LeaseRecord {
            id: LeaseId("l1".into()),
            worker_id: "w01".into(),
            expires_at: NOW + 30_000,
            lease_ms: 30_000,
            attempt: 1,
            leased_at: NOW + 1,
            heartbeats: 0,
            last_heartbeat_at: None,
            ended_at: None,
        }),
        ..task
    };
    write(conn, &leased);
    let succeeded = TaskRecord {
        state: TaskState::Succeeded,
        updated_at: NOW + 2,
        lease: None,
        result: Some(json!("done")),
        completed_by: Some("w01".into()),
        ..leased
    };
    write(conn, &succeeded);
}

#[test]
fn leasing_a_task_and_accepting_its_result_write_no_listing_index() {
    let (_dir, listed) = database();
    let (_dir2, bare) = without_listing_indexes();
    let (task, bare_task) = (insert(&listed), insert(&bare));

    let listed = pages_written(&listed, |conn| lease_and_result(conn, task));
    let bare = pages_written(&bare, |conn| lease_and_result(conn, bare_task));

    assert_eq!(listed, bare, "pages with the listing indexes, and without");
}

#[test]
fn submitting_a_task_writes_two_listing_indexes() {
    let (_dir, listed) = database();
    let (_dir2, bare) = without_listing_indexes();
    // The queue's first task also records the queue.
    insert(&listed);
    insert(&bare);

    let listed = pages_written(&listed, |conn| drop(insert(conn)));
    let bare = pages_written(&bare, |conn| drop(insert(conn)));

    // `tasks_by_queue` and `tasks_by_created` (migration 11): written at submission only, so that
    // no lease or result moves a listing index (the test above).
    assert_eq!(
        listed,
        bare + 2,
        "pages with the listing indexes, and without"
    );
}
