//! Bulk actions by filter and the operations that carry them out.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::examples;
use common::openapi::{
    Forbidden, InvalidRequest, NotFound, OperationLocation, PayloadTooLarge, Unauthorized,
    Unavailable, UnsupportedMediaType,
};
use common::{BulkRequest, ListOperations, Operation, OperationAccepted, OperationList};

use super::AppState;
use super::access::check_named_queue;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::access::Caller;

/// Act on every task a filter matches
///
/// `202` with the operation, which then works through the matching tasks in id order, in
/// chunks of 500, each one commit (leasing goes on between them); follow it at
/// `GET /operations/{id}`. Each task is changed as the single-task endpoint would change it:
/// `retry` as `POST /tasks/{id}/retry` (failed and cancelled tasks), `cancel` as
/// `DELETE /tasks/{id}` (queued tasks cancelled, leased ones marked `cancel_requested`),
/// `delete` removes finished tasks. A task the action does not apply to in its state is counted
/// in `skipped`, not as an error; in particular `delete` skips queued and leased tasks (cancel
/// them first). `limit` caps how many matching tasks the operation goes through; `dry_run`
/// counts them (`matched`) and changes nothing. An operation survives a restart of the master:
/// it resumes from where its last chunk left it.
#[utoipa::path(
    post, path = "/tasks/bulk", operation_id = "bulkTasks", tag = "tasks",
    security(("apiToken" = [])),
    request_body(content = BulkRequest, example = json!(examples::bulk_request())),
    responses(
        (status = 202, description = "Accepted; the operation runs.", body = OperationAccepted,
            headers(("Location" = inline(OperationLocation),
                description = "`/operations/{id}` of the operation.")),
            example = json!(examples::operation_accepted())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    check_named_queue(
        &caller,
        request.filter.queue.as_deref(),
        "in `filter.queue`",
    )?;
    let operation = state.engine.start_bulk(request).await?;
    let location = format!("/operations/{}", operation.id);
    let body = Json(OperationAccepted { operation });
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], body).into_response())
}

/// Get a bulk operation
///
/// Its state (`running`, `done`, `failed`) and counters: `matched` tasks gone through so far,
/// `done` changed, `skipped` not in a state the action applies to, `errors` not acted on
/// because the store failed.
#[utoipa::path(
    get, path = "/operations/{id}", operation_id = "getOperation", tag = "tasks",
    security(("apiToken" = [])),
    params(("id" = i64, Path, description = "The operation's id.", example = 7)),
    responses(
        (status = 200, description = "The operation.", body = Operation,
            example = json!(examples::operation())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Operation>, ApiError> {
    let id = id.parse::<common::TaskId>().map_err(|_| {
        ApiError::InvalidRequest(format!("an operation id is an integer, not `{id}`"))
    })?;
    Ok(Json(state.engine.operation(id.0).await?))
}

/// List recent bulk operations
///
/// The most recent first.
#[utoipa::path(
    get, path = "/operations", operation_id = "listOperations", tag = "tasks",
    security(("apiToken" = [])),
    params(ListOperations),
    responses(
        (status = 200, description = "The most recent operations.", body = OperationList,
            example = json!(examples::operation_list())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListOperations>,
) -> Result<Json<OperationList>, ApiError> {
    Ok(Json(state.engine.operations(query.limit).await?))
}
