//! Worker endpoints: lease, heartbeat, result (one or many), release.

use axum::Json;
use axum::extract::State;
use common::examples;
use common::openapi::{
    Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use common::{
    Heartbeat, HeartbeatAck, LeaseRequest, LeaseResponse, Release, ReportAck, ReportBatch,
    ReportBatchReply, Task, TaskId, TaskResult,
};

use super::AppState;
use super::access::{check_queues, check_task};
use super::error::ApiError;
use super::extract::{ApiJson, TaskIdPath};
use crate::access::Caller;
use crate::engine::EngineError;

/// Lease tasks
///
/// Takes up to `max_tasks` ready tasks from `queues`, highest priority first, each under its own
/// lease. With `wait_secs`, waits (long-polls) until a task is ready or the time is up; an empty
/// `tasks` is not an error. `no_more_tasks` is true once every queue asked for is sealed and
/// drained. The links pass the first task's id on to heartbeat, result and release, and each
/// says which fields of the request body to fill in from this exchange.
///
/// `results` carries the results of tasks the worker finished ("report and lease next"): they
/// are checked, fenced and committed exactly as `POST /tasks/results` would, together with the
/// lease (usually in the same commit) and before any long-poll wait, and each is answered in the
/// reply's `results`. A malformed request records nothing; results the store cannot record fail
/// the request, and whatever was leased with them is handed back.
/// If the request fails after all (`503`, a dropped connection), send the results again: an
/// accepted result sent again under the same lease is a `200`.
#[utoipa::path(
    post, path = "/tasks/lease", operation_id = "leaseTasks", tag = "leases",
    security(("apiToken" = []), ("workerToken" = [])),
    request_body(content = LeaseRequest, examples(
        ("leased" = (summary = "w01 asks for a task, waiting up to 5 s",
            value = json!(examples::lease_request()))),
        ("reportedAndLeased" = (summary = "w01 reports task 3 and asks for the next",
            value = json!(examples::lease_request_with_result()))),
    )),
    responses(
        (status = 200, description = "The tasks leased, possibly none.", body = LeaseResponse,
            // No `request_body` in these links: OpenAPI 3.1 allows an object of runtime
            // expressions there, but openapi-generator's validator takes only a string, and a
            // single expression cannot build the body. The description names each field to
            // carry as `field` (`$expression`), which the contract run's schemathesis hook
            // (scripts/contract/hooks.py) reads back into a body.
            links(
                ("heartbeat" = (operation_id = "heartbeat",
                    parameters(("id" = "$response.body#/tasks/0/task_id")),
                    description = "Keep the first task's lease alive: send its `lease_id` \
                        (`$response.body#/tasks/0/lease_id`).")),
                ("reportResult" = (operation_id = "reportResult",
                    parameters(("id" = "$response.body#/tasks/0/task_id")),
                    description = "Report the first task's result under its lease: send its \
                        `lease_id` (`$response.body#/tasks/0/lease_id`) and the leasing \
                        worker's `worker_id` (`$request.body#/worker_id`).")),
                ("releaseTask" = (operation_id = "releaseTask",
                    parameters(("id" = "$response.body#/tasks/0/task_id")),
                    description = "Hand the first task back: send its `lease_id` \
                        (`$response.body#/tasks/0/lease_id`).")),
            ),
            examples(
                ("leased" = (summary = "w01 leases task 3",
                    value = json!(examples::lease_response()))),
                ("drained" = (summary = "Every queue asked for is sealed and empty",
                    value = json!(examples::lease_response_drained()))),
                ("reportedAndLeased" = (summary = "Task 3's result recorded, task 4 leased",
                    value = json!(examples::lease_response_with_result()))),
            )),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn lease(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let queues = request.queues.as_deref();
    let queues = queues.map_or(vec![common::DEFAULT_QUEUE], |q| {
        q.iter().map(String::as_str).collect()
    });
    check_queues(&caller, queues)?;
    for item in &request.results {
        check_task(&state.engine, &caller, item.task_id).await?;
    }
    let ids: Vec<TaskId> = request.results.iter().map(|item| item.task_id).collect();
    let granted = state.engine.lease_detached(request).await?;
    Ok(Json(LeaseResponse {
        tasks: granted.tasks,
        no_more_tasks: granted.drained,
        results: acks(ids, granted.results),
    }))
}

/// Renew a lease
///
/// Extends the lease by `lease_secs` from now (its current length when absent). The reply says
/// whether an operator cancelled the task. `409` once the lease is gone: the worker should stop.
#[utoipa::path(
    post, path = "/tasks/{id}/heartbeat", operation_id = "heartbeat", tag = "leases",
    security(("apiToken" = []), ("workerToken" = [])),
    params(("id" = TaskId, Path, description = "The leased task's id.")),
    request_body(content = Heartbeat, example = json!(examples::heartbeat())),
    responses(
        (status = 200, description = "The lease's new deadline.", body = HeartbeatAck,
            example = json!(examples::heartbeat_ack())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.heartbeat(id, beat).await?))
}

/// Report a result
///
/// Accepted only under the task's live lease (fencing): a stale lease gets `409` with a problem
/// type that says why. Re-sending the same result for the same lease is a `200`. A failure with
/// attempts left (and `retry` not false) queues the task again after a backoff.
#[utoipa::path(
    post, path = "/tasks/{id}/result", operation_id = "reportResult", tag = "leases",
    security(("apiToken" = []), ("workerToken" = [])),
    params(("id" = TaskId, Path, description = "The leased task's id.")),
    request_body(content = TaskResult, examples(
        ("succeeded" = (summary = "w01 processed task 3",
            value = json!(examples::task_result()))),
        ("failed" = (summary = "A failure, retried after 10 s",
            value = json!(examples::task_result_failed()))),
    )),
    responses(
        (status = 200, description = "The task after the result.", body = Task,
            links(("getTask" = (operation_id = "getTask",
                parameters(("id" = "$response.body#/id"))))),
            example = json!(examples::task_succeeded())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn result(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiJson(report): ApiJson<TaskResult>,
) -> Result<Json<Task>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.report(id, report).await?))
}

/// Report many results
///
/// Up to 256 results in one request, committed together: what a worker finishing many tasks at
/// once (or a batch consumer) sends instead of one `POST /tasks/{id}/result` each. Each result is
/// fenced by its own lease and answered on its own, in request order, with the status and
/// problem the single-result endpoint would give it; the request itself is `200` unless it is
/// malformed or the store is unavailable (then nothing was recorded, and the whole batch may be
/// sent again: accepted results are idempotent).
#[utoipa::path(
    post, path = "/tasks/results", operation_id = "reportResults", tag = "leases",
    security(("apiToken" = []), ("workerToken" = [])),
    request_body(content = ReportBatch, example = json!(examples::report_batch())),
    responses(
        (status = 200, description = "Each result's outcome, in request order.",
            body = ReportBatchReply, example = json!(examples::report_batch_reply())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(batch): ApiJson<ReportBatch>,
) -> Result<Json<ReportBatchReply>, ApiError> {
    for item in &batch.results {
        check_task(&state.engine, &caller, item.task_id).await?;
    }
    let ids: Vec<TaskId> = batch.results.iter().map(|item| item.task_id).collect();
    let outcomes = state.engine.report_batch(batch.results).await?;
    Ok(Json(ReportBatchReply {
        results: acks(ids, outcomes),
    }))
}

/// Each result's outcome as the single-result endpoint would have answered it.
fn acks(ids: Vec<TaskId>, outcomes: Vec<Result<Task, EngineError>>) -> Vec<ReportAck> {
    ids.into_iter()
        .zip(outcomes)
        .map(|(task_id, outcome)| match outcome {
            Ok(task) => ReportAck {
                task_id,
                status: 200,
                state: Some(task.state),
                problem: None,
            },
            Err(e) => {
                let problem = ApiError::from(e).problem();
                ReportAck {
                    task_id,
                    status: problem.status,
                    state: None,
                    problem: Some(problem),
                }
            }
        })
        .collect()
}

/// Release a lease
///
/// Hands the task back without counting a failure (e.g. a worker shutting down), optionally not
/// to be leased again for `delay_secs`.
#[utoipa::path(
    post, path = "/tasks/{id}/release", operation_id = "releaseTask", tag = "leases",
    security(("apiToken" = []), ("workerToken" = [])),
    params(("id" = TaskId, Path, description = "The leased task's id.")),
    request_body(content = Release, example = json!(examples::release())),
    responses(
        (status = 200, description = "The task, queued again.", body = Task,
            example = json!(Task { priority: 5, ..examples::task_queued(3) })),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiJson(release): ApiJson<Release>,
) -> Result<Json<Task>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.release(id, release).await?))
}
