//! Producer and operator endpoints on tasks.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::examples;
use common::openapi::{
    Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge, TaskLocation, Unauthorized,
    Unavailable, UnsupportedMediaType,
};
use common::{
    BatchSubmitted, ListTasks, SubmitBatch, SubmitTask, Task, TaskAttempts, TaskId, TaskPage,
    WaitForTask,
};

use super::AppState;
use super::access::{check_named_queue, check_queue, check_task};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, TaskIdPath};
use crate::access::Caller;

/// Submit a task
///
/// `201` with the new task, or `200` with the task first submitted under the same
/// `idempotency_key` (nothing new is created). The task is committed to disk before the reply.
/// With `wait_secs`, the reply waits for the task to finish (a synchronous call): the finished
/// task with `201` or `200`, or `202` with the task as it is if the wait ran out first (it goes
/// on; `GET /tasks/{id}?wait_secs=` waits again).
#[utoipa::path(
    post, path = "/tasks", operation_id = "submitTask", tag = "tasks",
    security(("apiToken" = [])),
    params(WaitForTask),
    request_body(content = SubmitTask, example = json!(examples::submit_task())),
    responses(
        (status = 201, description = "Created.", body = Task,
            headers(("Location" = inline(TaskLocation), description = "`/tasks/{id}` of the task.")),
            links(
                ("getTask" = (operation_id = "getTask",
                    parameters(("id" = "$response.body#/id")))),
                ("cancelTask" = (operation_id = "cancelTask",
                    parameters(("id" = "$response.body#/id")))),
                ("getQueue" = (operation_id = "getQueue",
                    parameters(("name" = "$response.body#/queue")))),
            ),
            example = json!(examples::task_submitted())),
        (status = 200, description = "A task with this `idempotency_key` already exists: that task.",
            body = Task, headers(("Location" = inline(TaskLocation), description = "`/tasks/{id}` of the task.")),
            example = json!(examples::task_submitted())),
        (status = 202, description = "With `wait_secs`: the task did not finish within the wait; \
            as it is now.", body = Task,
            headers(("Location" = inline(TaskLocation), description = "`/tasks/{id}` of the task.")),
            example = json!(examples::task_leased())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(wait): ApiQuery<WaitForTask>,
    ApiJson(task): ApiJson<SubmitTask>,
) -> Result<Response, ApiError> {
    check_queue(&caller, queue_of(&task))?;
    let waits = wait.wait_secs.is_some_and(|secs| secs > 0);
    let (task, created) = state.engine.submit_and_wait(task, wait.wait_secs).await?;
    let status = if waits && !task.state.is_terminal() {
        StatusCode::ACCEPTED
    } else if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/tasks/{}", task.id);
    Ok((status, [(header::LOCATION, location)], Json(task)).into_response())
}

/// Submit many tasks in one commit
///
/// All of them or none (up to 10,000), answered in request order. `201` when at least one is
/// new, `200` when every one already existed under its `idempotency_key`.
#[utoipa::path(
    post, path = "/tasks/batch", operation_id = "submitTasks", tag = "tasks",
    security(("apiToken" = [])),
    request_body(content = SubmitBatch, example = json!(examples::submit_batch())),
    responses(
        (status = 201, description = "At least one task is new.", body = BatchSubmitted,
            example = json!(examples::batch_submitted())),
        (status = 200, description = "Every task already existed.", body = BatchSubmitted,
            example = json!(BatchSubmitted { created: 0, ..examples::batch_submitted() })),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn submit_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(batch): ApiJson<SubmitBatch>,
) -> Result<Response, ApiError> {
    for task in &batch.tasks {
        check_queue(&caller, queue_of(task))?;
    }
    let submitted = state.engine.submit_batch(batch.tasks).await?;
    let status = if submitted.created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(submitted)).into_response())
}

/// Get a task
///
/// Its state, attempts, live lease, result, last error and the worker that finished it. With
/// `wait_secs`, the reply waits until the task is finished (or the wait runs out, then the task
/// as it is): a producer's way to wait for a result without polling.
#[utoipa::path(
    get, path = "/tasks/{id}", operation_id = "getTask", tag = "tasks",
    security(("apiToken" = [])),
    params(("id" = TaskId, Path, description = "The task's id."), WaitForTask),
    responses(
        (status = 200, description = "The task.", body = Task, examples(
            ("succeeded" = (value = json!(examples::task_succeeded()))),
            ("leased" = (value = json!(examples::task_leased()))),
            ("queued" = (value = json!(examples::task_submitted()))),
        )),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiQuery(wait): ApiQuery<WaitForTask>,
) -> Result<Json<Task>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.get_finished(id, wait.wait_secs).await?))
}

/// Get a task's attempts
///
/// Every lease of the task in order: its worker, when it was granted, its heartbeats, when and
/// how it ended (`null` while live) and the error it ended with, and each result, heartbeat or
/// release refused for it after it ended (a zombie worker, a split brain) with its reason.
/// The master keeps `--history-kept` attempts per task one by one; older ones are summarised in
/// `earlier`.
#[utoipa::path(
    get, path = "/tasks/{id}/attempts", operation_id = "getTaskAttempts", tag = "tasks",
    security(("apiToken" = [])),
    params(("id" = TaskId, Path, description = "The task's id.")),
    responses(
        (status = 200, description = "The task's attempts.", body = TaskAttempts,
            example = json!(examples::task_attempts())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<TaskAttempts>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.attempts(id).await?))
}

/// List tasks
///
/// A page in id order, filtered by queue and state; pass `next_cursor` as `cursor` for the next.
#[utoipa::path(
    get, path = "/tasks", operation_id = "listTasks", tag = "tasks",
    security(("apiToken" = [])),
    params(ListTasks),
    responses(
        (status = 200, description = "A page of tasks.", body = TaskPage,
            example = json!(examples::task_page())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListTasks>,
) -> Result<Json<TaskPage>, ApiError> {
    check_named_queue(&caller, query.queue.as_deref(), "with `queue=`")?;
    Ok(Json(state.engine.list(query).await?))
}

/// Cancel a task
///
/// A queued task is cancelled at once; a leased one is marked `cancel_requested`, and its worker
/// is told at its next heartbeat (it then releases the task, which becomes `cancelled`).
#[utoipa::path(
    delete, path = "/tasks/{id}", operation_id = "cancelTask", tag = "tasks",
    security(("apiToken" = [])),
    params(("id" = TaskId, Path, description = "The task's id.")),
    responses(
        (status = 200, description = "The task, cancelled or marked.", body = Task,
            links(("retryTask" = (operation_id = "retryTask",
                parameters(("id" = "$response.body#/id"))))),
            example = json!(examples::task_cancelled())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<Task>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.cancel(id).await?))
}

/// Retry a failed or cancelled task
///
/// Puts it back in its queue with fresh attempts.
#[utoipa::path(
    post, path = "/tasks/{id}/retry", operation_id = "retryTask", tag = "tasks",
    security(("apiToken" = [])),
    params(("id" = TaskId, Path, description = "The task's id.")),
    responses(
        (status = 200, description = "The task, queued again.", body = Task,
            example = json!(Task { max_attempts: 5, ..examples::task_queued(2) })),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<Task>, ApiError> {
    check_task(&state.engine, &caller, id).await?;
    Ok(Json(state.engine.retry(id).await?))
}

/// The queue a submission goes to.
fn queue_of(task: &SubmitTask) -> &str {
    task.queue.as_deref().unwrap_or(common::DEFAULT_QUEUE)
}
