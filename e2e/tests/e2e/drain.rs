//! Shutdown: SIGTERM drains; nothing is lost or failed.

use std::time::Duration;

use common::{SubmitTask, TaskState};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::cluster::{Cluster, Process, wait_for_metric};

fn slow_task(sleep_ms: u64) -> SubmitTask {
    SubmitTask::new(json!({ "sleep_ms": sleep_ms }))
}

/// Waits until the worker at `url` runs a task: leased is not enough, the lease's answer may
/// still be on its way to the worker.
async fn wait_until_running(url: &str) {
    let running = "leasehold_worker_tasks_in_flight";
    let in_flight = wait_for_metric(url, running, 1.0, Duration::from_secs(10)).await;
    assert!(in_flight >= 1.0, "the worker at {url} never ran a task");
}

/// Sends SIGTERM; asserts the worker exits 0 within 8 s.
async fn terminate(worker: &mut Process) {
    worker.signal(Signal::SIGTERM);
    let status = worker
        .exited_within(Duration::from_secs(8))
        .await
        .expect("worker exits");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_a_running_task_finishes_and_the_worker_exits_zero() {
    let cluster = Cluster::start().await;
    let (mut worker, url) = cluster.worker("w01", &["--drain-secs", "10"]).await;
    let task = cluster.submit(slow_task(1_500)).await;
    wait_until_running(&url).await;
    worker.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = leasehold_client::http_client()
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "a draining worker is not ready");
    // No new work is taken while draining.
    let other = cluster.submit(slow_task(0)).await;
    let status = worker
        .exited_within(Duration::from_secs(10))
        .await
        .expect("worker exits");
    assert!(status.success(), "{status}");
    cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(1))
        .await;
    assert_eq!(cluster.task(other.id).await.state, TaskState::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_still_running_when_the_drain_time_is_up_is_released_not_failed() {
    let cluster = Cluster::start().await;
    let (mut worker, url) = cluster.worker("w01", &["--drain-secs", "1"]).await;
    let task = cluster.submit(slow_task(30_000)).await;
    wait_until_running(&url).await;
    terminate(&mut worker).await;
    let released = cluster.task(task.id).await;
    assert_eq!(released.state, TaskState::Queued, "{}", worker.log_text());
    assert_eq!(released.attempts, 0, "a released attempt is not counted");
    assert_eq!(released.error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_leased_as_the_worker_stops_is_handed_back_not_left_leased() {
    let cluster = Cluster::start().await;
    let (mut worker, _) = cluster.worker("w01", &["--drain-secs", "1"]).await;
    let task = cluster.submit(slow_task(30_000)).await;
    // Stopped as soon as the master has leased it: the answer may still be on its way. (Before,
    // an answer that lost the race to the signal was dropped, and the task stayed leased until
    // its lease expired: one run in six with the other drain tests.)
    cluster
        .wait_for_state(task.id, TaskState::Leased, Duration::from_secs(10))
        .await;
    terminate(&mut worker).await;
    let after = cluster.task(task.id).await;
    assert_eq!(
        (after.state, after.attempts),
        (TaskState::Queued, 0),
        "{}",
        worker.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_exit_when_drained_the_worker_exits_zero_once_its_sealed_queue_is_empty() {
    let cluster = Cluster::start().await;
    let (mut worker, _) = cluster.worker("w01", &["--exit-when-drained"]).await;
    let task = cluster.submit(slow_task(100)).await;
    cluster.client.seal("default").await.unwrap();
    let status = worker
        .exited_within(Duration::from_secs(10))
        .await
        .expect("worker exits");
    assert!(status.success(), "{status}");
    assert_eq!(cluster.task(task.id).await.state, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_task_stops_its_process_and_cancels_it() {
    let cluster = Cluster::start().await;
    let marker = cluster.dir.path().join("finished");
    let handler = format!("exec:sleep 3; touch {}", marker.display());
    let (_worker, _) = cluster.worker("w01", &["--handler", &handler]).await;
    let task = cluster
        .submit(SubmitTask {
            lease_secs: Some(1),
            ..slow_task(0)
        })
        .await;
    cluster
        .wait_for_state(task.id, TaskState::Leased, Duration::from_secs(10))
        .await;
    cluster.client.cancel(task.id).await.unwrap();
    cluster
        .wait_for_state(task.id, TaskState::Cancelled, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !marker.exists(),
        "the command kept running after the task was cancelled"
    );
}
