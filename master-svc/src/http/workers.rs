//! Workers. Push registration (renewed by re-sending it) and its withdrawal are the workers'
//! (worker token); listing and removing any worker are the operator's (operator token), since a
//! static or DNS worker is the operator's configuration. The listing also shows the pulling
//! workers (which, and what they hold, is the engine's `pull_workers`).

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::examples;
use common::openapi::{
    Forbidden, InvalidRequest, NotFound, PayloadTooLarge, PushAddressNotAllowed, TooManyWorkers,
    Unauthorized, Unavailable, UnsupportedMediaType, WorkerIdReserved,
};
use common::{RegisterWorker, WorkerInfo, WorkerList};

use super::AppState;
use super::access::{check_queues, out_of_scope};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::access::Caller;
use crate::push::WorkerError;

impl From<WorkerError> for ApiError {
    fn from(e: WorkerError) -> Self {
        let detail = e.to_string();
        match e {
            WorkerError::Invalid(_) => ApiError::InvalidRequest(detail),
            WorkerError::Reserved(..) => ApiError::WorkerIdReserved(detail),
            WorkerError::TooMany(_) => ApiError::TooManyWorkers(detail),
            WorkerError::NotAllowed(_) => ApiError::PushAddressNotAllowed(detail),
            WorkerError::NotFound(_) => ApiError::NotFound(detail),
        }
    }
}

/// Register a push worker
///
/// Registers or renews a worker for push dispatch: the master leases tasks from its `queues` on
/// its behalf and POSTs them to `{url}/do-task`. A registration lapses unless re-sent within
/// `ttl_secs` (send it every third of that). It may not take the id of a static or
/// DNS-discovered worker (`409`), nor exceed `--max-registered-workers` (`429`); with
/// `--push-allow-cidr`, every address of the URL's host must be inside those networks (`403`).
#[utoipa::path(
    post, path = "/workers", operation_id = "registerWorker", tag = "workers",
    security(("apiToken" = []), ("workerToken" = [])),
    request_body(content = RegisterWorker, example = json!(examples::register_worker())),
    responses(
        (status = 200, description = "The worker as registered.", body = WorkerInfo,
            links(("withdrawWorker" = (operation_id = "withdrawWorker",
                parameters(("id" = "$response.body#/id"))))),
            example = json!(examples::worker_info())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = PushAddressNotAllowed),
        (status = 409, response = WorkerIdReserved),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyWorkers),
    ),
)]
pub(super) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(registration): ApiJson<RegisterWorker>,
) -> Result<Json<WorkerInfo>, ApiError> {
    // A worker pushed tasks takes them from its queues: a scoped token names them, all in
    // scope, as it would to lease.
    match &registration.queues {
        Some(queues) => check_queues(&caller, queues.iter().map(String::as_str))?,
        None if !caller.scope.is_all() => {
            return Err(out_of_scope(
                &caller,
                "the master's push queues (name `queues`)",
            ));
        }
        None => {}
    }
    Ok(Json(state.dispatcher.register(registration).await?))
}

/// Withdraw a registration
///
/// What a registered worker sends when it drains, so that no more tasks are pushed to it. Only
/// a registration can be withdrawn (`409` for a static or DNS-discovered worker).
#[utoipa::path(
    delete, path = "/workers/{id}/registration", operation_id = "withdrawWorker", tag = "workers",
    security(("apiToken" = []), ("workerToken" = [])),
    params(("id" = String, Path, description = "The registered worker's id.", example = "w02")),
    responses(
        (status = 204, description = "Withdrawn."),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = WorkerIdReserved),
    ),
)]
pub(super) async fn withdraw(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.dispatcher.withdraw(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// List workers
///
/// `workers`: this master's push workers (static, registered and DNS-discovered), with their
/// health and tasks in flight. `pull_workers`: the workers pulling tasks (`POST /tasks/lease`)
/// that this master heard from within `--pull-worker-seen-secs` (300 s by default) or that hold
/// a lease now, by id, with the tasks leased to each right now by any master sharing the store;
/// a push worker is listed once, in `workers`. A token limited to some queues sees only the
/// pulling workers of its queues, and of each only those queues and their tasks; push workers
/// are the operator's configuration and are listed to it whole.
#[utoipa::path(
    get, path = "/workers", operation_id = "listWorkers", tag = "workers",
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "The push workers and the pulling workers.",
            body = WorkerList, example = json!(examples::worker_list())),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkerList>, ApiError> {
    let workers = state.dispatcher.list();
    let scope = &caller.scope;
    let mut pull_workers = state
        .engine
        .pull_workers(|queue| scope.allows(queue))
        .await?;
    // The engine hears a push worker too (its feeder leases and reports through it, and a
    // `--push-async` worker reports itself): it is listed as what it is.
    let pushed: HashSet<&str> = workers.iter().map(|worker| worker.id.as_str()).collect();
    pull_workers.retain(|worker| !pushed.contains(worker.id.as_str()));
    Ok(Json(WorkerList {
        workers,
        pull_workers,
    }))
}

/// Remove a push worker
///
/// Any worker, static and DNS-discovered ones included; its feeder stops taking tasks, and those
/// in flight finish. A static worker comes back when the master restarts, a DNS one at the next
/// resolution that still finds it.
#[utoipa::path(
    delete, path = "/workers/{id}", operation_id = "removeWorker", tag = "workers",
    security(("apiToken" = [])),
    params(("id" = String, Path, description = "The worker's id.", example = "w02")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.dispatcher.remove(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("worker `{id}` not found")))
    }
}
