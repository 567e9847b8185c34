//! Tests that the shared store leases through a queue's gate exactly as the embedded store does:
//! the same tasks from the same submissions, lease after lease (the key rotation, its cursor, a
//! key limit, a token bucket, tasks without a key among keyed ones), and the same queue record
//! after. Both stores number tasks from 1 in submission order, so the ids compare as they are.

use tempfile::TempDir;

use super::costs::{NOW, database, on_postgres, task};
use crate::engine::LEASE_RULES;
use crate::model::{LeaseQuery, NewTask, QueueSettings, RateLimit};
use crate::store::sqlite::{SqliteStore, Synchronous};
use crate::store::{ChangeSettings, Store};

/// `n` tasks of `key` (none: without one) at `priority`.
fn tasks(n: usize, key: Option<&str>, priority: i32) -> Vec<NewTask> {
    (0..n)
        .map(|_| NewTask {
            concurrency_key: key.map(str::to_owned),
            ..task(priority, NOW)
        })
        .collect()
}

/// A big key, two keys of one task (one of them urgent), two more big keys, and tasks without
/// a key between them in priority.
fn submissions() -> Vec<NewTask> {
    let mut all = tasks(30, Some("a"), 0);
    all.extend(tasks(1, Some("b"), 0));
    all.extend(tasks(1, Some("c"), 5));
    all.extend(tasks(30, Some("d"), 0));
    all.extend(tasks(5, None, 1));
    all.extend(tasks(30, Some("e"), 0));
    all
}

/// Every limit binds in turn: the bucket after 12 leases, the key limit on the big keys, the cap
/// at the last lease.
fn limits() -> QueueSettings {
    QueueSettings {
        key_limit: Some(6),
        max_in_flight: Some(20),
        rate_limit: Some(RateLimit {
            per_sec: 1_000.0,
            burst: 12,
        }),
        ..QueueSettings::default()
    }
}

/// What each of a run of leases took (ids, and when the queue reopens), then the queue's record.
async fn run(store: &dyn Store) -> (Vec<(Vec<i64>, Vec<i64>)>, String) {
    let settings = limits();
    let change: ChangeSettings = Box::new(move |_| Ok(settings));
    store
        .change_settings("default".into(), change)
        .await
        .unwrap();
    let mut taken = Vec::new();
    // Ten at a time at one moment: the bucket's 12 go, 10 and 2, then it is empty until a
    // millisecond later, when one token is back; at 30 ms it is full again, and the cap binds.
    for (i, at) in [NOW, NOW, NOW, NOW, NOW + 1, NOW + 30]
        .into_iter()
        .enumerate()
    {
        let query = LeaseQuery {
            worker_id: format!("w{i}"),
            queues: vec!["default".into()],
            max_tasks: 10,
            lease_ms: None,
        };
        let leased = store.lease(query, at, LEASE_RULES).await.unwrap();
        let ids = leased.tasks.iter().map(|t| t.id.0).collect();
        let reopens = leased.reopens.iter().map(|(_, at)| at - NOW).collect();
        taken.push((ids, reopens));
    }
    let queue = store
        .queues(Some("default".into()))
        .await
        .unwrap()
        .remove(0);
    (taken, format!("{queue:?}"))
}

#[tokio::test]
async fn leases_through_a_gate_take_what_the_embedded_store_takes() {
    if !on_postgres() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("parity.db");
    let embedded = SqliteStore::open(&path, Synchronous::Normal, false).unwrap();
    embedded
        .insert(submissions(), crate::engine::rules::on_resubmit)
        .await
        .unwrap();
    let shared = database(submissions()).await;

    let (expected, expected_queue) = run(&embedded).await;
    let (leased, queue) = run(shared.as_ref()).await;

    assert_eq!(leased, expected);
    assert_eq!(queue, expected_queue);
}
