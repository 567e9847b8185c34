//! Tests of what flow control costs a lease on the shared store: a queue without settings is
//! not locked (so leases of it never wait for another master's), a queue with settings is, and
//! the key rotation steps over a busy key whatever the number of its tasks. Reads are counted
//! as in [`costs`](super::costs), in tuples of `tasks` and its indexes, or read from the plan.

use std::sync::Arc;

use sqlx::PgConnection;

use super::PgStore;
use super::costs::{NOW, assert_reads, database, on_postgres, plan, task, tuples_read};
use super::lanes;
use super::lease::{self, LeaseJob};
use super::look;
use crate::model::{LeaseQuery, NewTask, QueueSettings, TaskRecord};
use crate::store::{ChangeSettings, Store, StoreError};

/// Leases up to `max_tasks` tasks of queue `default` in `conn`'s transaction, writing its leases
/// and gates as the group commit does.
async fn lease(conn: &mut PgConnection, max_tasks: u32) -> Result<Vec<TaskRecord>, StoreError> {
    let job = LeaseJob {
        query: LeaseQuery {
            worker_id: "w01".into(),
            queues: vec!["default".into()],
            max_tasks,
            lease_ms: None,
        },
        now: NOW,
        rules: crate::engine::LEASE_RULES,
    };
    let mut leased = lease::lease_all(conn, std::slice::from_ref(&job)).await?;
    Ok(leased.remove(0).tasks)
}

async fn set(store: &PgStore, settings: QueueSettings) {
    let change: ChangeSettings = Box::new(move |_| Ok(settings));
    store
        .change_settings("default".into(), change)
        .await
        .unwrap();
}

/// Leases one task of `default` while another transaction holds the queue's row locked, giving
/// up on any lock after 200 ms.
async fn lease_beside_a_locked_row(store: &PgStore) -> Result<Vec<TaskRecord>, StoreError> {
    let mut holder = store.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM queues WHERE name = 'default' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let mut tx = store.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '200ms'")
        .execute(&mut *tx)
        .await
        .unwrap();
    lease(&mut tx, 1).await
}

#[tokio::test]
async fn a_lease_of_a_queue_without_settings_does_not_wait_for_its_row() {
    if !on_postgres() {
        return;
    }
    let store = database(vec![task(0, NOW)]).await;
    let leased = lease_beside_a_locked_row(&store).await.expect("no lock");
    assert_eq!(leased.len(), 1);
}

#[tokio::test]
async fn a_lease_of_a_queue_with_settings_locks_its_row_first() {
    if !on_postgres() {
        return;
    }
    let store = database(vec![task(0, NOW)]).await;
    let capped = QueueSettings {
        max_in_flight: Some(10),
        ..QueueSettings::default()
    };
    set(&store, capped).await;
    let waited = lease_beside_a_locked_row(&store).await;
    assert!(matches!(waited, Err(StoreError::Database(_))), "{waited:?}");
}

fn keyed(key: &str) -> NewTask {
    NewTask {
        concurrency_key: Some(key.into()),
        ..task(0, NOW)
    }
}

/// Tuples the second lease of one task reads under a key limit of 1, when key `a` (its one
/// task leased by the first) has `big` more ready tasks and key `b` has one: it steps over `a`.
async fn rotation_reads(big: usize) -> i64 {
    let mut tasks: Vec<NewTask> = (0..=big).map(|_| keyed("a")).collect();
    tasks.push(keyed("b"));
    let store: Arc<PgStore> = database(tasks).await;
    let limited = QueueSettings {
        key_limit: Some(1),
        ..QueueSettings::default()
    };
    set(&store, limited).await;
    let mut first = store.pool.begin().await.unwrap();
    let leased = lease(&mut first, 1).await.unwrap();
    assert_eq!(leased[0].concurrency_key.as_deref(), Some("a"));
    first.commit().await.unwrap();
    // Back to the start of the rotation, so that the next lease visits `a` first.
    sqlx::query("UPDATE queues SET cursor_key = NULL")
        .execute(&store.pool)
        .await
        .unwrap();
    tuples_read(&store, async |conn| {
        let leased = lease(conn, 1).await.unwrap();
        assert_eq!(leased[0].concurrency_key.as_deref(), Some("b"));
    })
    .await
}

#[tokio::test]
async fn the_key_rotation_steps_over_a_busy_key_of_ten_thousand_tasks_as_over_one_of_none() {
    if !on_postgres() {
        return;
    }
    let (small, big) = (rotation_reads(0).await, rotation_reads(10_000).await);
    assert!(
        big <= small + 10,
        "{big} tuples, {small} behind a small key"
    );
}

#[tokio::test]
async fn the_ready_read_walks_the_ready_index_with_keyed_tasks_apart() {
    if !on_postgres() {
        return;
    }
    let later = plan(lease::READY, |q| {
        q.bind(vec!["default"])
            .bind(NOW)
            .bind(32_i64)
            .bind(Vec::<i64>::new())
    })
    .await;
    assert_reads(&later, "tasks_ready");
    let first = plan(look::LOOK_AND_READ, |q| {
        q.bind(vec!["default"])
            .bind(NOW)
            .bind(32_i64)
            .bind(Vec::<i64>::new())
            .bind(vec!["default"])
    })
    .await;
    assert_reads(&first, "tasks_ready");
}

#[tokio::test]
async fn the_key_rotation_walks_the_lanes_and_counts_in_the_leased_keys_index() {
    if !on_postgres() {
        return;
    }
    let walk = plan(lanes::WALK, |q| {
        q.bind("default")
            .bind(None::<String>)
            .bind(Some(1_i64))
            .bind(4_i64)
            .bind(1_000_i64)
            .bind(Vec::<String>::new())
            .bind(Vec::<i64>::new())
    })
    .await;
    assert_reads(&walk, "tasks_lanes");
    assert_reads(&walk, "tasks_keys_leased");
}

/// Index scans of `tasks` made by `jobs` leases of `each` tasks of `default`, leased in one
/// group (one transaction, rolled back).
async fn group_scans(store: &PgStore, jobs: usize, each: u32) -> i64 {
    let job = || LeaseJob {
        query: LeaseQuery {
            worker_id: "w01".into(),
            queues: vec!["default".into()],
            max_tasks: each,
            lease_ms: None,
        },
        now: NOW,
        rules: crate::engine::LEASE_RULES,
    };
    let group: Vec<LeaseJob> = (0..jobs).map(|_| job()).collect();
    let mut tx = store.pool.begin_with(super::writer::BEGIN).await.unwrap();
    let leased = lease::lease_all(&mut tx, &group).await.unwrap();
    let taken: usize = leased.iter().map(|leased| leased.tasks.len()).sum();
    assert_eq!(taken, jobs * each as usize);
    sqlx::query_scalar(
        "SELECT SUM(pg_stat_get_xact_numscans(indexrelid))::int8 FROM pg_index \
         WHERE indrelid = 'tasks'::regclass",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap()
}

/// A group reads a gated queue's tasks once for all its leases of that queue, not once a lease:
/// sixteen leases of one task scan as many indexes as one lease of sixteen, with an in-flight
/// cap, and with keyed tasks under a key limit.
#[tokio::test]
async fn a_group_reads_through_a_gate_once_for_all_its_leases() {
    if !on_postgres() {
        return;
    }
    let capped = QueueSettings {
        max_in_flight: Some(1_000),
        ..QueueSettings::default()
    };
    let plain: Vec<NewTask> = (0..64).map(|_| task(0, NOW)).collect();
    let keys = ["a", "b", "c", "d"];
    let keyed_tasks: Vec<NewTask> = (0..64).map(|i| keyed(keys[i % 4])).collect();
    let limited = QueueSettings {
        key_limit: Some(100),
        ..QueueSettings::default()
    };
    for (tasks, settings) in [(plain, capped), (keyed_tasks, limited)] {
        let store = database(tasks).await;
        set(&store, settings).await;
        let (one, sixteen) = (
            group_scans(&store, 1, 16).await,
            group_scans(&store, 16, 1).await,
        );
        assert_eq!(
            sixteen, one,
            "16 leases of 1 scan {sixteen} times, 1 of 16 {one}"
        );
    }
}

/// Two groups (of two masters, say) lease from a queue capped at one at the same moment: each
/// deals by the gate as it read it, one slot free, and writes its lease. The first to confirm
/// keeps it; the second finds the slot taken when it confirms, and puts its lease back as the
/// task was, attempt uncounted.
#[tokio::test]
async fn a_lease_its_gate_refuses_when_confirmed_is_put_back() {
    if !on_postgres() {
        return;
    }
    let store = database((0..4).map(|_| task(0, NOW)).collect()).await;
    let capped = QueueSettings {
        max_in_flight: Some(1),
        ..QueueSettings::default()
    };
    set(&store, capped).await;
    let jobs = [LeaseJob {
        query: LeaseQuery {
            worker_id: "w01".into(),
            queues: vec!["default".into()],
            max_tasks: 1,
            lease_ms: None,
        },
        now: NOW,
        rules: crate::engine::LEASE_RULES,
    }];
    let mut second = store.pool.begin_with(super::writer::BEGIN).await.unwrap();
    let freed = super::admission::Freed::default();
    let mut chosen = lease::choose(&mut second, &jobs, Vec::new(), freed, || ())
        .await
        .unwrap();
    assert_eq!(
        chosen.dealt[0].len(),
        1,
        "one slot free as it read the gate"
    );
    let dealt: Vec<&TaskRecord> = chosen.dealt.iter().flatten().collect();
    super::rows::write_all(&mut second, &dealt).await.unwrap();

    let mut first = store.pool.begin_with(super::writer::BEGIN).await.unwrap();
    let leased = lease::lease_all(&mut first, &jobs).await.unwrap();
    assert_eq!(leased[0].tasks.len(), 1);
    first.commit().await.unwrap();

    lease::confirm(&mut second, &jobs, &mut chosen)
        .await
        .unwrap();
    assert!(chosen.dealt[0].is_empty(), "kept {:?}", chosen.dealt[0]);
    second.commit().await.unwrap();
    let (leased, attempts): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE state = 'leased'), SUM(attempts)::int8 FROM tasks",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!((leased, attempts), (1, 1));
}

/// Tuples of `tasks` and its indexes a lease of 4 tasks of two keys reads, 2 tasks of them
/// leased already, under `key_limit` (which lets all 4 go).
async fn key_counts(key_limit: u32) -> i64 {
    let tasks: Vec<NewTask> = (0..200).map(|i| keyed(["a", "b"][i % 2])).collect();
    let store = database(tasks).await;
    let limited = QueueSettings {
        key_limit: Some(key_limit),
        ..QueueSettings::default()
    };
    set(&store, limited).await;
    let mut first = store.pool.begin().await.unwrap();
    assert_eq!(lease(&mut first, 2).await.unwrap().len(), 2);
    first.commit().await.unwrap();
    tuples_read(&store, async |conn| {
        assert_eq!(lease(conn, 4).await.unwrap().len(), 4);
    })
    .await
}

/// A key holds no more leases than its queue: under a key limit above the queue's leases and
/// what a lease can add, no key is counted; under one a key may reach, every key is.
#[tokio::test]
async fn keys_are_counted_only_under_a_key_limit_one_of_them_may_reach() {
    if !on_postgres() {
        return;
    }
    let (far, near) = (key_counts(100).await, key_counts(3).await);
    assert!(
        far < near,
        "{far} tuples read under a limit of 100, {near} under 3"
    );
}
