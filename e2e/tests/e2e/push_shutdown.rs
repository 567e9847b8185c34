//! The master's shutdown in push mode: on SIGTERM the tasks pushed already get the drain time
//! to have their results recorded, every other task goes back to its queue at once, and the
//! master exits within the drain time.

use std::time::{Duration, Instant};

use common::{SubmitTask, Task, TaskId, TaskState};
use nix::sys::signal::Signal;
use serde_json::json;
use tempfile::TempDir;

use crate::cluster::{
    Cluster, Process, free_port, spawn_master, start_worker, wait_for_metric, wait_ready,
};

/// A master pushing to one `--concurrency` worker as many tasks at once, its push drain time
/// `drain_secs`.
struct PushRun {
    cluster: Cluster,
    worker_url: String,
    _worker: Process,
    _worker_dir: TempDir,
}

async fn push_run(concurrency: &str, drain_secs: &str) -> PushRun {
    let worker_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("http://127.0.0.1:{port}");
    let args = [
        "--no-pull",
        "--handler",
        "process",
        "--concurrency",
        concurrency,
    ];
    let (worker, worker_url) = start_worker(&master, worker_dir.path(), "w1", &args).await;
    let flags = [
        "--push-worker",
        &worker_url,
        "--push-capacity",
        concurrency,
        "--push-drain-secs",
        drain_secs,
    ];
    let cluster = Cluster::start_on(port, &flags).await;
    PushRun {
        cluster,
        worker_url,
        _worker: worker,
        _worker_dir: worker_dir,
    }
}

impl PushRun {
    /// Submits `count` tasks that each run for `sleep_ms`.
    async fn submit(&self, count: usize, sleep_ms: u64) -> Vec<TaskId> {
        let tasks = (0..count)
            .map(|_| SubmitTask::new(json!({ "sleep_ms": sleep_ms })))
            .collect();
        let batch = self.cluster.client.submit_batch(tasks).await.unwrap();
        batch.tasks.iter().map(|t| t.id).collect()
    }

    /// Waits until the worker runs `count` tasks at once.
    async fn wait_until_running(&self, count: f64) {
        let series = "leasehold_worker_tasks_in_flight";
        let running = wait_for_metric(&self.worker_url, series, count, Duration::from_secs(10));
        assert_eq!(running.await, count, "the worker never ran {count} tasks");
    }

    /// Sends the master SIGTERM; returns how long it took to exit, asserting it exited 0
    /// within `limit`.
    async fn stop_master(&mut self, limit: Duration) -> Duration {
        let signalled = Instant::now();
        self.cluster.master.signal(Signal::SIGTERM);
        let status = self.cluster.master.exited_within(limit).await;
        let log = self.cluster.master.log_text();
        let status = status.unwrap_or_else(|| panic!("the master did not exit:\n{log}"));
        assert!(status.success(), "{status}\n{log}");
        signalled.elapsed()
    }

    /// Starts a master again on the same database (pushing to no one), and reads the tasks.
    async fn tasks_after_restart(&mut self, ids: &[TaskId]) -> Vec<Task> {
        let dir = self.cluster.dir.path();
        let database_url = format!("sqlite:{}", dir.join("leasehold.db").display());
        let port = self.cluster.port();
        self.cluster.master = spawn_master(dir, "master-again", port, &database_url, &[], &[]);
        wait_ready(&format!("{}/readyz", self.cluster.url)).await;
        let mut tasks = Vec::new();
        for id in ids {
            tasks.push(self.cluster.task(*id).await);
        }
        tasks
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_pushed_tasks_have_their_results_recorded_and_the_rest_go_back_to_their_queue() {
    let mut run = push_run("2", "10").await;
    let ids = run.submit(6, 1_500).await;
    run.wait_until_running(2.0).await;

    let took = run.stop_master(Duration::from_secs(10)).await;

    assert!(took < Duration::from_secs(5), "the master took {took:?}");
    let tasks = run.tasks_after_restart(&ids).await;
    let succeeded: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.state == TaskState::Succeeded)
        .collect();
    assert!(succeeded.len() >= 2, "the pushed tasks' results: {tasks:?}");
    assert!(
        succeeded
            .iter()
            .all(|t| t.attempts == 1 && t.result.is_some())
    );
    let rest = tasks.iter().filter(|t| t.state != TaskState::Succeeded);
    for task in rest {
        assert_eq!(
            (task.state, task.attempts),
            (TaskState::Queued, 0),
            "a task not pushed is back in its queue, its attempt not counted: {task:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_a_pushed_task_outlasting_the_drain_time_goes_back_and_the_master_exits_in_time()
{
    let mut run = push_run("1", "1").await;
    let ids = run.submit(1, 60_000).await;
    run.wait_until_running(1.0).await;

    let took = run.stop_master(Duration::from_secs(10)).await;

    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "the master took {took:?} with a 1 s drain time"
    );
    let task = &run.tasks_after_restart(&ids).await[0];
    assert_eq!(
        (task.state, task.attempts),
        (TaskState::Queued, 0),
        "handed back, not left leased to a master that is gone: {task:?}"
    );
}
