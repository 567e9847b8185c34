//! Push mode: the master dispatches to workers' `POST /do-task`.

use std::collections::HashSet;
use std::time::Duration;

use common::{SubmitTask, TaskId, TaskState, WorkerSource};
use leasehold_client::MasterClient;
use nix::sys::signal::Signal;
use serde_json::json;
use tempfile::TempDir;

use crate::cluster::{Cluster, Process, free_port, metric, payload, start_worker, start_worker_on};

const SAMPLES: [&str; 5] = [
    "hello world",
    "go rpc is simple",
    "learn by example",
    "concurrency is fun",
    "master worker pattern",
];

async fn all_succeed(cluster: &Cluster, ids: &[TaskId]) -> Vec<common::Task> {
    let mut done = Vec::new();
    for id in ids {
        done.push(
            cluster
                .wait_for_state(*id, TaskState::Succeeded, Duration::from_secs(30))
                .await,
        );
    }
    done
}

/// Polls `GET /workers` until `check` holds for the worker `id`.
async fn wait_for_worker(cluster: &Cluster, id: &str, check: impl Fn(&common::WorkerInfo) -> bool) {
    for _ in 0..200 {
        let workers = cluster.client.workers().await.unwrap().workers;
        if workers.iter().any(|w| w.id == id && check(w)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "worker {id} never reached the expected state: {:?}",
        cluster.client.workers().await
    );
}

/// A master pushing to one worker.
struct PushedTo {
    cluster: Cluster,
    /// The worker's URL, which is also its id on the master.
    url: String,
    _worker: Process,
    _dir: TempDir,
}

/// Starts a push-only worker with `worker_args` and a master pushing to it with `flags` besides
/// `--push-worker`.
async fn one_push_worker(worker_args: &[&str], flags: &[&str]) -> PushedTo {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("http://127.0.0.1:{port}");
    let args: Vec<&str> = ["--no-pull"].iter().chain(worker_args).copied().collect();
    let (worker, url) = start_worker(&master, dir.path(), "w1", &args).await;
    let flags: Vec<&str> = ["--push-worker", url.as_str()]
        .iter()
        .chain(flags)
        .copied()
        .collect();
    let cluster = Cluster::start_on(port, &flags).await;
    PushedTo {
        cluster,
        url,
        _worker: worker,
        _dir: dir,
    }
}

/// Pushes a 3 s task with a 1 s lease; returns it once it succeeded.
async fn a_task_outliving_its_lease(pushed: &PushedTo) -> common::Task {
    let task = SubmitTask {
        lease_secs: Some(1),
        ..SubmitTask::new(json!({ "sleep_ms": 3_000 }))
    };
    let task = pushed.cluster.submit(task).await;
    pushed
        .cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(15))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_push_example_uppercases_five_tasks_over_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("http://127.0.0.1:{port}");
    let args = [
        "--no-pull",
        "--handler",
        "uppercase",
        "--worker-token",
        "push-secret",
    ];
    let (_w1, url1) = start_worker(&master, dir.path(), "w1", &args).await;
    let (_w2, url2) = start_worker(&master, dir.path(), "w2", &args).await;
    let flags = [
        "--push-worker",
        &url1,
        "--push-worker",
        &url2,
        "--worker-token",
        "push-secret",
    ];
    let cluster = Cluster::start_on(port, &flags).await;
    let mut ids = Vec::new();
    for text in SAMPLES {
        ids.push(cluster.submit(payload(text)).await.id);
        // Staggered like the original master's dispatch loop.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = all_succeed(&cluster, &ids).await;
    for (task, text) in done.iter().zip(SAMPLES) {
        assert_eq!(task.result, Some(json!(text.to_uppercase())));
        assert_eq!(task.attempts, 1);
    }
    let workers: HashSet<_> = done.iter().map(|t| t.worker_id.clone().unwrap()).collect();
    assert_eq!(
        workers,
        HashSet::from([url1, url2]),
        "spread over both workers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing_and_is_back_in_rotation_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("http://127.0.0.1:{port}");
    let args = ["--no-pull", "--handler", "process", "--concurrency", "4"];
    let (_w1, url1) = start_worker(&master, dir.path(), "w1", &args).await;
    let w2_port = free_port();
    let (w2, url2) = start_worker_on(w2_port, &master, dir.path(), "w2", &args).await;
    let flags = [
        "--push-worker",
        &url1,
        "--push-worker",
        &url2,
        "--push-capacity",
        "4",
    ];
    let cluster = Cluster::start_on(port, &flags).await;
    let tasks = (0..12)
        .map(|_| SubmitTask::new(json!({ "sleep_ms": 1_000 })))
        .collect();
    let ids: Vec<TaskId> = cluster
        .client
        .submit_batch(tasks)
        .await
        .unwrap()
        .tasks
        .iter()
        .map(|t| t.id)
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    w2.signal(Signal::SIGKILL);
    drop(w2);
    let done = all_succeed(&cluster, &ids).await;
    assert!(
        done.iter().all(|t| t.attempts == 1),
        "a pushed task that was not run counts no attempt"
    );
    let succeeded = r#"leasehold_task_results_total{queue="default",outcome="succeeded"}"#;
    assert_eq!(
        metric(&cluster.url, succeeded).await,
        12.0,
        "every task succeeded exactly once"
    );
    wait_for_worker(&cluster, &url2, |w| !w.healthy).await;
    let (_w2, _) = start_worker_on(w2_port, &master, dir.path(), "w2-again", &args).await;
    wait_for_worker(&cluster, &url2, |w| w.healthy).await;
    let task = cluster.submit(SubmitTask::new(json!({}))).await;
    cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_answering_429_delays_tasks_without_counting_failures() {
    // The master believes the worker takes three at once; it takes one.
    let args = ["--handler", "process", "--concurrency", "1"];
    let pushed = one_push_worker(&args, &["--push-capacity", "3"]).await;
    let cluster = &pushed.cluster;
    let tasks = (0..4)
        .map(|_| SubmitTask::new(json!({ "sleep_ms": 300 })))
        .collect();
    let batch = cluster.client.submit_batch(tasks).await.unwrap();
    let ids: Vec<TaskId> = batch.tasks.iter().map(|t| t.id).collect();
    let done = all_succeed(cluster, &ids).await;
    assert!(
        done.iter().all(|t| t.attempts == 1 && t.error.is_none()),
        "{done:?}"
    );
    let busy = r#"leasehold_push_dispatches_total{outcome="busy"}"#;
    assert!(
        metric(&cluster.url, busy).await >= 1.0,
        "the worker never answered 429"
    );
    let workers = cluster.client.workers().await.unwrap().workers;
    assert!(workers[0].healthy, "429 is not a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_registers_itself_receives_tasks_and_withdraws_on_shutdown() {
    let cluster = Cluster::start().await;
    let args = [
        "--no-pull",
        "--handler",
        "uppercase",
        "--register",
        &cluster.url,
    ];
    let (mut worker, url) = cluster.worker("pod-a", &args).await;
    wait_for_worker(&cluster, "pod-a", |w| {
        w.source == WorkerSource::Registered && w.url == url
    })
    .await;
    let task = cluster.submit(payload("hello world")).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
    assert_eq!(
        (done.result, done.worker_id.as_deref()),
        (Some(json!("HELLO WORLD")), Some("pod-a"))
    );
    worker.signal(Signal::SIGTERM);
    assert!(
        worker
            .exited_within(Duration::from_secs(10))
            .await
            .unwrap()
            .success()
    );
    assert!(cluster.client.workers().await.unwrap().workers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_registered_with_the_worker_token_withdraws_on_shutdown() {
    // Removing a worker is the operator's (`DELETE /workers/{id}`, which answers the worker
    // token 403); a worker withdraws its own registration (`DELETE /workers/{id}/registration`).
    let flags = ["--api-token", "op-secret", "--worker-token", "wk-secret"];
    let mut cluster = Cluster::start_on(free_port(), &flags).await;
    cluster.client = MasterClient::new(&cluster.url, Some("op-secret".into()));
    let register = ["--no-pull", "--register", &cluster.url];
    let args: Vec<&str> = register
        .into_iter()
        .chain(["--handler", "uppercase", "--worker-token", "wk-secret"])
        .collect();
    let (mut worker, _) = cluster.worker("pod-a", &args).await;
    wait_for_worker(&cluster, "pod-a", |w| w.source == WorkerSource::Registered).await;

    worker.signal(Signal::SIGTERM);

    let exited = worker.exited_within(Duration::from_secs(10)).await;
    assert!(exited.unwrap().success());
    let workers = cluster.client.workers().await.unwrap().workers;
    assert!(workers.is_empty(), "{workers:?}\n{}", worker.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_found_through_dns_receive_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let worker_port = free_port();
    let master = format!("http://127.0.0.1:{port}");
    let args = ["--no-pull", "--handler", "uppercase"];
    let (_w, _) = start_worker_on(worker_port, &master, dir.path(), "w1", &args).await;
    let name = format!("localhost:{worker_port}");
    let flags = ["--push-dns", &name, "--push-dns-interval-secs", "1"];
    let cluster = Cluster::start_on(port, &flags).await;
    let id = format!("dns:127.0.0.1:{worker_port}");
    wait_for_worker(&cluster, &id, |w| w.source == WorkerSource::Dns).await;
    let task = cluster.submit(payload("learn by example")).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(15))
        .await;
    assert_eq!(done.result, Some(json!("LEARN BY EXAMPLE")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_worker_answers_202_heartbeats_past_the_push_timeout_and_reports_itself() {
    let args = ["--push-async", "--handler", "process"];
    let pushed = one_push_worker(&args, &["--push-timeout-secs", "1"]).await;
    let done = a_task_outliving_its_lease(&pushed).await;
    assert_eq!(
        done.attempts, 1,
        "the lease was kept alive past the push timeout"
    );
    assert_eq!(done.worker_id.as_deref(), Some(pushed.url.as_str()));
    let cluster = &pushed.cluster;
    let accepted = r#"leasehold_push_dispatches_total{outcome="accepted"}"#;
    assert_eq!(metric(&cluster.url, accepted).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_renews_a_pushed_task_running_longer_than_its_lease() {
    let pushed = one_push_worker(&["--handler", "process"], &[]).await;
    let done = a_task_outliving_its_lease(&pushed).await;
    assert_eq!(
        done.attempts, 1,
        "the lease never expired while the worker ran it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_leased_ahead_for_a_busy_worker_goes_to_another_worker_within_a_second_or_so() {
    let args = ["--handler", "process", "--concurrency", "1"];
    let pushed = one_push_worker(&args, &["--push-capacity", "1"]).await;
    let cluster = &pushed.cluster;
    let slow = cluster
        .submit(SubmitTask::new(json!({ "sleep_ms": 6_000 })))
        .await;
    cluster
        .wait_for_state(slow.id, TaskState::Leased, Duration::from_secs(5))
        .await;
    // Leased ahead for the busy worker, whose only slot is taken for 6 s.
    let quick = cluster.submit(SubmitTask::new(json!({}))).await;
    let (_puller, _) = cluster
        .worker("puller", &["--handler", "process", "--concurrency", "1"])
        .await;
    let done = cluster
        .wait_for_state(quick.id, TaskState::Succeeded, Duration::from_secs(3))
        .await;
    assert_eq!(done.worker_id.as_deref(), Some("puller"));
    assert_eq!(cluster.task(slow.id).await.state, TaskState::Leased);
}
