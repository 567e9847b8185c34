//! Operator endpoints on queues.

use axum::Json;
use axum::extract::State;
use common::examples;
use common::openapi::{Forbidden, InvalidRequest, NotFound, Unauthorized, Unavailable};
use common::{QueueInfo, QueueList, QueueName};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiPath;

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
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let queues = state.engine.queues().await?;
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.engine.queue(&name).await?))
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.engine.set_sealed(&name, false).await?))
}
