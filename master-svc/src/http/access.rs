//! Which action each route needs ([`ROUTES`]), the middleware that identifies the caller,
//! checks its role and records audited actions, and the [`Caller`] extractor handlers read the
//! caller's queue scope from.
//!
//! A new endpoint behind a token is one line in [`ROUTES`]: its method, its path as routed, and
//! the [`Action`] it needs (a new one goes in `access::roles`, with the roles that have it).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::openapi::Unauthorized;
use common::{Role, WhoAmI};

use super::error::ApiError;
use crate::access::{Access, Action, Caller, Scope, roles};
use crate::engine::Engine;

/// Every guarded route: method, path as routed, the action it needs.
pub(super) const ROUTES: &[(&str, &str, Action)] = &[
    ("GET", "/whoami", Action::WhoAmI),
    ("POST", "/tasks", Action::Submit),
    ("POST", "/tasks/batch", Action::Submit),
    ("GET", "/tasks", Action::ReadTasks),
    ("GET", "/tasks/{id}", Action::ReadTasks),
    ("GET", "/tasks/{id}/attempts", Action::ReadTasks),
    ("DELETE", "/tasks/{id}", Action::Cancel),
    ("POST", "/tasks/{id}/retry", Action::Retry),
    ("POST", "/tasks/bulk", Action::Bulk),
    ("GET", "/operations", Action::ReadOperations),
    ("GET", "/operations/{id}", Action::ReadOperations),
    ("POST", "/tasks/lease", Action::Lease),
    ("POST", "/tasks/{id}/heartbeat", Action::Report),
    ("POST", "/tasks/{id}/result", Action::Report),
    ("POST", "/tasks/results", Action::Report),
    ("POST", "/tasks/{id}/release", Action::Report),
    ("GET", "/queues", Action::ReadQueues),
    ("GET", "/queues/{name}", Action::ReadQueues),
    ("GET", "/queues/{name}/history", Action::ReadQueues),
    ("GET", "/activity", Action::ReadQueues),
    ("PATCH", "/queues/{name}", Action::SetLimits),
    ("POST", "/queues/{name}/pause", Action::Pause),
    ("POST", "/queues/{name}/resume", Action::Resume),
    ("POST", "/queues/{name}/seal", Action::Seal),
    ("POST", "/queues/{name}/unseal", Action::Unseal),
    ("GET", "/workers", Action::ListWorkers),
    ("POST", "/workers", Action::RegisterWorker),
    ("DELETE", "/workers/{id}", Action::RemoveWorker),
    (
        "DELETE",
        "/workers/{id}/registration",
        Action::RegisterWorker,
    ),
    ("GET", "/audit", Action::ReadAudit),
    // Like reading queues: what a dashboard reads, every read role has it.
    ("GET", "/masters", Action::ReadQueues),
];

/// The action `method path` needs; `None` for a route missing from [`ROUTES`].
fn action_of(method: &str, path: &str) -> Option<Action> {
    // HEAD is served by the GET handler, so it needs what GET needs.
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, action)| *action)
}

/// What the middleware needs: the tokens, and the engine to record audited actions with.
#[derive(Debug, Clone)]
pub(super) struct Guard {
    pub access: Arc<Access>,
    pub engine: Arc<Engine>,
}

/// Middleware: identifies the caller, refuses it (`401`, `403`) unless its role has the route's
/// action, hands it to the handler as a [`Caller`] extension, and records audited actions.
pub(super) async fn authorize(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let action = action_of(request.method().as_str(), &matched);
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(common::auth::bearer_token);
    let for_workers = action.is_some_and(|action| roles::allows(Role::Worker, action));
    let Some(caller) = guard.access.identify(presented, for_workers) else {
        return ApiError::Unauthorized.into_response();
    };
    let target = format!("{} {}", request.method(), request.uri().path());
    let response = match permit(&caller, action) {
        Ok(()) => {
            request.extensions_mut().insert(caller.clone());
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    };
    match action.filter(|action| action.audited()) {
        Some(action) => record(&guard.engine, &caller, action, target, response).await,
        None => response,
    }
}

/// Whether `caller`'s role has `action`; a route missing from [`ROUTES`] is the admin's only.
fn permit(caller: &Caller, action: Option<Action>) -> Result<(), ApiError> {
    let allowed = match action {
        Some(action) => caller.may(action),
        None => caller.role == Role::Admin,
    };
    if allowed {
        return Ok(());
    }
    crate::metrics::forbidden(caller.role.as_str(), "role");
    Err(ApiError::RoleForbids {
        name: caller.name.to_string(),
        role: caller.role.as_str(),
        action: action.map_or("use this endpoint", Action::name),
    })
}

/// Records an audited action's outcome durably, then answers. The action and its record are
/// two commits: a crash between them leaves an action done (or refused) without its record,
/// and its client without an answer, so it asks again and that is recorded. A record that
/// cannot be written turns the answer into a `503` for the same reason: the client does not
/// hear of an action the log does not hold.
async fn record(
    engine: &Engine,
    caller: &Caller,
    action: Action,
    target: String,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    match engine
        .record_audit(&caller.name, action.name(), target, status)
        .await
    {
        Ok(()) => response,
        Err(e) => ApiError::from(e).into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller [`authorize`] identified; on a route it does not guard, nobody (a bug).
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// `403` unless `queue` is in `caller`'s scope.
pub(super) fn check_queue(caller: &Caller, queue: &str) -> Result<(), ApiError> {
    if caller.scope.allows(queue) {
        return Ok(());
    }
    Err(out_of_scope(caller, &format!("`{queue}`")))
}

/// `403` unless `queue` is named and in `caller`'s scope; an unscoped caller may name none
/// (every queue). A scoped token lists and acts on one of its queues at a time: the store
/// filters by one queue, not by prefixes, and a result silently narrowed would read as "no
/// other tasks". `naming` says where the request names its queue.
pub(super) fn check_named_queue(
    caller: &Caller,
    queue: Option<&str>,
    naming: &str,
) -> Result<(), ApiError> {
    match queue {
        Some(queue) => check_queue(caller, queue),
        None if !caller.scope.is_all() => Err(out_of_scope(
            caller,
            &format!("every queue (name one {naming})"),
        )),
        None => Ok(()),
    }
}

/// `403` unless every one of `queues` is in `caller`'s scope.
pub(super) fn check_queues<'q>(
    caller: &Caller,
    queues: impl IntoIterator<Item = &'q str>,
) -> Result<(), ApiError> {
    queues
        .into_iter()
        .try_for_each(|queue| check_queue(caller, queue))
}

/// `403` unless task `id`'s queue is in `caller`'s scope; the task is read only for a scoped
/// caller, so unscoped tokens (workers' usual ones) cost no extra read.
pub(super) async fn check_task(
    engine: &Engine,
    caller: &Caller,
    id: common::TaskId,
) -> Result<(), ApiError> {
    if caller.scope.is_all() {
        return Ok(());
    }
    let task = engine.get(id).await?;
    check_queue(caller, &task.queue)
}

/// `403` for a request that concerns what `what` names, outside `caller`'s scope.
pub(super) fn out_of_scope(caller: &Caller, what: &str) -> ApiError {
    crate::metrics::forbidden(caller.role.as_str(), "queue_scope");
    let prefixes = caller
        .scope
        .prefixes_list()
        .unwrap_or_default()
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::OutOfScope(format!(
        "token `{}` may use only queues starting with {prefixes}, not {what}",
        caller.name
    ))
}

/// `403` for a scoped caller: what it asks for spans every queue.
pub(super) fn require_all_queues(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.scope == Scope::all() {
        return Ok(());
    }
    Err(out_of_scope(caller, what))
}

/// Who am I
///
/// The name, role and queue scope of the token the request is made with (what the console
/// shows, and how to check a token before using it).
#[utoipa::path(
    get, path = "/whoami", operation_id = "whoAmI", tag = "access",
    security(("apiToken" = []), ("workerToken" = [])),
    responses(
        (status = 200, description = "The token's name, role and scope.", body = WhoAmI,
            example = json!(WhoAmI { name: "ci".into(), role: Role::Producer,
                queues: Some(vec!["billing-".into()]) })),
        (status = 401, response = Unauthorized),
    ),
)]
pub(super) async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(caller.whoami())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_listed_twice() {
        for (i, (method, path, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..]
                    .iter()
                    .any(|(m, p, _)| m == method && p == path),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn head_needs_what_get_needs() {
        assert_eq!(action_of("HEAD", "/queues"), Some(Action::ReadQueues));
    }
}
