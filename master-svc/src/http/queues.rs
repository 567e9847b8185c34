//! Operator endpoints on queues.

use axum::Json;
use axum::extract::State;
use common::examples;
use common::openapi::{
    Forbidden, InvalidRequest, NotFound, PayloadTooLarge, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use common::{
    ActivityList, HistoryWindow, QueueHistory, QueueInfo, QueueList, QueueName, QueueSettingsPatch,
};

use super::AppState;
use super::access::check_queue;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, MergePatch};
use crate::access::Caller;

/// List queues
///
/// Every queue with its task counts per state, the age of its oldest ready task, and whether it
/// is sealed.
#[utoipa::path(
    get, path = "/queues", operation_id = "listQueues", tag = "queues",
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "The queues.", body = QueueList,
            example = json!(examples::queue_list())),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<QueueList>, ApiError> {
    let mut queues = state.engine.queues().await?;
    queues.retain(|queue| caller.scope.allows(&queue.name));
    Ok(Json(QueueList { queues }))
}

/// Get a queue
#[utoipa::path(
    get, path = "/queues/{name}", operation_id = "getQueue", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name.")),
    responses(
        (status = 200, description = "The queue.", body = QueueInfo,
            example = json!(examples::queue_info())),
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_queue(&caller, &name)?;
    Ok(Json(state.engine.queue(&name).await?))
}

/// A queue's recent activity
///
/// What happened to the queue's tasks in each 10-second step of the window, oldest first, the
/// current step last: tasks submitted, leases granted, results (succeeded, failed for good,
/// retried) and leases expired; and its backlog (`queued`, `in_flight`) at each step's end,
/// now for the current step. For charts: kept in the memory of the master that answers, for
/// the last hour, it starts empty when that master starts; with several masters on one
/// PostgreSQL store, the counts are this master's transitions, the backlog the shared store's.
#[utoipa::path(
    get, path = "/queues/{name}/history", operation_id = "getQueueHistory", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name."), HistoryWindow),
    responses(
        (status = 200, description = "The queue's activity, one point per step.",
            body = QueueHistory, example = json!(examples::queue_history())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(window): ApiQuery<HistoryWindow>,
) -> Result<Json<QueueHistory>, ApiError> {
    check_queue(&caller, &name)?;
    Ok(Json(state.engine.queue_history(&name, window).await?))
}

/// Every queue's recent activity
///
/// Each queue's history over the window, as `GET /queues/{name}/history` answers it, in the
/// order of `GET /queues`, in one request (a console's overview draws every queue's chart from
/// it).
#[utoipa::path(
    get, path = "/activity", operation_id = "listQueueActivity", tag = "queues",
    security(("apiToken" = [])),
    params(HistoryWindow),
    responses(
        (status = 200, description = "Every queue's activity, one point per step.",
            body = ActivityList, example = json!(examples::activity_list())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(window): ApiQuery<HistoryWindow>,
) -> Result<Json<ActivityList>, ApiError> {
    let mut queues = state.engine.activity(window).await?;
    queues.retain(|history| caller.scope.allows(&history.queue));
    Ok(Json(ActivityList { queues }))
}

/// Seal a queue
///
/// It takes no new tasks (`409 queue-sealed`); once drained, leasers hear `no_more_tasks` and
/// batch workers may exit. Sealing a queue that has no tasks yet creates it.
#[utoipa::path(
    post, path = "/queues/{name}/seal", operation_id = "sealQueue", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name.")),
    responses(
        (status = 200, description = "The queue, sealed.", body = QueueInfo,
            links(("unsealQueue" = (operation_id = "unsealQueue",
                parameters(("name" = "$response.body#/name"))))),
            example = json!(QueueInfo { sealed: true, ..examples::queue_info() })),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn seal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_queue(&caller, &name)?;
    Ok(Json(state.engine.set_sealed(&name, true).await?))
}

/// Unseal a queue
///
/// It takes new tasks again.
#[utoipa::path(
    post, path = "/queues/{name}/unseal", operation_id = "unsealQueue", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name.")),
    responses(
        (status = 200, description = "The queue, unsealed.", body = QueueInfo,
            example = json!(examples::queue_info())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn unseal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_queue(&caller, &name)?;
    Ok(Json(state.engine.set_sealed(&name, false).await?))
}

/// Change a queue's flow control
///
/// A JSON merge patch (RFC 7396) of the queue's `settings`: a field sent is set, a field sent
/// as `null` is removed, a field left out is kept; `rate_limit` is set whole. Answers the
/// queue. A queue can be configured before it has tasks. The limits hold over every worker
/// and every master; tasks they hold back stay `queued` and no attempt is counted. Setting
/// `paused` to false also ends a pause a worker's result asked for.
#[utoipa::path(
    patch, path = "/queues/{name}", operation_id = "patchQueue", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name.")),
    request_body(content = QueueSettingsPatch, content_type = "application/merge-patch+json",
        description = "The settings to change; any subset of the fields, `null` to remove one.",
        example = json!({ "max_in_flight": 10, "rate_limit": { "per_sec": 50, "burst": 5 } })),
    responses(
        (status = 200, description = "The queue, with its settings.", body = QueueInfo,
            example = json!(examples::limited_queue_info())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    MergePatch(patch): MergePatch,
) -> Result<Json<QueueInfo>, ApiError> {
    check_queue(&caller, &name)?;
    Ok(Json(state.engine.patch_queue(&name, patch).await?))
}

/// Pause a queue
///
/// It leases nothing until resumed: its tasks stay queued, submissions are still accepted
/// (unlike a sealed queue), and leases already out heartbeat and report as usual. The same as
/// `PATCH /queues/{name}` with `{"paused": true}`.
#[utoipa::path(
    post, path = "/queues/{name}/pause", operation_id = "pauseQueue", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name.")),
    responses(
        (status = 200, description = "The queue, paused.", body = QueueInfo,
            links(("resumeQueue" = (operation_id = "resumeQueue",
                parameters(("name" = "$response.body#/name"))))),
            example = json!(paused_example())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_queue(&caller, &name)?;
    let patch = serde_json::json!({ "paused": true });
    Ok(Json(state.engine.patch_queue(&name, patch).await?))
}

/// Resume a queue
///
/// It leases again, and every lease request waiting on it looks at once. Also ends a pause a
/// worker's result asked for. The same as `PATCH /queues/{name}` with `{"paused": false}`.
#[utoipa::path(
    post, path = "/queues/{name}/resume", operation_id = "resumeQueue", tag = "queues",
    security(("apiToken" = [])),
    params(("name" = QueueName, Path, description = "The queue's name.")),
    responses(
        (status = 200, description = "The queue, resumed.", body = QueueInfo,
            example = json!(examples::queue_info())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    check_queue(&caller, &name)?;
    let patch = serde_json::json!({ "paused": false });
    Ok(Json(state.engine.patch_queue(&name, patch).await?))
}

/// The example queue, paused.
fn paused_example() -> QueueInfo {
    let mut queue = examples::queue_info();
    queue.settings.paused = true;
    queue.held_back.paused = queue.counts.queued;
    queue
}
