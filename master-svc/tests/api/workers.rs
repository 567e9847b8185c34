//! Push workers and the worker token: a registration creates or renews a registered worker and
//! nothing else, listing and removing are the operator's, registrations are capped, and
//! `--push-allow-cidr` bounds where the master connects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::IntoResponse;
use common::{DoTaskReply, Outcome, Task, TaskState, WorkerInfo, WorkerList, WorkerSource};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

const API_TOKEN: &str = "operator-secret";
const WORKER_TOKEN: &str = "worker-secret";
/// A static worker's URL, which is also its id; nothing listens there.
const STATIC_URL: &str = "http://127.0.0.1:9";

/// A master with both tokens, configured further by `configure`.
async fn spawn_secured_app(configure: impl FnOnce(&mut master_svc::Config)) -> TestApp {
    spawn_app_with(|config| {
        config.api_token = Some(API_TOKEN.into());
        config.worker_token = Some(WORKER_TOKEN.into());
        configure(config);
    })
    .await
}

/// A master with both tokens and one static push worker, configured further by `configure`.
async fn spawn_pushing_app(configure: impl FnOnce(&mut master_svc::Config)) -> TestApp {
    let app = spawn_secured_app(|config| {
        config.push_workers = vec![STATIC_URL.into()];
        configure(config);
    })
    .await;
    wait_for_worker(&app, STATIC_URL).await;
    app
}

async fn send(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

/// `POST /workers` with the worker token.
async fn register(app: &TestApp, id: &str, url: &str) -> Response {
    let registration = json!({ "id": id, "url": url });
    send(
        app,
        WORKER_TOKEN,
        Method::POST,
        "/workers",
        Some(registration),
    )
    .await
}

async fn withdraw(app: &TestApp, token: &str, id: &str) -> Response {
    let path = format!("/workers/{}/registration", urlencode(id));
    send(app, token, Method::DELETE, &path, None).await
}

async fn remove(app: &TestApp, token: &str, id: &str) -> Response {
    let path = format!("/workers/{}", urlencode(id));
    send(app, token, Method::DELETE, &path, None).await
}

/// `GET /workers` with the operator token.
async fn workers(app: &TestApp) -> Vec<WorkerInfo> {
    let response = send(app, API_TOKEN, Method::GET, "/workers", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let list: WorkerList = response.json().await.expect("a worker list");
    list.workers
}

async fn worker(app: &TestApp, id: &str) -> Option<WorkerInfo> {
    workers(app).await.into_iter().find(|w| w.id == id)
}

/// Waits until the master lists `id` (static workers are added as the master starts serving).
async fn wait_for_worker(app: &TestApp, id: &str) {
    for _ in 0..200 {
        if worker(app, id).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("worker {id} never listed");
}

fn urlencode(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn a_registration_under_a_static_workers_id_is_refused_with_409_and_changes_nothing() {
    // Before, it replaced the static worker: its tasks went to the caller's URL.
    let app = spawn_pushing_app(|_| {}).await;

    let response = register(&app, STATIC_URL, "http://127.0.0.1:1").await;

    let problem = assert_problem(response, StatusCode::CONFLICT, "worker-id-reserved").await;
    assert!(problem.detail.unwrap().contains("--push-worker"));
    let kept = worker(&app, STATIC_URL).await.expect("still there");
    assert_eq!(
        (kept.url.as_str(), kept.source),
        (STATIC_URL, WorkerSource::Static)
    );
}

#[tokio::test]
async fn a_dns_discovered_worker_can_be_neither_replaced_nor_withdrawn_by_a_registration() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = spawn_secured_app(|config| config.push_dns = Some(format!("127.0.0.1:{port}"))).await;
    let id = format!("dns:127.0.0.1:{port}");
    wait_for_worker(&app, &id).await;

    let replaced = register(&app, &id, "http://127.0.0.1:1").await;
    let problem = assert_problem(replaced, StatusCode::CONFLICT, "worker-id-reserved").await;
    assert!(problem.detail.unwrap().contains("--push-dns"));
    let withdrawn = withdraw(&app, WORKER_TOKEN, &id).await;
    assert_problem(withdrawn, StatusCode::CONFLICT, "worker-id-reserved").await;
    let kept = worker(&app, &id).await.expect("still there");
    assert_eq!(kept.source, WorkerSource::Dns);
    assert_eq!(kept.url, format!("http://127.0.0.1:{port}"));
}

#[tokio::test]
async fn the_worker_token_can_neither_list_nor_remove_workers() {
    // Before, it could do both, and removed operator-configured workers.
    let app = spawn_pushing_app(|_| {}).await;

    let listed = send(&app, WORKER_TOKEN, Method::GET, "/workers", None).await;
    assert_problem(listed, StatusCode::FORBIDDEN, "forbidden-by-role").await;
    let removed = remove(&app, WORKER_TOKEN, STATIC_URL).await;
    assert_problem(removed, StatusCode::FORBIDDEN, "forbidden-by-role").await;
    let withdrawn = withdraw(&app, WORKER_TOKEN, STATIC_URL).await;
    assert_problem(withdrawn, StatusCode::CONFLICT, "worker-id-reserved").await;
    assert!(worker(&app, STATIC_URL).await.is_some());
}

#[tokio::test]
async fn the_operator_token_removes_a_static_worker() {
    let app = spawn_pushing_app(|_| {}).await;

    let response = remove(&app, API_TOKEN, STATIC_URL).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(worker(&app, STATIC_URL).await.is_none());
}

#[tokio::test]
async fn a_registered_worker_renews_and_withdraws_its_registration_with_the_worker_token() {
    let app = spawn_pushing_app(|_| {}).await;

    for _ in 0..2 {
        assert_eq!(
            register(&app, "pod-a", "http://127.0.0.1:2").await.status(),
            200
        );
    }
    assert_eq!(
        worker(&app, "pod-a").await.unwrap().source,
        WorkerSource::Registered
    );
    let response = withdraw(&app, WORKER_TOKEN, "pod-a").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(worker(&app, "pod-a").await.is_none());
    let again = withdraw(&app, WORKER_TOKEN, "pod-a").await;
    assert_problem(again, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn registrations_beyond_the_cap_are_refused_with_429_until_one_is_withdrawn() {
    // Before, 3,000 registrations in 1.6 s were all accepted.
    let app = spawn_pushing_app(|config| config.max_registered_workers = 2).await;
    for id in ["pod-a", "pod-b"] {
        assert_eq!(register(&app, id, "http://127.0.0.1:2").await.status(), 200);
    }

    let refused = register(&app, "pod-c", "http://127.0.0.1:2").await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "too-many-workers").await;
    let renewed = register(&app, "pod-b", "http://127.0.0.1:3").await;
    assert_eq!(
        renewed.status(),
        StatusCode::OK,
        "a renewal is not a new worker"
    );
    assert_eq!(withdraw(&app, WORKER_TOKEN, "pod-a").await.status(), 204);
    assert_eq!(
        register(&app, "pod-c", "http://127.0.0.1:2").await.status(),
        200
    );
    assert_eq!(
        workers(&app).await.len(),
        3,
        "the static worker is not counted"
    );
}

#[tokio::test]
async fn a_registration_outside_the_allowed_networks_is_refused_with_403() {
    let app = spawn_secured_app(|config| {
        config.push_allow_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;

    // An IPv4 address in IPv6 form is outside the schema's URL pattern: refused before any check.
    let mapped = register(&app, "pod-a", "http://[::ffff:127.0.0.1]:2").await;
    assert_eq!(mapped.status(), StatusCode::BAD_REQUEST);
    for url in ["http://127.0.0.1:2", "http://localhost:2"] {
        let response = register(&app, "pod-a", url).await;
        let problem =
            assert_problem(response, StatusCode::FORBIDDEN, "push-address-not-allowed").await;
        assert!(problem.detail.unwrap().contains("10.0.0.0/8"), "{url}");
    }
    assert!(workers(&app).await.is_empty());
    assert_eq!(
        register(&app, "pod-a", "http://10.1.2.3:2").await.status(),
        200
    );
}

/// A listener that counts the connections made to it and answers each `POST /do-task` with a
/// success.
struct FakeWorker {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl FakeWorker {
    async fn start() -> FakeWorker {
        FakeWorker::answering(|| {
            let reply = DoTaskReply {
                worker_id: "fake".into(),
                outcome: Outcome::Succeeded,
                result: Some(json!("done")),
                error: None,
                retry: false,
                pause_queue_secs: None,
            };
            axum::Json(reply).into_response()
        })
        .await
    }

    /// Answers every request with what `answer` makes.
    async fn answering(
        answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
    ) -> FakeWorker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let app = axum::Router::new().fallback(move || std::future::ready(answer()));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        FakeWorker {
            address,
            connections,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A master with a static push worker named `http://localhost:PORT` and `allow` as the allowed
/// networks; an operator token on its requests.
async fn pushing_by_name(worker: &FakeWorker, allow: &str) -> TestApp {
    let url = format!("http://localhost:{}", worker.address.port());
    let mut app = spawn_app_with(|config| {
        config.api_token = Some(API_TOKEN.into());
        config.push_workers = vec![url.clone()];
        config.push_allow_cidrs = vec![allow.parse().unwrap()];
    })
    .await;
    app.token = Some(API_TOKEN.into());
    wait_for_worker(&app, &url).await;
    app
}

/// Waits until task `id` is in a state `check` accepts, and returns it.
async fn wait_for_task(app: &TestApp, id: i64, check: impl Fn(&Task) -> bool) -> Task {
    for _ in 0..500 {
        let task = app.task(id).await;
        if check(&task) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "task {id} never reached the expected state: {:?}",
        app.task(id).await
    );
}

/// A task whose push failed: back in its queue, delayed a second (the master's clock does not
/// move in these tests, so it stays there).
fn pushed_and_handed_back(task: &Task) -> bool {
    task.state == TaskState::Queued && task.run_at > task.created_at
}

#[tokio::test]
async fn a_push_worker_whose_name_resolves_inside_the_allowed_networks_gets_tasks() {
    let fake = FakeWorker::start().await;
    let app = pushing_by_name(&fake, "127.0.0.0/8").await;

    let task = app.submit_payload(json!(1)).await;

    wait_for_task(&app, task.id.0, |t| t.state == TaskState::Succeeded).await;
    assert!(fake.connections() >= 1);
}

#[tokio::test]
async fn the_master_never_connects_to_an_address_outside_the_allowed_networks() {
    // The name is checked where it is connected to, not only when it was registered: here
    // `localhost` is outside 10.0.0.0/8 at every push, as a rebound name would be.
    let fake = FakeWorker::start().await;
    let app = pushing_by_name(&fake, "10.0.0.0/8").await;

    let task = app.submit_payload(json!(1)).await;

    let task = wait_for_task(&app, task.id.0, pushed_and_handed_back).await;
    assert_eq!(task.attempts, 0);
    assert_eq!(fake.connections(), 0);
}

#[tokio::test]
async fn the_master_does_not_follow_a_push_workers_redirect() {
    // A redirect would let a worker send the task to a host of its choosing.
    let elsewhere = FakeWorker::start().await;
    let location = format!("http://{}/do-task", elsewhere.address);
    let redirecting = FakeWorker::answering(move || {
        axum::response::Redirect::temporary(&location).into_response()
    })
    .await;
    let app = pushing_by_name(&redirecting, "127.0.0.0/8").await;

    let task = app.submit_payload(json!(1)).await;

    wait_for_task(&app, task.id.0, pushed_and_handed_back).await;
    assert!(redirecting.connections() >= 1);
    assert_eq!(elsewhere.connections(), 0);
}
