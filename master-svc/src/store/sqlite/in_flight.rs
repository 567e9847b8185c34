//! Tests of a capped queue's count of leased tasks (`queues.leased`), which its leases read
//! instead of counting: every way a lease starts or ends moves it, in the same transaction, and
//! it is counted afresh when the cap is set and at every start.

use std::path::Path;
use std::sync::Arc;

use common::{TaskId, TaskState};
use rusqlite::Connection;

use super::{SqliteStore, Synchronous};
use crate::engine::{LEASE_RULES, rules};
use crate::model::{LeaseQuery, Millis, NewTask, QueueSettings, TaskRecord};
use crate::store::{ChangeSettings, Decide, Store};

const NOW: Millis = 1_000_000;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, Synchronous::Normal, false).unwrap()
}

fn task() -> NewTask {
    NewTask {
        queue: "default".into(),
        payload: serde_json::json!({}),
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

async fn cap(store: &SqliteStore, max_in_flight: Option<u32>) {
    let capped = QueueSettings {
        max_in_flight,
        ..QueueSettings::default()
    };
    set(store, capped).await;
}

async fn set(store: &SqliteStore, settings: QueueSettings) {
    let change: ChangeSettings = Box::new(move |_| Ok(settings));
    store
        .change_settings("default".into(), change)
        .await
        .unwrap();
}

async fn lease(store: &SqliteStore, max_tasks: u32) -> Vec<TaskRecord> {
    let query = LeaseQuery {
        worker_id: "w01".into(),
        queues: vec!["default".into()],
        max_tasks,
        lease_ms: None,
    };
    store.lease(query, NOW, LEASE_RULES).await.unwrap().tasks
}

/// Moves a task to `state`, as any decision of the engine may.
async fn set_state(store: &SqliteStore, id: TaskId, state: TaskState) {
    let decide: Decide = Box::new(move |task| {
        let mut next = task.clone();
        next.state = state;
        Ok(next)
    });
    store.update(id, decide).await.unwrap();
}

/// The kept count and the tasks leased, read beside the store.
fn kept_and_counted(path: &Path) -> (Option<i64>, i64) {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT (SELECT leased FROM queues WHERE name = 'default'), \
         (SELECT COUNT(*) FROM tasks WHERE queue = 'default' AND state = 'leased')",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

/// A store in a temporary directory (its file `t.db`) holding `tasks` ready tasks.
async fn holding(tasks: usize) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("t.db"));
    let new = (0..tasks).map(|_| task()).collect();
    store.insert(new, rules::on_resubmit).await.unwrap();
    (dir, store)
}

#[track_caller]
fn assert_kept(path: &Path, leased: i64) {
    assert_eq!(kept_and_counted(path), (Some(leased), leased));
}

#[tokio::test]
async fn a_capped_queues_count_of_leases_follows_every_start_and_end_of_one() {
    let (dir, store) = holding(10).await;
    let path = dir.path().join("t.db");
    let early = lease(&store, 2).await;
    cap(&store, Some(100)).await;
    assert_kept(&path, 2);

    let leased = lease(&store, 5).await;
    assert_kept(&path, 7);
    set_state(&store, leased[0].id, TaskState::Succeeded).await;
    set_state(&store, leased[1].id, TaskState::Queued).await;
    set_state(&store, leased[2].id, TaskState::Cancelled).await;
    set_state(&store, leased[3].id, TaskState::Leased).await;
    assert_kept(&path, 4);
    set_state(&store, early[0].id, TaskState::Failed).await;
    assert_kept(&path, 3);

    let expire = Arc::new(|task: &TaskRecord| {
        rules::on_expiry(task, NOW + 3_600_000, &crate::engine::rules::TEST_POLICY)
    });
    let expired = store
        .expire_leases(NOW + 3_600_000, 100, expire)
        .await
        .unwrap();
    assert_eq!(expired.len(), 3);
    assert_kept(&path, 0);

    // Ready now: the three never leased and the one released (the expired wait for a retry).
    assert_eq!(lease(&store, 3).await.len(), 3);
    assert_kept(&path, 3);
    cap(&store, None).await;
    assert_eq!(lease(&store, 1).await.len(), 1);
    assert_eq!(kept_and_counted(&path), (None, 4), "no cap, no count kept");
    cap(&store, Some(100)).await;
    assert_kept(&path, 4);
}

#[tokio::test]
async fn a_key_limit_keeps_the_count_too() {
    let (dir, store) = holding(4).await;
    let path = dir.path().join("t.db");
    lease(&store, 1).await;
    let limited = QueueSettings {
        key_limit: Some(10),
        ..QueueSettings::default()
    };
    set(&store, limited).await;
    assert_kept(&path, 1);
    let leased = lease(&store, 2).await;
    assert_kept(&path, 3);
    set_state(&store, leased[0].id, TaskState::Succeeded).await;
    assert_kept(&path, 2);
    set(&store, QueueSettings::default()).await;
    assert_eq!(kept_and_counted(&path), (None, 2));
}

#[tokio::test]
async fn the_count_of_leases_is_made_afresh_at_start() {
    let (dir, store) = holding(4).await;
    let path = dir.path().join("t.db");
    cap(&store, Some(100)).await;
    lease(&store, 3).await;
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE queues SET leased = 99", [])
        .unwrap();
    let _store = open(&path);
    assert_kept(&path, 3);
}

/// Runs of the rotation's counting look-up (`NEXT_KEY_COUNTED`) by a lease of 4 tasks of two
/// keys, 2 of their tasks leased already, under `key_limit` (which lets all 4 go).
fn key_counts(key_limit: u32) -> i32 {
    use super::{gates, ops, schema};
    let dir = tempfile::tempdir().unwrap();
    let conn = schema::open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
    let tasks = (0..200).map(|i| NewTask {
        concurrency_key: Some(["a", "b"][i % 2].into()),
        ..task()
    });
    ops::insert(&conn, tasks.collect(), rules::on_resubmit).unwrap();
    let limited = QueueSettings {
        key_limit: Some(key_limit),
        ..QueueSettings::default()
    };
    gates::change_settings(&conn, "default", Box::new(move |_| Ok(limited))).unwrap();
    let query = |max_tasks| LeaseQuery {
        worker_id: "w01".into(),
        queues: vec!["default".into()],
        max_tasks,
        lease_ms: None,
    };
    assert_eq!(
        ops::lease(&conn, &query(2), NOW, LEASE_RULES)
            .unwrap()
            .tasks
            .len(),
        2
    );
    let runs = |conn: &Connection| {
        let statement = conn.prepare_cached(gates::NEXT_KEY_COUNTED).unwrap();
        statement.get_status(rusqlite::StatementStatus::Run)
    };
    let before = runs(&conn);
    assert_eq!(
        ops::lease(&conn, &query(4), NOW, LEASE_RULES)
            .unwrap()
            .tasks
            .len(),
        4
    );
    runs(&conn) - before
}

/// A key holds no more leases than its queue: under a key limit above the queue's leases and
/// what a lease can add, no key is counted; under one a key may reach, every key it visits is.
#[test]
fn keys_are_counted_only_under_a_key_limit_one_of_them_may_reach() {
    assert_eq!(key_counts(100), 0);
    assert!(key_counts(3) > 0);
}
