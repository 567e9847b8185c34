//! The worker's prefetch buffer: leased ahead, but never hoarded, never left to expire, and
//! handed back at once on shutdown.

use std::time::{Duration, Instant};

use common::{SubmitTask, Task, TaskState};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::cluster::{Cluster, metric, wait_for_metric};

fn sleeping(sleep_ms: u64) -> SubmitTask {
    SubmitTask::new(json!({ "sleep_ms": sleep_ms }))
}

/// Submits tasks sleeping `sleeps_ms`, in this order (which is the order they are leased in).
async fn submit_all(cluster: &Cluster, sleeps_ms: &[u64]) -> Vec<Task> {
    let mut tasks = Vec::new();
    for sleep_ms in sleeps_ms {
        tasks.push(cluster.submit(sleeping(*sleep_ms)).await);
    }
    tasks
}

async fn all_succeed(cluster: &Cluster, tasks: &[Task], limit: Duration) -> Vec<Task> {
    let mut done = Vec::new();
    for task in tasks {
        done.push(
            cluster
                .wait_for_state(task.id, TaskState::Succeeded, limit)
                .await,
        );
    }
    done
}

/// 20 quick tasks (they make the worker buffer), one of 4 s, then 4 quick ones: the buffer is
/// full of the last ones while the slow one holds the only slot.
fn quick_slow_quick() -> Vec<u64> {
    let mut sleeps = vec![0; 20];
    sleeps.push(4_000);
    sleeps.extend([0; 4]);
    sleeps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_ten_one_second_tasks_and_finish_in_about_five_seconds() {
    let cluster = Cluster::start().await;
    let tasks = submit_all(&cluster, &[1_000; 10]).await;
    let started = Instant::now();
    // A prefetch far above what one-second tasks need: the buffer follows the pace, not this.
    let args = ["--concurrency", "1", "--prefetch", "16"];
    let (_w01, _) = cluster.worker("w01", &args).await;
    cluster
        .wait_for_state(tasks[0].id, TaskState::Leased, Duration::from_secs(10))
        .await;
    let (_w02, _) = cluster.worker("w02", &args).await;
    let done = all_succeed(&cluster, &tasks, Duration::from_secs(15)).await;
    let took = started.elapsed();
    let by = |id: &str| {
        done.iter()
            .filter(|t| t.worker_id.as_deref() == Some(id))
            .count()
    };
    assert!(
        by("w01") >= 4 && by("w02") >= 4,
        "w01 ran {}, w02 {}",
        by("w01"),
        by("w02")
    );
    assert!(took < Duration::from_millis(6_500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_task_that_waited_half_its_lease_is_handed_back_not_left_to_expire() {
    let cluster = Cluster::start().await;
    let tasks = submit_all(&cluster, &quick_slow_quick()).await;
    let args = ["--concurrency", "1", "--prefetch", "4", "--lease-secs", "2"];
    let (_worker, url) = cluster.worker("w01", &args).await;
    let done = all_succeed(&cluster, &tasks, Duration::from_secs(20)).await;
    let handed_back = metric(&url, "leasehold_worker_tasks_handed_back_total").await;
    assert!(
        handed_back >= 1.0,
        "nothing was buffered behind the slow task"
    );
    for task in done {
        assert_eq!(task.attempts, 1, "no lease expired: {task:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_buffered_tasks_go_back_at_once_without_counting_an_attempt() {
    let cluster = Cluster::start().await;
    let tasks = submit_all(&cluster, &quick_slow_quick()).await;
    let args = [
        "--concurrency",
        "1",
        "--prefetch",
        "4",
        "--drain-secs",
        "10",
    ];
    let (mut worker, url) = cluster.worker("w01", &args).await;
    let slow = &tasks[20];
    cluster
        .wait_for_state(slow.id, TaskState::Leased, Duration::from_secs(10))
        .await;
    let buffered = "leasehold_worker_tasks_buffered";
    let count = wait_for_metric(&url, buffered, 1.0, Duration::from_secs(2)).await;
    assert!(count >= 1.0, "nothing buffered behind the slow task");
    worker.signal(Signal::SIGTERM);
    // Long before the slow task ends, the buffered ones are queued again, no attempt counted.
    let last = &tasks[24];
    let back = cluster
        .wait_for(last.id, Duration::from_secs(2), |t| {
            t.state == TaskState::Queued
        })
        .await;
    assert_eq!(
        (back.state, back.attempts),
        (TaskState::Queued, 0),
        "{back:?}"
    );
    let status = worker
        .exited_within(Duration::from_secs(10))
        .await
        .expect("the worker exits once the slow task is done");
    assert!(status.success(), "{status}");
    cluster
        .wait_for_state(slow.id, TaskState::Succeeded, Duration::from_secs(1))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_carries_its_results_in_lease_requests() {
    let cluster = Cluster::start().await;
    let tasks = cluster
        .client
        .submit_batch(vec![sleeping(0); 1_000])
        .await
        .expect("submitted");
    let (_worker, url) = cluster.worker("w01", &["--concurrency", "8"]).await;
    all_succeed(&cluster, &tasks.tasks, Duration::from_secs(30)).await;
    let sent = |via: &str| format!("leasehold_worker_results_sent_total{{via=\"{via}\"}}");
    let (riding, alone) = (
        metric(&url, &sent("lease")).await,
        metric(&url, &sent("request")).await,
    );
    assert_eq!(riding + alone, 1_000.0);
    // Only the last tasks' results, finishing while the worker long-polls the empty queue,
    // may go on their own.
    assert!(alone <= 16.0, "{alone} results went on their own");
}
