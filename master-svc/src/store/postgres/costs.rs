//! Tests that what the hot paths read does not grow with what producers choose: how many tasks
//! are delayed, how many priorities are in use, how many tasks a listing's filter passes over.
//! Cost is counted in tuples read from `tasks` and its indexes by the test's own transaction
//! (`pg_stat_get_xact_tuples_returned`), which is exact and does not depend on the machine or
//! on when statistics are flushed; or read from the query plan.
//!
//! They need PostgreSQL's server binaries, and run with `LEASEHOLD_TEST_STORE=postgres` (as
//! every test of the shared store does: scripts/test.sh).

use std::sync::Arc;

use serde_json::json;
use sqlx::postgres::PgArguments;
use sqlx::{AssertSqlSafe, PgConnection};

use super::{PgStore, lease, listing, ops, rows, writer};
use crate::engine::rules;
use crate::model::{LeaseQuery, Millis, NewTask};
use crate::store::Store;

use leasehold_testkit::postgres;

/// Tasks that make a difference an accident could not hide.
const MANY: usize = 10_000;
/// The time the tests' tasks are submitted and leased at (the store takes time from its caller).
pub(super) const NOW: Millis = 1_000_000;

pub(super) fn on_postgres() -> bool {
    std::env::var("LEASEHOLD_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// A fresh database holding `tasks`, with statistics taken as autovacuum would.
pub(super) async fn database(tasks: Vec<NewTask>) -> Arc<PgStore> {
    let url = postgres::fresh_database_url();
    let store = Arc::new(
        PgStore::connect(&url, 4, std::time::Duration::from_secs(10))
            .await
            .unwrap(),
    );
    for chunk in tasks.chunks(common::MAX_BATCH_TASKS) {
        store
            .insert(chunk.to_vec(), crate::engine::rules::on_resubmit)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE tasks")
        .execute(&store.pool)
        .await
        .unwrap();
    store
}

pub(super) fn task(priority: i32, run_at: Millis) -> NewTask {
    NewTask {
        queue: "default".into(),
        payload: json!(1),
        priority,
        max_attempts: 3,
        default_lease_ms: 30_000,
        created_at: NOW,
        run_at,
        idempotency_key: None,
        concurrency_key: None,
        tags: Vec::new(),
    }
}

/// Tuples of `tasks` and its indexes that `run` reads, in one transaction that is rolled back
/// (begun as the group commit begins its transactions).
pub(super) async fn tuples_read<F>(store: &PgStore, run: F) -> i64
where
    F: AsyncFnOnce(&mut PgConnection),
{
    let mut tx = store.pool.begin_with(writer::BEGIN).await.unwrap();
    run(&mut *tx).await;
    sqlx::query_scalar(
        "SELECT (pg_stat_get_xact_tuples_returned('tasks'::regclass) \
         + (SELECT SUM(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index \
            WHERE indrelid = 'tasks'::regclass))::int8",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap()
}

/// One ready task at priority 0, and `delayed` tasks at priority 10 not due for an hour.
async fn one_ready_task_behind(delayed: usize) -> Arc<PgStore> {
    let mut tasks: Vec<NewTask> = (0..delayed).map(|_| task(10, NOW + 3_600_000)).collect();
    tasks.push(task(0, NOW));
    database(tasks).await
}

async fn lease_reads(delayed: usize) -> i64 {
    let store = one_ready_task_behind(delayed).await;
    tuples_read(&store, async |conn| {
        assert_eq!(lease(conn, 1).await.len(), 1);
    })
    .await
}

/// Leases up to `max_tasks` tasks of queue `default` in `conn`'s transaction.
async fn lease(conn: &mut PgConnection, max_tasks: u32) -> Vec<crate::model::TaskRecord> {
    let query = LeaseQuery {
        worker_id: "w01".into(),
        queues: vec!["default".into()],
        max_tasks,
        lease_ms: None,
    };
    let job = lease::LeaseJob {
        query,
        now: NOW,
        rules: crate::engine::LEASE_RULES,
    };
    let mut leased = lease::lease_all(conn, std::slice::from_ref(&job))
        .await
        .unwrap();
    leased.remove(0).tasks
}

/// Tuples a lease of one task reads with 50,000 tasks ready; with `stale` statistics, taken
/// when none of them was there (only `MANY` succeeded tasks of another queue). (With 10,000
/// ready the planner took the ready index either way.)
async fn ready_reads(stale: bool) -> i64 {
    let ready = || (0..5 * MANY).map(|_| task(0, NOW)).collect::<Vec<_>>();
    let store = if stale {
        let mut bulk: Vec<NewTask> = (0..MANY).map(|_| task(0, NOW)).collect();
        for task in &mut bulk {
            task.queue = "bulk".into();
        }
        let store = database(bulk).await;
        sqlx::query("UPDATE tasks SET state = 'succeeded'")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("ANALYZE tasks")
            .execute(&store.pool)
            .await
            .unwrap();
        for chunk in ready().chunks(common::MAX_BATCH_TASKS) {
            store
                .insert(chunk.to_vec(), rules::on_resubmit)
                .await
                .unwrap();
        }
        store
    } else {
        database(ready()).await
    };
    tuples_read(&store, async |conn| {
        assert_eq!(lease(conn, 1).await.len(), 1);
    })
    .await
}

async fn readiness_reads(delayed: usize) -> i64 {
    let store = one_ready_task_behind(delayed).await;
    tuples_read(&store, async |conn| {
        let ready = ops::ready_queues(conn, vec!["default".into()], NOW)
            .await
            .unwrap();
        assert_eq!(ready, ["default"]);
    })
    .await
}

#[tokio::test]
async fn a_lease_reads_as_much_behind_ten_thousand_delayed_tasks_as_behind_none() {
    if !on_postgres() {
        return;
    }
    let (alone, behind) = (lease_reads(0).await, lease_reads(MANY).await);
    assert!(
        behind <= alone + 10,
        "{behind} tuples, {alone} with none delayed"
    );
}

#[tokio::test]
async fn a_lease_walks_the_ready_index_even_when_the_statistics_saw_no_ready_task() {
    if !on_postgres() {
        return;
    }
    // The plan to avoid reads every ready task from `tasks_queued` and sorts them.
    let (fresh, stale) = (ready_reads(false).await, ready_reads(true).await);
    assert!(
        stale <= fresh + 10,
        "{stale} tuples, {fresh} with statistics taken"
    );
}

#[tokio::test]
async fn a_group_writes_its_tasks_reading_them_by_id_not_the_whole_table() {
    if !on_postgres() {
        return;
    }
    let store = database((0..5 * MANY).map(|_| task(0, NOW)).collect()).await;
    let mut tx = store.pool.begin().await.unwrap();
    let leased = lease(&mut tx, 512).await;
    tx.commit().await.unwrap();
    let read = tuples_read(&store, async |conn| {
        rows::write_all(conn, &leased.iter().collect::<Vec<_>>())
            .await
            .unwrap();
    })
    .await;
    assert!(read <= 4 * 512, "{read} tuples to write 512");
}

#[tokio::test]
async fn the_empty_lease_backlog_check_reads_the_counts_not_the_tasks() {
    if !on_postgres() {
        return;
    }
    let store = database((0..100).map(|_| task(0, NOW)).collect()).await;
    let reads = tuples_read(&store, async |conn| {
        let backlog = lease::backlog(conn, &["default".into(), "other".into()])
            .await
            .unwrap();
        assert_eq!(
            backlog
                .iter()
                .map(|b| (b.queued, b.leased))
                .collect::<Vec<_>>(),
            [(true, false), (false, false)]
        );
    })
    .await;
    // An `EXISTS` on the tasks read one; after a drain it read past every dead row.
    assert_eq!(reads, 0);
}

#[tokio::test]
async fn the_readiness_check_reads_as_much_beside_ten_thousand_delayed_tasks_as_beside_none() {
    if !on_postgres() {
        return;
    }
    let (alone, beside) = (readiness_reads(0).await, readiness_reads(MANY).await);
    assert!(
        beside <= alone + 10,
        "{beside} tuples, {alone} with none delayed"
    );
}

/// The plan PostgreSQL makes for `sql` (EXPLAIN's JSON, as text) when 10,000 tasks of another
/// queue have succeeded and one of queue `default` is queued, statistics taken.
pub(super) async fn plan(sql: &str, bind: impl FnOnce(Explain) -> Explain) -> String {
    let mut tasks: Vec<NewTask> = (0..MANY).map(|_| task(0, NOW)).collect();
    for task in &mut tasks {
        task.queue = "bulk".into();
    }
    tasks.push(task(0, NOW));
    let store = database(tasks).await;
    for sql in [
        "UPDATE tasks SET state = 'succeeded' WHERE queue = 'bulk'",
        "ANALYZE tasks",
    ] {
        sqlx::query(sql).execute(&store.pool).await.unwrap();
    }
    let explain = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")));
    let plan: serde_json::Value = bind(explain).fetch_one(&store.pool).await.unwrap();
    plan.to_string()
}

pub(super) type Explain =
    sqlx::query::QueryScalar<'static, sqlx::Postgres, serde_json::Value, PgArguments>;

/// Asserts that `plan` reads `index` and never the whole table.
pub(super) fn assert_reads(plan: &str, index: &str) {
    assert!(
        plan.contains(&format!("\"Index Name\":\"{index}\"")),
        "{index} unused: {plan}"
    );
    assert!(!plan.contains("Seq Scan"), "a scan of the table: {plan}");
}

#[tokio::test]
async fn listing_one_state_walks_the_state_index() {
    if !on_postgres() {
        return;
    }
    let plan = plan(listing::BY_STATE, |q| {
        q.bind(0_i64).bind(100_i64).bind("failed")
    })
    .await;
    assert_reads(&plan, "tasks_by_state");
}

#[tokio::test]
async fn listing_one_queue_walks_the_queue_index() {
    if !on_postgres() {
        return;
    }
    let states: Vec<&str> = common::TaskState::ALL.iter().map(|s| s.as_str()).collect();
    let plan = plan(listing::BY_QUEUE, |q| {
        q.bind(0_i64).bind(100_i64).bind("default").bind(states)
    })
    .await;
    assert_reads(&plan, "tasks_by_queue");
}

#[tokio::test]
async fn listing_one_state_of_one_queue_walks_the_queue_index() {
    if !on_postgres() {
        return;
    }
    let plan = plan(listing::BY_QUEUE, |q| {
        q.bind(0_i64)
            .bind(100_i64)
            .bind("default")
            .bind(vec!["failed"])
    })
    .await;
    assert_reads(&plan, "tasks_by_queue");
}

async fn oldest_reads(priorities: i32) -> i64 {
    let store = database(
        (0..MANY as i32)
            .map(|i| task(i % priorities, NOW))
            .collect(),
    )
    .await;
    tuples_read(&store, async |conn| {
        let queues = ops::queues(conn, Some("default")).await.unwrap();
        assert_eq!(queues[0].oldest_ready_at, Some(NOW));
    })
    .await
}

#[tokio::test]
async fn the_oldest_queued_task_is_found_reading_as_much_over_ten_thousand_priorities_as_over_one()
{
    if !on_postgres() {
        return;
    }
    let (one, many) = (oldest_reads(1).await, oldest_reads(MANY as i32).await);
    assert!(many <= one + 10, "{many} tuples, {one} with one priority");
}

#[tokio::test]
async fn the_retention_purge_reads_the_finished_tasks_index() {
    if !on_postgres() {
        return;
    }
    let plan = plan(ops::PURGE_FINISHED, |q| q.bind(NOW - 1).bind(1_000_i64)).await;
    assert_reads(&plan, "tasks_finished");
}
