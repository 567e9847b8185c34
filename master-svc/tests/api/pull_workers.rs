//! `GET /workers`' `pull_workers`: the workers pulling tasks, as the master heard them (each
//! lease request, accepted heartbeat, result and release) and as the store's leases show them.

use std::time::Duration;

use common::{LeaseRequest, PullWorker, ReportFor, SubmitTask, TaskResult, WorkerRequest};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::roles::spawn_with_tokens;

/// Submits `n` tasks to `queue`, each with a lease of an hour unless the request asks for less
/// (so that moving the clock by minutes expires none).
async fn submit(app: &TestApp, queue: &str, n: usize) {
    for i in 0..n {
        let task = SubmitTask {
            queue: Some(queue.into()),
            lease_secs: Some(3600),
            ..SubmitTask::new(json!(i))
        };
        app.submit_task(task).await;
    }
}

/// Leases up to `max_tasks` from `queues` as `worker`.
async fn lease(
    app: &TestApp,
    worker: &str,
    queues: &[&str],
    max_tasks: u32,
) -> Vec<common::LeasedTask> {
    let request = LeaseRequest {
        queues: Some(queues.iter().map(|q| q.to_string()).collect()),
        max_tasks: Some(max_tasks),
        ..LeaseRequest::new(worker)
    };
    app.lease_with(request).await.tasks
}

fn only(mut workers: Vec<PullWorker>) -> PullWorker {
    assert_eq!(workers.len(), 1, "{workers:?}");
    workers.remove(0)
}

#[tokio::test]
async fn a_worker_that_leased_is_listed_with_the_queues_it_asked_for_and_its_tasks_in_flight() {
    let app = spawn_app().await;
    submit(&app, "q1", 3).await;
    assert!(app.pull_workers().await.is_empty());

    lease(&app, "w01", &["q1", "q2"], 2).await;

    let worker = only(app.pull_workers().await);
    assert_eq!(worker.id, "w01");
    assert_eq!(worker.queues, ["q1", "q2"]);
    assert_eq!(worker.in_flight, 2);
    assert_eq!(worker.last_seen, WorkerRequest::Lease);
    let now_secs = app.now_ms() / 1000;
    assert_eq!(worker.last_seen_at.unix_timestamp(), now_secs);
}

#[tokio::test]
async fn each_request_the_master_accepts_is_what_the_worker_was_last_seen_by() {
    let app = spawn_app().await;
    submit(&app, "default", 3).await;
    let tasks = lease(&app, "w01", &["default"], 3).await;

    let beat = json!({ "lease_id": tasks[0].lease_id });
    assert_eq!(app.heartbeat(tasks[0].task_id.0, &beat).await.status(), 200);
    let worker = only(app.pull_workers().await);
    assert_eq!(
        (worker.last_seen, worker.in_flight),
        (WorkerRequest::Heartbeat, 3)
    );

    assert_eq!(app.succeed(&tasks[0], "w01", json!(1)).await.status(), 200);
    let worker = only(app.pull_workers().await);
    assert_eq!(
        (worker.last_seen, worker.in_flight),
        (WorkerRequest::Result, 2)
    );

    let release = json!({ "lease_id": tasks[1].lease_id });
    assert_eq!(
        app.release(tasks[1].task_id.0, &release).await.status(),
        200
    );
    let worker = only(app.pull_workers().await);
    assert_eq!(
        (worker.last_seen, worker.in_flight),
        (WorkerRequest::Release, 1)
    );

    let report = TaskResult::succeeded(tasks[2].lease_id.clone(), "w01", json!(3));
    let batch = json!({ "results": [ReportFor { task_id: tasks[2].task_id, report }] });
    assert_eq!(app.results(&batch).await.status(), StatusCode::OK);
    let worker = only(app.pull_workers().await);
    assert_eq!(
        (worker.last_seen, worker.in_flight),
        (WorkerRequest::Result, 0)
    );
}

#[tokio::test]
async fn a_refused_request_is_not_heard() {
    let app = spawn_app().await;
    submit(&app, "default", 1).await;
    let task = lease(&app, "w01", &["default"], 1).await.remove(0);

    let stale = app.succeed(&task, "w02", json!(1)).await;

    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let ids: Vec<String> = app.pull_workers().await.into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["w01"]);
}

#[tokio::test]
async fn a_worker_is_no_longer_listed_once_unheard_for_the_seen_time_unless_it_holds_a_lease() {
    let app = spawn_app_with(|config| config.pull_worker_seen_secs = 60).await;
    submit(&app, "default", 1).await;
    let leased_at = app.now_ms();
    lease(&app, "holder", &["default"], 1).await;
    lease(&app, "idle", &["default"], 1).await;

    app.advance(Duration::from_secs(59)).await;
    let ids: Vec<String> = app.pull_workers().await.into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["holder", "idle"]);

    app.advance(Duration::from_secs(1)).await;
    let holder = only(app.pull_workers().await);
    assert_eq!((holder.id.as_str(), holder.in_flight), ("holder", 1));
    // As its lease in the store shows it.
    assert_eq!(holder.last_seen, WorkerRequest::Lease);
    assert_eq!(holder.last_seen_at.unix_timestamp(), leased_at / 1000);
}

#[tokio::test]
async fn a_scoped_token_sees_only_the_workers_of_its_queues_and_of_each_only_those() {
    let tokens = json!([
        { "name": "billing-ro", "token": "b-ro", "role": "read-only", "queues": ["billing-"] },
        { "name": "root", "token": "root", "role": "admin" },
    ]);
    let (mut app, _tokens) = spawn_with_tokens(tokens, |_| {}).await;
    app.token = Some("root".into());
    submit(&app, "billing-eu", 2).await;
    submit(&app, "reports", 3).await;
    lease(&app, "w-billing", &["billing-eu"], 1).await;
    lease(&app, "w-reports", &["reports"], 1).await;
    lease(&app, "w-both", &["reports", "billing-eu"], 3).await;
    assert_eq!(app.pull_workers().await.len(), 3);

    app.token = Some("b-ro".into());
    let seen: Vec<(String, Vec<String>, u32)> = app
        .pull_workers()
        .await
        .into_iter()
        .map(|w| (w.id, w.queues, w.in_flight))
        .collect();

    let billing = vec!["billing-eu".to_string()];
    assert_eq!(
        seen,
        [
            ("w-billing".into(), billing.clone(), 1),
            ("w-both".into(), billing, 1)
        ]
    );
}

#[tokio::test]
async fn a_push_worker_is_listed_once_as_a_push_worker() {
    let app = spawn_app().await;
    let registration = json!({ "id": "w02", "url": "http://127.0.0.1:9" });
    assert_eq!(app.post("/workers", &registration).await.status(), 200);
    // What its feeder, or the worker reporting itself, sends under its id.
    lease(&app, "w02", &["default"], 1).await;
    lease(&app, "w01", &["default"], 1).await;

    let response = app.workers().await;
    let list: common::WorkerList = response.json().await.unwrap();

    let pushed: Vec<&str> = list.workers.iter().map(|w| w.id.as_str()).collect();
    let pulling: Vec<&str> = list.pull_workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!((pushed, pulling), (vec!["w02"], vec!["w01"]));
}
