//! The HTTP API: routes, extractors, auth, errors and the OpenAPI document. The only module that
//! knows about HTTP; every handler is a thin call into the [`Engine`].

mod access;
mod audit;
mod auth;
mod console;
mod docs;
mod error;
mod extract;
mod leases;
mod masters;
mod observe;
pub mod openapi;
mod operations;
mod parse_errors;
mod probes;
mod queues;
mod serve;
mod tasks;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::TraceLayer;

use access::Guard;
pub use error::ApiError;
pub use serve::{ConnectionLimits, serve};

use crate::access::Access;
use crate::engine::Engine;
use crate::push::Dispatcher;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub dispatcher: Arc<Dispatcher>,
    pub metrics: PrometheusHandle,
}

/// What one request may send.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Larger bodies are answered `413`.
    pub max_bytes: usize,
    /// Time from a request's headers to the end of its body; later, `408`.
    pub read_timeout: Duration,
}

/// The master's routes, with auth, body limits and tracing applied. Which token may use which
/// route is `access::ROUTES`: a route added to `guarded` needs a line there.
pub fn router(
    state: AppState,
    access: Arc<Access>,
    metrics_token: Option<String>,
    body: BodyLimits,
) -> Router {
    let guard = Guard {
        access,
        engine: state.engine.clone(),
    };
    let guarded = Router::new()
        .route("/whoami", get(access::whoami))
        .route("/tasks", post(tasks::submit).get(tasks::list))
        .route("/tasks/batch", post(tasks::submit_batch))
        .route("/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/tasks/{id}/retry", post(tasks::retry))
        .route("/tasks/{id}/attempts", get(tasks::attempts))
        .route("/tasks/lease", post(leases::lease))
        .route("/tasks/{id}/heartbeat", post(leases::heartbeat))
        .route("/tasks/{id}/result", post(leases::result))
        .route("/tasks/results", post(leases::results))
        .route("/tasks/{id}/release", post(leases::release))
        .route("/tasks/bulk", post(operations::bulk))
        .route("/operations", get(operations::list))
        .route("/operations/{id}", get(operations::get))
        .route("/queues", get(queues::list))
        .route("/queues/{name}", get(queues::get).patch(queues::patch))
        .route("/queues/{name}/history", get(queues::history))
        .route("/activity", get(queues::activity))
        .route("/queues/{name}/pause", post(queues::pause))
        .route("/queues/{name}/resume", post(queues::resume))
        .route("/queues/{name}/seal", post(queues::seal))
        .route("/queues/{name}/unseal", post(queues::unseal))
        .route("/workers", get(workers::list).post(workers::register))
        .route("/workers/{id}", delete(workers::remove))
        .route("/workers/{id}/registration", delete(workers::withdraw))
        .route("/masters", get(masters::list))
        .route("/audit", get(audit::list))
        .route_layer(from_fn_with_state(guard, access::authorize));
    let metrics = Router::new()
        .route("/metrics", get(probes::metrics))
        .route_layer(from_fn_with_state(
            metrics_token,
            auth::require_metrics_token,
        ));
    let open = Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/openapi.yaml", get(openapi::openapi_yaml))
        .route("/docs", get(openapi::docs))
        .route(docs::SCALAR_JS_PATH, get(docs::scalar_js))
        .merge(console::router());
    guarded
        .merge(metrics)
        .merge(open)
        .fallback(probes::not_found)
        .method_not_allowed_fallback(probes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body.max_bytes))
        // A deadline for the whole body, not a pause between two reads of it, so that a client
        // cannot hold a connection by sending a byte now and then. It runs out only while the
        // body is read: handlers read it first, and a long-poll waits after.
        .layer(RequestBodyDeadlineLayer::new(body.read_timeout))
        .layer(TraceLayer::new_for_http())
        .layer(from_fn(observe::record))
        .with_state(state)
}
