//! Handlers end to end: exec and http sidecar.

use std::time::Duration;

use axum::response::IntoResponse;
use axum::{Json, Router, routing::post};
use common::{SubmitTask, TaskState};
use serde_json::{Value, json};

use crate::cluster::{Cluster, payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_handler_gets_the_payload_and_its_stdout_is_the_result() {
    let cluster = Cluster::start().await;
    let handler = r#"exec:python3 -c 'import json,sys,os; p=json.load(sys.stdin); print(json.dumps({"sum": sum(p), "task": int(os.environ["TASK_ID"])}))'"#;
    let (_worker, _) = cluster.worker("w01", &["--handler", handler]).await;
    let task = cluster.submit(SubmitTask::new(json!([1, 2, 3]))).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
    assert_eq!(done.result, Some(json!({ "sum": 6, "task": task.id.0 })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_exec_handler_fails_the_task_with_its_stderr_once_attempts_run_out() {
    let cluster = Cluster::start_on(
        crate::cluster::free_port(),
        &["--retry-backoff-base-ms", "10"],
    )
    .await;
    let (_worker, _) = cluster
        .worker(
            "w01",
            &["--handler", "exec:echo 'no such file' >&2; exit 2"],
        )
        .await;
    let task = cluster
        .submit(SubmitTask {
            max_attempts: Some(2),
            ..payload("x")
        })
        .await;
    let failed = cluster
        .wait_for_state(task.id, TaskState::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(failed.attempts, 2);
    assert!(failed.error.unwrap().ends_with("no such file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_handler_posts_the_payload_to_its_sidecar() {
    let sidecar = Router::new().route(
        "/work",
        post(|Json(payload): Json<Value>| async move { Json(json!({ "echo": payload })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sidecar_url = format!("http://{}/work", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sidecar).await });
    let cluster = Cluster::start().await;
    let handler = format!("http:{sidecar_url}");
    let (_worker, _) = cluster.worker("w01", &["--handler", &handler]).await;
    let task = cluster.submit(payload("hello world")).await;
    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
    assert_eq!(done.result, Some(json!({ "echo": "hello world" })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_handler_over_its_time_limit_is_killed_and_the_task_fails() {
    let cluster = Cluster::start().await;
    let pid_file = cluster.dir.path().join("sleeper.pid");
    let handler = format!("exec:sleep 30 & echo $! > {}; wait", pid_file.display());
    let args = ["--task-timeout-secs", "1", "--handler", &handler];
    let (_worker, _) = cluster.worker("w01", &args).await;
    let task = cluster
        .submit(SubmitTask {
            max_attempts: Some(1),
            ..payload("x")
        })
        .await;
    let failed = cluster
        .wait_for_state(task.id, TaskState::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(failed.error.as_deref(), Some("timed out after 1 s"));

    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sleeper = nix::unistd::Pid::from_raw(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while nix::sys::signal::kill(sleeper, None).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command's child outlived it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_answers_429_with_retry_after_pauses_the_queue_for_every_worker() {
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = calls.clone();
    let sidecar = Router::new().route(
        "/work",
        post(move |Json(payload): Json<Value>| {
            let seen = seen.clone();
            async move {
                let first = {
                    let mut calls = seen.lock().unwrap();
                    calls.push(Instant::now());
                    calls.len() == 1
                };
                if first {
                    let headers = [("retry-after", "2")];
                    return (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        headers,
                        "slow down",
                    )
                        .into_response();
                }
                Json(json!({ "echo": payload })).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sidecar_url = format!("http://{}/work", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sidecar).await });
    let cluster = Cluster::start().await;
    let handler = format!("http:{sidecar_url}");
    let args = ["--handler", &handler, "--concurrency", "1"];
    let (_w1, _) = cluster.worker("w01", &args).await;
    let (_w2, _) = cluster.worker("w02", &args).await;
    // One task meets the 429; the others come once the queue is paused, so that no worker
    // has them leased already (a pause stops new leases, not those out).
    let mut tasks = vec![cluster.submit(payload("t0")).await];
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster
        .client
        .queue("default")
        .await
        .unwrap()
        .paused_until
        .is_none()
    {
        assert!(Instant::now() < deadline, "the queue was never paused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 1..3 {
        tasks.push(cluster.submit(payload(&format!("t{n}"))).await);
    }
    for task in &tasks {
        cluster
            .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(15))
            .await;
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "three tasks, one of them twice");
    let quiet = calls[1] - calls[0];
    assert!(
        quiet >= Duration::from_millis(1_900),
        "a call came {quiet:?} after the 429"
    );
}
