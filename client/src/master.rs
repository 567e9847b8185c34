//! `MasterClient`: the typed HTTP client of the master's API, one method per endpoint. The
//! worker, the tests and the benchmark all talk to the master through it.

use std::time::Duration;

use common::{
    AuditPage, BatchSubmitted, BulkRequest, Heartbeat, HeartbeatAck, HistoryWindow, LeaseId,
    LeaseRequest, LeaseResponse, ListAudit, ListOperations, ListTasks, MasterList, Operation,
    OperationAccepted, OperationList, Probe, Problem, QueueHistory, QueueInfo, QueueList,
    RegisterWorker, Release, ReportBatch, ReportBatchReply, ReportFor, SubmitBatch, SubmitTask,
    Task, TaskAttempts, TaskId, TaskPage, TaskResult, WhoAmI, WorkerInfo, WorkerList,
};
use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::error::ClientError;
use crate::tls::http_client_builder;

/// How long a request may take beyond any long-poll wait it asks for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a lease in flight when the worker stops may still take to be answered.
const ANSWER_GRACE: Duration = Duration::from_millis(500);
/// The media type of a JSON merge patch (RFC 7396), what `PATCH /queues/{name}` takes.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// A client of one master.
#[derive(Debug, Clone)]
pub struct MasterClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

impl MasterClient {
    /// A client of the master at `base_url` (e.g. `http://127.0.0.1:8080`), sending `token`,
    /// if any, as a bearer token on every request.
    pub fn new(base_url: &str, token: Option<String>) -> MasterClient {
        let http = http_client_builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a client with a preconfigured TLS backend always builds");
        MasterClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The master's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /tasks`: submits one task (an existing `idempotency_key` returns its task).
    pub async fn submit(&self, task: &SubmitTask) -> Result<Task, ClientError> {
        self.send(self.post("/tasks").json(task)).await
    }

    /// `POST /tasks/batch`: submits many tasks in one commit.
    pub async fn submit_batch(
        &self,
        tasks: Vec<SubmitTask>,
    ) -> Result<BatchSubmitted, ClientError> {
        self.send(self.post("/tasks/batch").json(&SubmitBatch { tasks }))
            .await
    }

    /// `GET /tasks/{id}`: one task.
    pub async fn task(&self, id: TaskId) -> Result<Task, ClientError> {
        self.send(self.with_token(self.http.get(self.url(&format!("/tasks/{id}")))))
            .await
    }

    /// `GET /tasks/{id}?wait_secs=`: the task once it is finished, or as it is after `wait_secs`
    /// (at most 60).
    pub async fn wait_for(&self, id: TaskId, wait_secs: u64) -> Result<Task, ClientError> {
        let url = self.url(&format!("/tasks/{id}?wait_secs={wait_secs}"));
        let wait = Duration::from_secs(wait_secs);
        self.send(
            self.with_token(self.http.get(url))
                .timeout(wait + REQUEST_TIMEOUT),
        )
        .await
    }

    /// `GET /tasks/{id}/attempts`: every lease of the task, and what fencing refused for each.
    pub async fn attempts(&self, id: TaskId) -> Result<TaskAttempts, ClientError> {
        let url = self.url(&format!("/tasks/{id}/attempts"));
        self.send(self.with_token(self.http.get(url))).await
    }

    /// Cancels a task (`DELETE /tasks/{id}`).
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ClientError> {
        let url = self.url(&format!("/tasks/{id}"));
        self.send(self.with_token(self.http.delete(url))).await
    }

    /// `GET /tasks`: a page of tasks in id order; pass its `next_cursor` as the next query's
    /// `cursor` for the next page.
    pub async fn list(&self, query: &ListTasks) -> Result<TaskPage, ClientError> {
        let request = self.http.get(self.url("/tasks")).query(query);
        self.send(self.with_token(request)).await
    }

    /// `GET /whoami`: the name, role and queue scope of this client's token.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.send(self.with_token(self.http.get(self.url("/whoami"))))
            .await
    }

    /// `GET /audit`: a page of the audit log, newest first; pass its `next_cursor` as the next
    /// query's `cursor` for older entries.
    pub async fn audit(&self, query: &ListAudit) -> Result<AuditPage, ClientError> {
        let request = self.http.get(self.url("/audit")).query(query);
        self.send(self.with_token(request)).await
    }

    /// `POST /tasks/{id}/retry`: puts a failed or cancelled task back, with fresh attempts.
    pub async fn retry(&self, id: TaskId) -> Result<Task, ClientError> {
        self.send(self.post(&format!("/tasks/{id}/retry"))).await
    }

    /// `POST /tasks/bulk`: starts a bulk action on every task a filter matches.
    pub async fn bulk(&self, request: &BulkRequest) -> Result<Operation, ClientError> {
        let accepted: OperationAccepted = self.send(self.post("/tasks/bulk").json(request)).await?;
        Ok(accepted.operation)
    }

    /// `GET /operations/{id}`: a bulk operation and its progress.
    pub async fn operation(&self, id: i64) -> Result<Operation, ClientError> {
        let url = self.url(&format!("/operations/{id}"));
        self.send(self.with_token(self.http.get(url))).await
    }

    /// `GET /operations`: the most recent bulk operations, newest first.
    pub async fn operations(&self, limit: Option<u32>) -> Result<OperationList, ClientError> {
        let request = self
            .http
            .get(self.url("/operations"))
            .query(&ListOperations { limit });
        self.send(self.with_token(request)).await
    }

    /// `GET /queues`: every queue's counts per state.
    pub async fn queues(&self) -> Result<QueueList, ClientError> {
        let url = self.url("/queues");
        self.send(self.with_token(self.http.get(url))).await
    }

    /// Seals a queue: it takes no new tasks, and drained leasers hear `no_more_tasks`.
    pub async fn seal(&self, queue: &str) -> Result<QueueInfo, ClientError> {
        self.send(self.post(&format!("/queues/{queue}/seal"))).await
    }

    /// Unseals a queue: it takes new tasks again.
    pub async fn unseal(&self, queue: &str) -> Result<QueueInfo, ClientError> {
        self.send(self.post(&format!("/queues/{queue}/unseal")))
            .await
    }

    /// Registers (or renews) this worker for push dispatch.
    pub async fn register_worker(
        &self,
        registration: &RegisterWorker,
    ) -> Result<WorkerInfo, ClientError> {
        self.send(self.post("/workers").json(registration)).await
    }

    /// `GET /workers`: the push workers the master knows, and the pulling workers seen lately
    /// or holding leases.
    pub async fn workers(&self) -> Result<WorkerList, ClientError> {
        let url = self.url("/workers");
        self.send(self.with_token(self.http.get(url))).await
    }

    /// `GET /masters`: the store, and the masters sharing it (heartbeats at most 30 s old).
    pub async fn masters(&self) -> Result<MasterList, ClientError> {
        let url = self.url("/masters");
        self.send(self.with_token(self.http.get(url))).await
    }

    /// Withdraws a registration (`DELETE /workers/{id}/registration`, which the worker token
    /// opens; removing any worker is the operator's `DELETE /workers/{id}`).
    pub async fn deregister_worker(&self, id: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/workers/{id}/registration"));
        let response = self.with_token(self.http.delete(url)).send().await?;
        match response.status() {
            status if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
            status => Err(ClientError::Unavailable(status.as_u16())),
        }
    }

    /// `DELETE /workers/{id}`: the operator removes any push worker, of any source.
    pub async fn remove_worker(&self, id: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/workers/{id}"));
        let response = self.with_token(self.http.delete(url)).send().await?;
        self.read_empty(response).await
    }

    /// `GET /queues/{name}`: counts per state.
    pub async fn queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        let url = self.url(&format!("/queues/{name}"));
        self.send(self.with_token(self.http.get(url))).await
    }

    /// `GET /queues/{name}/history`: the queue's activity per 10-second step over the last
    /// `window_secs` (10 to 3600; the master's default, an hour, when `None`), oldest first.
    pub async fn queue_history(
        &self,
        name: &str,
        window_secs: Option<u32>,
    ) -> Result<QueueHistory, ClientError> {
        let request = self
            .http
            .get(self.url(&format!("/queues/{name}/history")))
            .query(&HistoryWindow {
                window: window_secs,
            });
        self.send(self.with_token(request)).await
    }

    /// `PATCH /queues/{name}`: changes a queue's flow control by a JSON merge patch of its
    /// settings (a field sent is set, one sent as `null` removed, one left out kept); answers
    /// the queue with its settings. A queue can be configured before it has tasks.
    pub async fn patch_queue(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<QueueInfo, ClientError> {
        let url = self.url(&format!("/queues/{name}"));
        let request = self.http.patch(url).header(CONTENT_TYPE, MERGE_PATCH);
        self.send(self.with_token(request).body(patch.to_string()))
            .await
    }

    /// Pauses a queue: it leases nothing until resumed, but still takes new tasks.
    pub async fn pause_queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        self.send(self.post(&format!("/queues/{name}/pause"))).await
    }

    /// Resumes a queue, also ending a pause a worker's result asked for.
    pub async fn resume_queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        self.send(self.post(&format!("/queues/{name}/resume")))
            .await
    }

    /// Leases tasks; the request may wait up to `request.wait_secs` for one.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<LeaseResponse, ClientError> {
        self.send(self.lease_request(request)).await
    }

    /// As [`lease`](Self::lease), but given up (`None`) if `stop` is cancelled and the master
    /// has not begun to answer within [`ANSWER_GRACE`]: a long-poll with nothing to lease is
    /// dropped, while an answer the master was just sending (its leases committed) is read to
    /// the end, and the tasks in it are the caller's to run or release. Only an answer slower
    /// than the grace leaves its tasks to wait for their leases to expire.
    pub async fn lease_unless(
        &self,
        request: &LeaseRequest,
        stop: &CancellationToken,
    ) -> Option<Result<LeaseResponse, ClientError>> {
        let sent = self.lease_request(request).send();
        tokio::pin!(sent);
        let response = tokio::select! {
            biased;
            response = &mut sent => response,
            () = stop.cancelled() => tokio::time::timeout(ANSWER_GRACE, sent).await.ok()?,
        };
        Some(match response {
            Ok(response) => self.read(response).await,
            Err(e) => Err(e.into()),
        })
    }

    fn lease_request(&self, request: &LeaseRequest) -> RequestBuilder {
        let wait = Duration::from_secs(request.wait_secs.unwrap_or(0));
        let builder = self.post("/tasks/lease").json(request);
        builder.timeout(wait + REQUEST_TIMEOUT)
    }

    /// `POST /tasks/{id}/heartbeat`: renews a lease, for `lease_secs` or the task's own
    /// length; the answer says whether an operator cancelled the task meanwhile.
    pub async fn heartbeat(
        &self,
        id: TaskId,
        lease_id: &LeaseId,
        lease_secs: Option<u64>,
    ) -> Result<HeartbeatAck, ClientError> {
        let body = Heartbeat {
            lease_id: lease_id.clone(),
            lease_secs,
        };
        self.send(self.post(&format!("/tasks/{id}/heartbeat")).json(&body))
            .await
    }

    /// `POST /tasks/{id}/result`: reports a leased task's result (fenced by its lease id).
    pub async fn result(&self, id: TaskId, result: &TaskResult) -> Result<Task, ClientError> {
        self.send(self.post(&format!("/tasks/{id}/result")).json(result))
            .await
    }

    /// Reports many results in one request; each is answered on its own.
    pub async fn results(&self, results: Vec<ReportFor>) -> Result<ReportBatchReply, ClientError> {
        self.send(self.post("/tasks/results").json(&ReportBatch { results }))
            .await
    }

    /// `POST /tasks/{id}/release`: hands a leased task back without counting a failure.
    pub async fn release(
        &self,
        id: TaskId,
        lease_id: &LeaseId,
        delay_secs: Option<u64>,
    ) -> Result<Task, ClientError> {
        let body = Release {
            lease_id: lease_id.clone(),
            delay_secs,
        };
        self.send(self.post(&format!("/tasks/{id}/release")).json(&body))
            .await
    }

    /// `GET /healthz`: the master answers.
    pub async fn healthz(&self) -> Result<Probe, ClientError> {
        self.send(self.http.get(self.url("/healthz")).timeout(REQUEST_TIMEOUT))
            .await
    }

    /// `GET /readyz`: the master's store takes writes (`Unavailable(503)` while it does not).
    pub async fn readyz(&self) -> Result<Probe, ClientError> {
        self.send(self.http.get(self.url("/readyz")).timeout(REQUEST_TIMEOUT))
            .await
    }

    /// `GET /metrics`: the Prometheus text (this client's token is sent: a master with
    /// `--metrics-token` needs that one).
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = self
            .with_token(self.http.get(self.url("/metrics")))
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.text().await?);
        }
        Err(self.refusal(response).await)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.with_token(self.http.post(self.url(path)))
    }

    fn with_token(&self, builder: RequestBuilder) -> RequestBuilder {
        let builder = builder.timeout(REQUEST_TIMEOUT);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, ClientError> {
        self.read(builder.send().await?).await
    }

    /// The body of a success, or the error an unsuccessful answer means.
    async fn read<T: DeserializeOwned>(&self, response: Response) -> Result<T, ClientError> {
        if response.status().is_success() {
            return Ok(response.json().await?);
        }
        Err(self.refusal(response).await)
    }

    /// `Ok` for a success with no body of interest (`204`).
    async fn read_empty(&self, response: Response) -> Result<(), ClientError> {
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.refusal(response).await)
    }

    /// The error an unsuccessful answer means: the master's problem, or its unavailability.
    async fn refusal(&self, response: Response) -> ClientError {
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return ClientError::Unavailable(status.as_u16());
        }
        let problem = response
            .json::<Problem>()
            .await
            .unwrap_or_else(|_| Problem {
                type_uri: "about:blank".into(),
                title: status.canonical_reason().unwrap_or("error").into(),
                status: status.as_u16(),
                detail: None,
            });
        ClientError::Refused(problem)
    }
}
