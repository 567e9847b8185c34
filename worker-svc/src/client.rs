//! `MasterClient`: the typed HTTP client of the master's API, one method per endpoint. The
//! worker, the tests and the benchmark all talk to the master through it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{
    BatchSubmitted, Heartbeat, HeartbeatAck, LeaseId, LeaseRequest, LeaseResponse, Problem,
    QueueInfo, RegisterWorker, Release, ReportBatch, ReportBatchReply, ReportFor, SubmitBatch,
    SubmitTask, Task, TaskId, TaskResult, WorkerInfo, WorkerList,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// How long a request may take beyond any long-poll wait it asks for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a lease in flight when the worker stops may still take to be answered.
const ANSWER_GRACE: Duration = Duration::from_millis(500);

/// The start of every HTTP client of the services (the worker's client of the master, its
/// sidecar handler's, the master's push client) and of their tests and benchmark: reqwest over
/// rustls, trusting the system's CA certificates, or those `SSL_CERT_FILE` or `SSL_CERT_DIR`
/// name. Without any, https fails at the handshake and plain http still works.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(tls_config())
}

/// A client from [`http_client_builder`] with reqwest's defaults.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .expect("a client with a preconfigured TLS backend always builds")
}

/// The TLS configuration shared by every client, the certificates read once per process.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "CA certificates not loaded");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!(ignored, "CA certificates that do not parse are ignored");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls' default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    });
    config.clone()
}

/// Why a call to the master failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The master refused the request with this problem (any 4xx but 429).
    #[error("refused with {}: {}", .0.status, .0.detail.as_deref().unwrap_or(&.0.title))]
    Refused(Problem),
    /// The master could not serve it now (5xx or 429); trying again later is safe.
    #[error("master unavailable: HTTP {0}")]
    Unavailable(u16),
    /// No answer: connection refused, reset, or timed out. (Shared, so that one failed batch
    /// can be the answer of each result in it.)
    #[error("master unreachable: {0}")]
    Network(Arc<reqwest::Error>),
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Network(Arc::new(e))
    }
}

impl ClientError {
    /// Whether the same request may succeed if sent again later.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ClientError::Refused(_))
    }

    /// The refusal's status, if the master refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused(problem) => Some(problem.status),
            _ => None,
        }
    }
}

/// A client of one master.
#[derive(Debug, Clone)]
pub struct MasterClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

impl MasterClient {
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

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn submit(&self, task: &SubmitTask) -> Result<Task, ClientError> {
        self.send(self.post("/tasks").json(task)).await
    }

    pub async fn submit_batch(
        &self,
        tasks: Vec<SubmitTask>,
    ) -> Result<BatchSubmitted, ClientError> {
        self.send(self.post("/tasks/batch").json(&SubmitBatch { tasks }))
            .await
    }

    pub async fn task(&self, id: TaskId) -> Result<Task, ClientError> {
        self.send(self.with_token(self.http.get(self.url(&format!("/tasks/{id}")))))
            .await
    }

    /// Cancels a task (`DELETE /tasks/{id}`).
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ClientError> {
        let url = self.url(&format!("/tasks/{id}"));
        self.send(self.with_token(self.http.delete(url))).await
    }

    /// Seals a queue: it takes no new tasks, and drained leasers hear `no_more_tasks`.
    pub async fn seal(&self, queue: &str) -> Result<QueueInfo, ClientError> {
        self.send(self.post(&format!("/queues/{queue}/seal"))).await
    }

    /// Registers (or renews) this worker for push dispatch.
    pub async fn register_worker(
        &self,
        registration: &RegisterWorker,
    ) -> Result<WorkerInfo, ClientError> {
        self.send(self.post("/workers").json(registration)).await
    }

    /// `GET /workers`: the push workers the master knows.
    pub async fn workers(&self) -> Result<WorkerList, ClientError> {
        let url = self.url("/workers");
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

    /// `GET /queues/{name}`: counts per state.
    pub async fn queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        let url = self.url(&format!("/queues/{name}"));
        self.send(self.with_token(self.http.get(url))).await
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

    pub async fn result(&self, id: TaskId, result: &TaskResult) -> Result<Task, ClientError> {
        self.send(self.post(&format!("/tasks/{id}/result")).json(result))
            .await
    }

    /// Reports many results in one request; each is answered on its own.
    pub async fn results(&self, results: Vec<ReportFor>) -> Result<ReportBatchReply, ClientError> {
        self.send(self.post("/tasks/results").json(&ReportBatch { results }))
            .await
    }

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
        let status = response.status();
        if status.is_success() {
            return Ok(response.json().await?);
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ClientError::Unavailable(status.as_u16()));
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
        Err(ClientError::Refused(problem))
    }
}
