//! The original design's pull scenario, and the worker riding out a master outage.

use std::time::Duration;

use common::{SubmitTask, TaskState};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::cluster::{Cluster, free_port, metric, payload, start_worker, wait_for_metric};

/// w01's handler freezes w01 itself (SIGSTOP to its parent) when it gets task 3, as a hung or
/// partitioned worker would be: its heartbeats stop too.
const STALL_ON_TASK_3: &str = r#"exec:if [ "$WORKER_ID" = w01 ] && [ "$TASK_ID" = 3 ]; then kill -STOP $PPID; fi; echo "\"Processed data from task $TASK_ID\"""#;

fn task_data(n: u32) -> SubmitTask {
    SubmitTask {
        lease_secs: Some(2),
        ..payload(&format!("task data {n}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_loses_its_task_to_another_and_its_late_result_is_refused() {
    let cluster = Cluster::start().await;
    // w01 alone takes tasks 1 to 3 in order, and freezes on task 3.
    let (w01, w01_url) = cluster
        .worker("w01", &["--concurrency", "1", "--handler", STALL_ON_TASK_3])
        .await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(cluster.submit(task_data(n)).await.id);
    }
    cluster
        .wait_for_state(ids[1], TaskState::Succeeded, Duration::from_secs(10))
        .await;
    // Leased once, by w01, the only worker. (Its lease lasts 2 s: a test stalled that long
    // would miss it if it looked for the lease itself.)
    let stalled = cluster
        .wait_for(ids[2], Duration::from_secs(10), |t| t.attempts == 1)
        .await;
    assert_eq!(stalled.attempts, 1, "{stalled:?}");

    let (_w02, _) = cluster
        .worker("w02", &["--concurrency", "1", "--handler", STALL_ON_TASK_3])
        .await;
    for n in 4..=5 {
        ids.push(cluster.submit(task_data(n)).await.id);
    }
    // Task 3's lease runs out while w01 is frozen; w02 takes it and finishes it.
    let task3 = cluster
        .wait_for_state(ids[2], TaskState::Succeeded, Duration::from_secs(15))
        .await;
    assert_eq!(task3.worker_id.as_deref(), Some("w02"));
    assert_eq!(task3.attempts, 2);
    assert_eq!(task3.result, Some(json!("Processed data from task 3")));

    // w01 wakes up and sends its late result: refused, and nothing changes.
    w01.signal(Signal::SIGCONT);
    let refused = "leasehold_worker_results_refused_total";
    // The late result rides on the long-poll w01 sends once awake. The master records (and
    // refuses) it at once, but answers when the poll ends: up to the cluster's 5 s wait when no
    // task is left to end it early. So the limit is longer than that wait (at 5 s, it flaked).
    wait_for_metric(&w01_url, refused, 1.0, Duration::from_secs(12)).await;
    assert_eq!(
        metric(&w01_url, refused).await,
        1.0,
        "w01's late result was not refused:\n{}",
        w01.log_text()
    );
    assert_eq!(cluster.task(ids[2]).await, task3);

    for (n, id) in ids.iter().enumerate() {
        let task = cluster
            .wait_for_state(*id, TaskState::Succeeded, Duration::from_secs(10))
            .await;
        assert_eq!(
            task.result,
            Some(json!(format!("Processed data from task {}", n + 1)))
        );
    }
    let succeeded = r#"leasehold_task_results_total{queue="default",outcome="succeeded"}"#;
    assert_eq!(
        metric(&cluster.url, succeeded).await,
        5.0,
        "each task succeeded exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_keeps_trying_while_the_master_is_down_and_works_once_it_is_up() {
    let port = free_port();
    let absent = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    // A worker pointed at a master that is not there yet.
    let (mut worker, _) = start_worker(&absent, dir.path(), "w01", &[]).await;
    assert!(
        worker.exited_within(Duration::from_secs(2)).await.is_none(),
        "the worker gave up"
    );
    let cluster = Cluster::start_on(port, &[]).await;
    let task = cluster.submit(payload("task data 1")).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(
        done.result,
        Some(json!(format!("Processed data from task {}", task.id)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_delivered_after_a_master_crash_and_restart() {
    let mut cluster = Cluster::start().await;
    let (_worker, _) = cluster.worker("w01", &[]).await;
    let task = SubmitTask {
        lease_secs: Some(30),
        ..SubmitTask::new(json!({ "sleep_ms": 1_500 }))
    };
    let task = cluster.submit(task).await;
    cluster
        .wait_for_state(task.id, TaskState::Leased, Duration::from_secs(10))
        .await;
    // The master dies while the task runs and comes back after the task is done: the worker
    // keeps retrying its result until the master takes it.
    cluster.crash_master(Duration::from_secs(2)).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!((done.attempts, done.worker_id.as_deref()), (1, Some("w01")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_sends_each_result_in_its_next_lease_request() {
    let cluster = Cluster::start().await;
    let (_worker, url) = cluster.worker("w01", &["--concurrency", "1"]).await;
    let mut tasks = Vec::new();
    for n in 1..=10 {
        tasks.push(cluster.submit(payload(&format!("task data {n}"))).await);
    }
    for task in &tasks {
        cluster
            .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(10))
            .await;
    }
    // With one slot, every result is handed over while the loop is leasing (a long-poll goes
    // only once the slot is free): every result rides.
    let sent = |via: &str| format!("leasehold_worker_results_sent_total{{via=\"{via}\"}}");
    assert_eq!(metric(&url, &sent("lease")).await, 10.0);
    assert_eq!(metric(&url, &sent("request")).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_task_longer_than_its_lease_alive() {
    let cluster = Cluster::start().await;
    let (_worker, _) = cluster.worker("w01", &[]).await;
    let task = SubmitTask {
        lease_secs: Some(1),
        ..SubmitTask::new(json!({ "sleep_ms": 3_500 }))
    };
    let task = cluster.submit(task).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(15))
        .await;
    assert_eq!(done.attempts, 1, "the lease never expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_loses_it_to_another_worker_once_the_lease_expires() {
    let cluster = Cluster::start().await;
    let (w01, _) = cluster.worker("w01", &["--concurrency", "1"]).await;
    let task = SubmitTask {
        lease_secs: Some(2),
        ..SubmitTask::new(json!({ "sleep_ms": 1_000 }))
    };
    let task = cluster.submit(task).await;
    let leased = cluster
        .wait_for(task.id, Duration::from_secs(10), |t| t.lease.is_some())
        .await;
    assert_eq!(leased.lease.unwrap().worker_id, "w01");

    w01.signal(Signal::SIGKILL);
    let (_w02, _) = cluster.worker("w02", &["--concurrency", "1"]).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(15))
        .await;
    assert_eq!(done.worker_id.as_deref(), Some("w02"));
    assert_eq!(done.attempts, 2, "w01's lease expired and counted");
}
