//! Tests that what the hot paths read does not grow with what producers choose: how many tasks
//! are delayed, how many priorities are in use, how many tasks a listing's filter passes over.
//! Cost is counted in SQLite's virtual machine steps (`SQLITE_STMTSTATUS_VM_STEP`), which are
//! exact and do not depend on the machine, or read from the query plan.

use common::TaskState;
use rusqlite::{Connection, StatementStatus};
use serde_json::json;

use super::schema::{Synchronous, open_writer};
use super::{listing, ops};
use crate::model::{LeaseQuery, Millis, NewTask};
use crate::store::TaskFilter;

const NOW: Millis = 1_000_000;
/// Tasks that make a difference an accident could not hide.
const MANY: usize = 10_000;

fn task(priority: i32, run_at: Millis) -> NewTask {
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

/// A database holding `tasks`, inserted in one transaction.
fn database(tasks: Vec<NewTask>) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    ops::insert(&conn, tasks, crate::engine::rules::on_resubmit).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    (dir, conn)
}

/// The VM steps `run` takes in the statements `sql`.
fn steps(conn: &Connection, sql: &[&str], run: impl FnOnce(&Connection)) -> i32 {
    for sql in sql {
        conn.prepare_cached(sql)
            .unwrap()
            .reset_status(StatementStatus::VmStep);
    }
    run(conn);
    sql.iter()
        .map(|sql| {
            conn.prepare_cached(sql)
                .unwrap()
                .get_status(StatementStatus::VmStep)
        })
        .sum()
}

/// One ready task at priority 0, and `delayed` tasks at priority 10 not due for a minute.
fn one_ready_task_behind(delayed: usize) -> Vec<NewTask> {
    let mut tasks: Vec<NewTask> = (0..delayed).map(|_| task(10, NOW + 60_000)).collect();
    tasks.push(task(0, NOW));
    tasks
}

fn lease_steps(conn: &Connection) -> i32 {
    let query = LeaseQuery {
        worker_id: "w01".into(),
        queues: vec!["default".into()],
        max_tasks: 1,
        lease_ms: None,
    };
    steps(conn, &[ops::PROMOTE, ops::READY_CANDIDATES], |conn| {
        let leased = ops::lease(conn, &query, NOW, crate::engine::LEASE_RULES).unwrap();
        assert_eq!(leased.tasks.len(), 1);
    })
}

#[test]
fn a_lease_reads_as_much_behind_ten_thousand_delayed_tasks_as_behind_none() {
    let (_dir, alone) = database(one_ready_task_behind(0));
    let (_dir2, behind) = database(one_ready_task_behind(MANY));

    let (alone, behind) = (lease_steps(&alone), lease_steps(&behind));

    assert!(
        behind <= alone + 10,
        "{behind} steps, {alone} with none delayed"
    );
}

#[test]
fn the_readiness_check_reads_as_much_beside_ten_thousand_delayed_tasks_as_beside_none() {
    let check = |conn: &Connection| {
        steps(conn, &[ops::HAS_READY], |conn| {
            let ready = ops::ready_queues(conn, vec!["default".into()], NOW).unwrap();
            assert_eq!(ready, ["default"]);
        })
    };
    let (_dir, alone) = database(one_ready_task_behind(0));
    let (_dir2, beside) = database(one_ready_task_behind(MANY));

    let (alone, beside) = (check(&alone), check(&beside));

    assert!(
        beside <= alone + 10,
        "{beside} steps, {alone} with none delayed"
    );
}

#[test]
fn a_delayed_task_is_promoted_once_by_the_first_lease_after_it_is_due() {
    let (_dir, conn) = database(vec![task(0, NOW), task(5, NOW + 1_000)]);
    let lease = |now| {
        let query = LeaseQuery {
            worker_id: "w01".into(),
            queues: vec!["default".into()],
            max_tasks: 1,
            lease_ms: None,
        };
        ops::lease(&conn, &query, now, crate::engine::LEASE_RULES)
            .unwrap()
            .tasks[0]
            .priority
    };

    assert_eq!(
        lease(NOW + 1_000),
        5,
        "the due task of higher priority first"
    );
    assert_eq!(lease(NOW + 1_000), 0);
}

/// The steps of `sql`'s query plan, its parameters left unbound.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = statement.raw_query();
    let mut steps = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        steps.push(row.get(3).unwrap());
    }
    steps
}

/// Asserts that `sql` reads `index` and never the whole table. (A full read of a partial index
/// is a `SCAN tasks USING ... INDEX`; of the table, a bare `SCAN tasks`.)
fn assert_reads(sql: &str, index: &str) {
    let (_dir, conn) = database(Vec::new());
    let plan = plan(&conn, sql);
    assert!(
        plan.iter().any(|step| step.contains(index)),
        "{index} unused: {plan:?}"
    );
    assert!(
        !plan
            .iter()
            .any(|step| step.starts_with("SCAN tasks") && !step.contains("INDEX")),
        "a scan of the table: {plan:?}"
    );
}

#[test]
fn listing_one_queue_walks_the_queue_index() {
    assert_reads(listing::BY_QUEUE, "USING COVERING INDEX tasks_by_queue");
}

#[test]
fn listing_failed_or_cancelled_tasks_walks_their_own_index() {
    assert_reads(
        listing::STOPPED,
        "USING COVERING INDEX tasks_stopped_by_state (state=? AND id>?)",
    );
}

#[test]
fn listing_failed_or_cancelled_tasks_of_one_queue_walks_their_own_queue_index() {
    assert_reads(
        listing::STOPPED_IN_QUEUE,
        "USING COVERING INDEX tasks_stopped_by_queue (queue=? AND state=? AND id>?)",
    );
}

#[test]
fn walking_the_tasks_after_the_cursor_reads_them_in_id_order() {
    assert_reads(listing::WALK, "USING INTEGER PRIMARY KEY (rowid>?)");
    assert_reads(
        listing::WALK_IN_QUEUE,
        "USING INDEX tasks_by_queue (queue=? AND id>?)",
    );
}

#[test]
fn listing_queued_leased_or_succeeded_tasks_past_the_walk_reads_that_states_own_index() {
    let own = [
        (TaskState::Queued, "tasks_queued"),
        (TaskState::Leased, "tasks_leased"),
        (TaskState::Succeeded, "tasks_finished"),
    ];
    for (state, index) in own {
        assert_reads(&listing::by_own_index(state, false), index);
        assert_reads(&listing::by_own_index(state, true), index);
    }
}

#[test]
fn listing_every_task_walks_the_primary_key() {
    assert_reads(listing::BY_ID, "USING INTEGER PRIMARY KEY");
}

/// `tasks` with the first `finished` of them succeeded.
fn database_with_finished(tasks: Vec<NewTask>, finished: usize) -> (tempfile::TempDir, Connection) {
    let (dir, conn) = database(tasks);
    conn.execute(
        "UPDATE tasks SET state = 'succeeded', delayed = 0 WHERE id <= ?1",
        [finished as i64],
    )
    .unwrap();
    (dir, conn)
}

#[test]
fn a_lease_that_finds_nothing_reads_as_much_beside_ten_thousand_finished_tasks_as_beside_none() {
    let backlog = |conn: &Connection| {
        let query = LeaseQuery {
            worker_id: "w01".into(),
            queues: vec!["default".into()],
            max_tasks: 1,
            lease_ms: None,
        };
        steps(conn, &[ops::BACKLOG], |conn| {
            let leased = ops::lease(conn, &query, NOW, crate::engine::LEASE_RULES).unwrap();
            assert!(!leased.backlog[0].queued && !leased.backlog[0].leased);
        })
    };
    let (_dir, none) = database_with_finished(vec![task(0, NOW)], 1);
    let (_dir2, many) = database_with_finished((0..MANY).map(|_| task(0, NOW)).collect(), MANY);

    let (none, many) = (backlog(&none), backlog(&many));

    assert!(many <= none + 10, "{many} steps, {none} beside one");
}

/// Steps of listing the first page of queued tasks, with the store's counts.
fn queued_page_steps(conn: &Connection) -> i32 {
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get(0)).unwrap();
    let sizes = listing::Sizes {
        matching: count("SELECT COUNT(*) FROM tasks WHERE state = 'queued'"),
        in_queue: count("SELECT COUNT(*) FROM tasks"),
        own_index: count("SELECT COUNT(*) FROM tasks WHERE state = 'queued'"),
    };
    let filter = TaskFilter {
        queue: None,
        state: Some(TaskState::Queued),
        search: Default::default(),
        after_id: None,
        limit: 100,
        bodies: false,
        max_bytes: usize::MAX,
    };
    let own = listing::by_own_index(TaskState::Queued, false);
    steps(conn, &[listing::WALK, &own], |conn| {
        let page = listing::list(conn, &filter, sizes).unwrap();
        assert_eq!(page.tasks.len(), 10);
    })
}

#[test]
fn listing_queued_tasks_reads_as_much_behind_ten_thousand_finished_tasks_as_behind_none() {
    let (_dir, alone) = database_with_finished((0..10).map(|_| task(0, NOW)).collect(), 0);
    let (_dir2, behind) =
        database_with_finished((0..MANY + 10).map(|_| task(0, NOW)).collect(), MANY);

    let (alone, behind) = (queued_page_steps(&alone), queued_page_steps(&behind));

    assert!(
        behind <= alone + 100,
        "{behind} steps, {alone} with none finished"
    );
}

fn oldest_steps(priorities: i32) -> i32 {
    let tasks = (0..MANY as i32)
        .map(|i| task(i % priorities, NOW))
        .collect();
    let (_dir, conn) = database(tasks);
    steps(&conn, &[ops::OLDEST_QUEUED], |conn| {
        let queues = ops::queues(conn, Some("default"), Default::default()).unwrap();
        assert_eq!(queues[0].oldest_ready_at, Some(NOW));
    })
}

#[test]
fn the_oldest_queued_task_is_found_in_as_many_steps_over_ten_thousand_priorities_as_over_one() {
    let (one, many) = (oldest_steps(1), oldest_steps(MANY as i32));
    assert!(many <= one + 10, "{many} steps, {one} with one priority");
}
