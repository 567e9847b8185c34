//! The worker's own HTTP server: the push entry point `POST /do-task`, probes and metrics.
//! [`WorkerApi`] is their part of the OpenAPI document; the master's `openapi` module merges it
//! into the one `openapi.yaml`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::examples;
use common::object::Object;
use common::openapi::{
    InvalidRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType, WorkerBusy, WorkerDraining,
};
use common::problem::PROBLEM_TYPE_BASE;
use common::{DoTaskAccepted, DoTaskReply, LEASE_WORKER_HEADER, LeasedTask, Probe, Problem};
use leasehold_service_kit::ProblemJson;
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::execute::{Runner, outcome_of};
use crate::slots::Slots;

/// What the handlers share with the pull loop.
#[derive(Debug, Clone)]
pub struct WorkerState {
    pub runner: Runner,
    pub slots: Slots,
    pub tracker: TaskTracker,
    /// Cancelled when the worker starts draining: no new work, not ready.
    pub draining: CancellationToken,
    /// Cancelled when the drain time is up: running tasks stop.
    pub stop_tasks: CancellationToken,
    /// Token the master must present on `/do-task`, if set.
    pub token: Option<String>,
    /// Answer `/do-task` with 202 and report the result to the master later.
    pub push_async: bool,
    pub metrics: PrometheusHandle,
}

/// The worker's operations in the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(do_task, healthz, readyz, metrics),
    components(
        schemas(Problem),
        responses(
            InvalidRequest,
            Unauthorized,
            PayloadTooLarge,
            UnsupportedMediaType,
            WorkerBusy,
            WorkerDraining
        )
    )
)]
pub struct WorkerApi;

pub fn router(state: WorkerState) -> Router {
    Router::new()
        .route("/do-task", post(do_task))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { WorkerError::NotFound })
        .method_not_allowed_fallback(|| async { WorkerError::MethodNotAllowed })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Run a task the master pushed
///
/// Push mode: the body is a task the master leased on this worker's behalf. If a slot is free
/// the worker runs it and answers its outcome, which the master records as the task's result.
/// A worker started with `--push-async` answers `202` at once instead, then heartbeats and
/// reports the result to the master itself, under the worker id of the `leasehold-worker-id`
/// header. `429` and `503` carry `Retry-After`; the master pauses the worker, and counts neither
/// as a failure.
#[utoipa::path(
    post,
    path = "/do-task",
    operation_id = "doTask",
    tag = "worker",
    security(("workerToken" = [])),
    params(
        ("leasehold-worker-id" = Option<String>, Header, nullable = false,
            description = "The worker id the task's lease belongs to.", example = "w02"),
    ),
    request_body(content = LeasedTask, example = json!(examples::pushed_task())),
    responses(
        (status = 200, description = "The task ran; its outcome.", body = DoTaskReply,
            examples(
                ("succeeded" = (summary = "The uppercase handler on \"hello world\"",
                    value = json!(examples::do_task_reply()))),
                ("failed" = (summary = "A payload the handler cannot take",
                    value = json!(examples::do_task_reply_failed()))),
            )),
        (status = 202, description = "Taken (`--push-async`): the worker reports the result \
            to the master itself.", body = DoTaskAccepted,
            example = json!(DoTaskAccepted { accepted: true })),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = WorkerBusy),
        (status = 503, response = WorkerDraining),
    ),
)]
async fn do_task(
    State(state): State<WorkerState>,
    request: Request,
) -> Result<Response, WorkerError> {
    authorize(&state, &request)?;
    if state.draining.is_cancelled() {
        return Err(WorkerError::Draining);
    }
    let lease_holder = request
        .headers()
        .get(LEASE_WORKER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let Json(Object(task)) = Json::<Object<LeasedTask>>::from_request(request, &()).await?;
    let permit = state.slots.try_take().ok_or(WorkerError::Busy)?;
    if state.push_async {
        // The result must be reported under the id the master leased the task to.
        let mut runner = state.runner.clone();
        runner.worker_id = lease_holder.unwrap_or(runner.worker_id);
        let stop = state.stop_tasks.clone();
        state.tracker.spawn(async move {
            runner.run_leased(task, permit, stop).await;
        });
        let accepted = DoTaskAccepted { accepted: true };
        return Ok((StatusCode::ACCEPTED, Json(accepted)).into_response());
    }
    let runner = state.runner.clone();
    let stop = state.stop_tasks.clone();
    let run = state.tracker.spawn(async move {
        let _slot = permit;
        runner.run_pushed(&task, &stop).await
    });
    let result = run.await.ok().flatten().ok_or(WorkerError::Draining)?;
    let outcome = outcome_of(&result);
    let (result, error, retry, pause_queue_secs) = match result {
        Ok(value) => (Some(value), None, false, None),
        Err(e) => (None, Some(e.message), e.retry, e.pause_queue_secs),
    };
    let reply = DoTaskReply {
        worker_id: state.runner.worker_id.clone(),
        outcome,
        result,
        error,
        retry,
        pause_queue_secs,
    };
    Ok(Json(reply).into_response())
}

fn authorize(state: &WorkerState, request: &Request) -> Result<(), WorkerError> {
    let Some(expected) = &state.token else {
        return Ok(());
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(common::auth::bearer_token)
        .unwrap_or_default();
    if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(WorkerError::Unauthorized)
    }
}

/// Liveness: the process answers. Never depends on the master.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "probes",
    security(),
    responses((status = 200, description = "The process answers.", body = Probe,
        example = json!(Probe::OK))))]
async fn healthz() -> Json<Probe> {
    Json(Probe::OK)
}

/// Readiness: not while draining.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "probes",
    security(),
    responses(
        (status = 200, description = "Takes work.", body = Probe, example = json!(Probe::READY)),
        (status = 503, response = WorkerDraining),
    ))]
async fn readyz(State(state): State<WorkerState>) -> Result<Json<Probe>, WorkerError> {
    if state.draining.is_cancelled() {
        return Err(WorkerError::Draining);
    }
    Ok(Json(Probe::READY))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "probes",
    security(),
    responses((status = 200, description = "Prometheus text format.", body = String,
        content_type = "text/plain; version=0.0.4",
        example = json!("# TYPE leasehold_worker_tasks_total counter\nleasehold_worker_tasks_total{outcome=\"succeeded\"} 5\n"))))]
async fn metrics(State(state): State<WorkerState>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Errors of the worker's endpoints, as problem+json.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("every slot is busy; try again shortly")]
    Busy,
    #[error("the worker is draining and takes no new work")]
    Draining,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
}

impl WorkerError {
    fn status_code(&self) -> StatusCode {
        match self {
            WorkerError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            WorkerError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WorkerError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WorkerError::Unauthorized => StatusCode::UNAUTHORIZED,
            WorkerError::Busy => StatusCode::TOO_MANY_REQUESTS,
            WorkerError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            WorkerError::NotFound => StatusCode::NOT_FOUND,
            WorkerError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            WorkerError::InvalidRequest(_) => "invalid-request",
            WorkerError::PayloadTooLarge(_) => "payload-too-large",
            WorkerError::UnsupportedMediaType(_) => "unsupported-media-type",
            WorkerError::Unauthorized => "unauthorized",
            WorkerError::Busy => "worker-busy",
            WorkerError::Draining => "worker-draining",
            WorkerError::NotFound => "not-found",
            WorkerError::MethodNotAllowed => "method-not-allowed",
        }
    }
}

impl WorkerError {
    /// The problem details this error is written as.
    fn problem(&self) -> Problem {
        let status = self.status_code();
        Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(self.to_string()),
        }
    }
}

impl From<JsonRejection> for WorkerError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => WorkerError::PayloadTooLarge(detail),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => WorkerError::UnsupportedMediaType(detail),
            _ => WorkerError::InvalidRequest(detail),
        }
    }
}

impl IntoResponse for WorkerError {
    fn into_response(self) -> Response {
        let mut response = ProblemJson(self.problem()).into_response();
        let headers = response.headers_mut();
        match self {
            WorkerError::Busy | WorkerError::Draining => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            WorkerError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"leasehold-worker\""),
                );
            }
            _ => {}
        }
        response
    }
}
