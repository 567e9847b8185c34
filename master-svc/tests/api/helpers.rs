//! `spawn_app()` and one helper per endpoint.

use std::sync::Arc;
use std::time::Duration;

use common::{
    LeaseRequest, LeaseResponse, LeasedTask, MasterList, Problem, PullWorker, QueueInfo, QueueList,
    SubmitTask, Task, TaskResult, WorkerList,
};
use master_svc::clock::{Clock, ManualClock};
use master_svc::engine::Engine;
use master_svc::{Application, Config};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Which store the tests run on: `LEASEHOLD_TEST_STORE=postgres` runs every one of them on a
/// throwaway PostgreSQL server instead of the default embedded SQLite file.
pub(crate) fn on_postgres() -> bool {
    std::env::var("LEASEHOLD_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// A running master whose clock only moves when the test says so.
#[allow(dead_code)]
pub(crate) struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub engine: Arc<Engine>,
    pub db_dir: TempDir,
    /// Bearer token sent with every request, if set.
    pub token: Option<String>,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a master after `configure` has adjusted its configuration.
pub(crate) async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let db_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_sqlite(
        "127.0.0.1:0".parse().unwrap(),
        &db_dir.path().join("leasehold.db"),
    );
    // The reaper runs when a test calls `advance`, and not on its own: a pass of its own could
    // hold a lease it is expiring (PostgreSQL's row lock) just as the test's pass skips that
    // lease and the test leases again, finding nothing. Its regular pass also nudges waiters,
    // which would hide a missing wake-up.
    config.tick_ms = 3_600_000;
    if on_postgres() {
        config.database_url = leasehold_testkit::postgres::fresh_database_url();
        config.database_max_connections = 4;
    }
    configure(&mut config);
    let clock = Arc::new(ManualClock::new());
    let app = Application::build_with_clock(config, clock.clone())
        .await
        .expect("master starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let engine = app.engine();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        address,
        client: leasehold_client::http_client(),
        clock,
        engine,
        db_dir,
        token: None,
    }
}

#[allow(dead_code)]
impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Response {
        self.authorized(self.client.post(self.url(path)).json(body))
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.authorized(self.client.get(self.url(path)))
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn delete(&self, path: &str) -> Response {
        self.authorized(self.client.delete(self.url(path)))
            .send()
            .await
            .expect("request sent")
    }

    /// Sends `body` as it is, with `content_type` if given: for bodies `post` cannot produce.
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Response {
        let mut request = self.client.post(self.url(path)).body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.authorized(request).send().await.expect("request sent")
    }

    /// Sends `METHOD path` over a connection of its own with the path exactly as written, for
    /// paths an HTTP client would rewrite (`%2e%2e` is `..` to reqwest, which drops it); returns
    /// the status and the problem body.
    pub(crate) async fn raw_request(&self, method: &str, path: &str) -> (u16, Problem) {
        let auth = self
            .token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: master\r\n{auth}Content-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        let (status, head, body) = self.raw_exchange(request.as_bytes()).await;
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        (status, serde_json::from_str(&body).expect("a problem body"))
    }

    /// Sends `request` as it is over a connection of its own and reads the answer until the
    /// master closes it: its status, its head and its body.
    pub(crate) async fn raw_exchange(&self, request: &[u8]) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the master closes the connection")
            .expect("the answer is read");
        let answer = String::from_utf8_lossy(&answer);
        let status = answer[9..12].parse().expect("a status line");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        (status, head.to_owned(), body.to_owned())
    }

    /// Sends a bodiless request with any method.
    pub(crate) async fn request(&self, method: reqwest::Method, path: &str) -> Response {
        self.authorized(self.client.request(method, self.url(path)))
            .send()
            .await
            .expect("request sent")
    }

    /// The master's clock, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Moves the master's clock and runs one reaper pass, as if that much time went by.
    pub(crate) async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.engine.reap(None).await.expect("reaper pass");
    }

    // --- one helper per endpoint -------------------------------------------------------------

    pub(crate) async fn submit(&self, task: &Value) -> Response {
        self.post("/tasks", task).await
    }

    pub(crate) async fn submit_batch(&self, tasks: &[Value]) -> Response {
        self.post("/tasks/batch", &json!({ "tasks": tasks })).await
    }

    pub(crate) async fn get_task(&self, id: i64) -> Response {
        self.get(&format!("/tasks/{id}")).await
    }

    pub(crate) async fn list_tasks(&self, query: &str) -> Response {
        self.get(&format!("/tasks{query}")).await
    }

    pub(crate) async fn cancel(&self, id: i64) -> Response {
        self.delete(&format!("/tasks/{id}")).await
    }

    pub(crate) async fn retry(&self, id: i64) -> Response {
        self.post(&format!("/tasks/{id}/retry"), &json!({})).await
    }

    pub(crate) async fn lease(&self, request: &Value) -> Response {
        self.post("/tasks/lease", request).await
    }

    pub(crate) async fn heartbeat(&self, id: i64, body: &Value) -> Response {
        self.post(&format!("/tasks/{id}/heartbeat"), body).await
    }

    pub(crate) async fn result(&self, id: i64, body: &Value) -> Response {
        self.post(&format!("/tasks/{id}/result"), body).await
    }

    pub(crate) async fn results(&self, body: &Value) -> Response {
        self.post("/tasks/results", body).await
    }

    pub(crate) async fn release(&self, id: i64, body: &Value) -> Response {
        self.post(&format!("/tasks/{id}/release"), body).await
    }

    pub(crate) async fn whoami(&self) -> Response {
        self.get("/whoami").await
    }

    /// `GET /audit` with `query` (`""` or `?limit=2&cursor=9`).
    pub(crate) async fn audit(&self, query: &str) -> Response {
        self.get(&format!("/audit{query}")).await
    }

    pub(crate) async fn queues(&self) -> Response {
        self.get("/queues").await
    }

    pub(crate) async fn metrics(&self) -> Response {
        self.get("/metrics").await
    }

    pub(crate) async fn queue(&self, name: &str) -> Response {
        self.get(&format!("/queues/{name}")).await
    }

    /// `GET /queues/{name}/history` with `query` (`""` or `?window=60`).
    pub(crate) async fn queue_history(&self, name: &str, query: &str) -> Response {
        self.get(&format!("/queues/{name}/history{query}")).await
    }

    /// `GET /activity` with `query` (`""` or `?window=60`).
    pub(crate) async fn activity(&self, query: &str) -> Response {
        self.get(&format!("/activity{query}")).await
    }

    /// `PATCH /queues/{name}` with `patch` as a JSON merge patch.
    pub(crate) async fn patch_queue(&self, name: &str, patch: &Value) -> Response {
        let request = self
            .client
            .patch(self.url(&format!("/queues/{name}")))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string());
        self.authorized(request).send().await.expect("request sent")
    }

    /// Sets `patch` on queue `name`, asserting a `200`; the queue as answered.
    pub(crate) async fn configure(&self, name: &str, patch: Value) -> QueueInfo {
        let response = self.patch_queue(name, &patch).await;
        assert_eq!(response.status(), StatusCode::OK, "PATCH {patch}");
        response.json().await.expect("queue info")
    }

    pub(crate) async fn workers(&self) -> Response {
        self.get("/workers").await
    }

    pub(crate) async fn masters(&self) -> Response {
        self.get("/masters").await
    }

    pub(crate) async fn seal(&self, name: &str) -> Response {
        self.post(&format!("/queues/{name}/seal"), &json!({})).await
    }

    pub(crate) async fn unseal(&self, name: &str) -> Response {
        self.post(&format!("/queues/{name}/unseal"), &json!({}))
            .await
    }

    // --- typed shortcuts ---------------------------------------------------------------------

    /// Submits `payload` to the default queue and returns the new task.
    pub(crate) async fn submit_payload(&self, payload: Value) -> Task {
        let response = self.submit(&json!(SubmitTask::new(payload))).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("a task")
    }

    /// Submits `task` and returns it, asserting it is new.
    pub(crate) async fn submit_task(&self, task: SubmitTask) -> Task {
        let response = self.submit(&json!(task)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("a task")
    }

    /// Sends `request` and returns the leases, asserting a `200`.
    pub(crate) async fn lease_with(&self, request: LeaseRequest) -> LeaseResponse {
        let response = self.lease(&json!(request)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a lease response")
    }

    /// Leases up to `max_tasks` from the default queue without waiting.
    pub(crate) async fn lease_as(&self, worker_id: &str, max_tasks: u32) -> LeaseResponse {
        let request = LeaseRequest {
            max_tasks: Some(max_tasks),
            ..LeaseRequest::new(worker_id)
        };
        let response = self.lease(&json!(request)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a lease response")
    }

    /// Asserts that nothing in the default queue is ready for `worker_id` to lease.
    pub(crate) async fn assert_nothing_to_lease(&self, worker_id: &str) {
        let leased = self.lease_as(worker_id, 256).await;
        assert!(leased.tasks.is_empty(), "unexpected leases: {leased:?}");
    }

    /// Leases exactly one task for `worker_id`.
    pub(crate) async fn lease_one(&self, worker_id: &str) -> LeasedTask {
        let mut leased = self.lease_as(worker_id, 1).await;
        assert_eq!(leased.tasks.len(), 1, "expected one task to lease");
        leased.tasks.remove(0)
    }

    /// Posts a success for `leased` as `worker_id`.
    pub(crate) async fn succeed(
        &self,
        leased: &LeasedTask,
        worker_id: &str,
        result: Value,
    ) -> Response {
        let body = TaskResult::succeeded(leased.lease_id.clone(), worker_id, result);
        self.result(leased.task_id.0, &json!(body)).await
    }

    /// Posts a failure for `leased` as `worker_id`, with `retry` and `retry_after_secs` if given.
    pub(crate) async fn fail(
        &self,
        leased: &LeasedTask,
        worker_id: &str,
        retry: Option<bool>,
        retry_after_secs: Option<u64>,
    ) -> Response {
        let body = TaskResult {
            retry,
            retry_after_secs,
            ..TaskResult::failed(leased.lease_id.clone(), worker_id, "boom")
        };
        self.result(leased.task_id.0, &json!(body)).await
    }

    pub(crate) async fn queue_info(&self, name: &str) -> QueueInfo {
        let response = self.queue(name).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("queue info")
    }

    pub(crate) async fn queue_list(&self) -> Vec<QueueInfo> {
        let response = self.queues().await;
        assert_eq!(response.status(), StatusCode::OK);
        let list: QueueList = response.json().await.expect("a queue list");
        list.queues
    }

    /// `GET /workers`' pulling workers, asserting a `200`.
    pub(crate) async fn pull_workers(&self) -> Vec<PullWorker> {
        let response = self.workers().await;
        assert_eq!(response.status(), StatusCode::OK);
        let list: WorkerList = response.json().await.expect("a worker list");
        list.pull_workers
    }

    /// `GET /masters`, asserting a `200`.
    pub(crate) async fn master_list(&self) -> MasterList {
        let response = self.masters().await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a master list")
    }

    /// Every task the master knows, in full, over all pages.
    pub(crate) async fn all_tasks(&self) -> Vec<Task> {
        let response = self.list_tasks("?limit=1000&view=full").await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: common::TaskPage = response.json().await.expect("a task page");
        assert!(page.next_cursor.is_none(), "more than one page of tasks");
        let full = page.tasks.into_iter().map(common::ListedTask::full);
        full.collect::<Option<_>>().expect("every task in full")
    }

    /// Waits (in real time, briefly) until `n` lease requests are long-polling.
    pub(crate) async fn wait_for_long_polls(&self, n: usize) {
        wait_for(n, "long-polls", || self.engine.waiting()).await;
    }

    /// Waits until `n` requests wait for a task to finish (`wait_secs` on a task).
    pub(crate) async fn wait_for_result_waiters(&self, n: usize) {
        wait_for(n, "result waiters", || self.engine.finish_waiters()).await;
    }

    pub(crate) async fn task(&self, id: i64) -> Task {
        let response = self.get_task(id).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a task")
    }
}

/// Asserts `response` is a problem with `status` and the problem kind `kind`.
#[allow(dead_code)]
pub(crate) async fn assert_problem(response: Response, status: StatusCode, kind: &str) -> Problem {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let problem: Problem = response.json().await.expect("a problem body");
    assert_eq!(problem.status, status.as_u16());
    assert_eq!(problem.kind(), kind, "{problem:?}");
    problem
}

/// Waits (at most 5 s) until `count` reaches `n` waiting requests of the kind `what` names.
async fn wait_for(n: usize, what: &str, count: impl Fn() -> usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while count() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} {what} never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
