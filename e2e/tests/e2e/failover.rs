//! Several masters on one PostgreSQL database. Failover: workers are spread over two masters and
//! one master is killed with SIGKILL in the middle of the load; every task still completes, on
//! the survivor, and no lease is ever run twice. Push: two masters push to the same workers and
//! never dispatch one task twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::SubmitTask;
use leasehold_client::MasterClient;
use nix::sys::signal::Signal;
use serde_json::json;

use crate::cluster::{Process, free_port, spawn_master, start_worker, wait_ready};
use leasehold_testkit::postgres;

const TASKS: usize = 300;

/// Records each run as `TASK_ID ATTEMPT WORKER_ID` (appends of one short line are atomic),
/// then works for a while.
fn recording_handler(log: &std::path::Path) -> String {
    format!(
        r#"exec:echo "$TASK_ID $TASK_ATTEMPT $WORKER_ID" >> {}; sleep 0.2; echo '"done"'"#,
        log.display()
    )
}

async fn start_master(dir: &std::path::Path, name: &str, database_url: &str) -> (Process, String) {
    start_master_with(dir, name, database_url, &[]).await
}

async fn start_master_with(
    dir: &std::path::Path,
    name: &str,
    database_url: &str,
    extra: &[&str],
) -> (Process, String) {
    let port = free_port();
    let process = spawn_master(dir, name, port, database_url, extra, &[]);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/readyz")).await;
    (process, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_load_loses_nothing_when_another_shares_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = postgres::fresh_database_url();
    let (master_a, url_a) = start_master(dir.path(), "master-a", &database_url).await;
    let (_master_b, url_b) = start_master(dir.path(), "master-b", &database_url).await;
    let runs = dir.path().join("runs.log");
    let handler = recording_handler(&runs);
    let mut workers = Vec::new();
    for (id, url) in [
        ("a1", &url_a),
        ("a2", &url_a),
        ("b1", &url_b),
        ("b2", &url_b),
    ] {
        let args = ["--concurrency", "4", "--handler", &handler];
        workers.push(start_worker(url, dir.path(), id, &args).await.0);
    }

    // Submitted through A; B's workers long-poll B and hear of them through the database.
    let a = MasterClient::new(&url_a, None);
    let tasks = (0..TASKS)
        .map(|i| SubmitTask {
            lease_secs: Some(2),
            ..SubmitTask::new(json!(i))
        })
        .collect();
    a.submit_batch(tasks).await.expect("tasks submitted");
    let b = MasterClient::new(&url_b, None);
    wait_until(&b, Duration::from_secs(30), |done| done >= TASKS / 5).await;
    master_a.signal(Signal::SIGKILL);

    let done = wait_until(&b, Duration::from_secs(60), |done| done == TASKS).await;
    assert_eq!(done, TASKS, "not every task completed after the failover");
    let queue = b.queue("default").await.unwrap();
    assert_eq!(
        queue.counts.queued + queue.counts.leased + queue.counts.failed,
        0
    );

    let runs = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(tasks_run_once_per_attempt(&runs), TASKS, "a task never ran");
    // Each (task, attempt) ran once, so more runs than tasks means some task ran again.
    assert!(
        runs.lines().count() > TASKS,
        "no task was in flight on the killed master's workers"
    );
    drop(workers);
}

/// Every (task, attempt) in the run log ran once; returns how many tasks ran.
fn tasks_run_once_per_attempt(runs: &str) -> usize {
    let mut attempts_run: HashMap<&str, HashSet<&str>> = HashMap::new();
    for line in runs.lines() {
        let mut fields = line.split(' ');
        let (task, attempt) = (fields.next().unwrap(), fields.next().unwrap());
        assert!(
            attempts_run.entry(task).or_default().insert(attempt),
            "task {task} attempt {attempt} ran twice:\n{runs}"
        );
    }
    attempts_run.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_pushing_to_the_same_workers_never_dispatch_a_task_twice() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = postgres::fresh_database_url();
    let runs = dir.path().join("runs.log");
    let handler = recording_handler(&runs);
    let mut workers = Vec::new();
    let mut urls = Vec::new();
    for id in ["p1", "p2"] {
        let args = ["--no-pull", "--concurrency", "8", "--handler", &handler];
        let (worker, url) = start_worker("http://127.0.0.1:9", dir.path(), id, &args).await;
        workers.push(worker);
        urls.push(url);
    }
    let push_to = [
        "--push-worker",
        &urls[0],
        "--push-worker",
        &urls[1],
        "--push-capacity",
        "4",
    ];
    let (_a, url_a) = start_master_with(dir.path(), "master-a", &database_url, &push_to).await;
    let (_b, url_b) = start_master_with(dir.path(), "master-b", &database_url, &push_to).await;

    let tasks = (0..100).map(|i| SubmitTask::new(json!(i))).collect();
    MasterClient::new(&url_a, None)
        .submit_batch(tasks)
        .await
        .expect("tasks submitted");
    let b = MasterClient::new(&url_b, None);
    let done = wait_until(&b, Duration::from_secs(60), |done| done == 100).await;

    assert_eq!(done, 100, "not every pushed task completed");
    let runs = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(tasks_run_once_per_attempt(&runs), 100);
    assert_eq!(
        runs.lines().count(),
        100,
        "a task was pushed twice:\n{runs}"
    );
    drop(workers);
}

/// Polls B's count of succeeded tasks until `enough` holds or `limit` passes; returns it.
async fn wait_until(b: &MasterClient, limit: Duration, enough: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let done = b
            .queue("default")
            .await
            .map_or(0, |q| q.counts.succeeded as usize);
        if enough(done) || Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
