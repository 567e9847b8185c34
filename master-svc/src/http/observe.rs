//! Request metrics: every answer the router gives is counted and timed by method, route template
//! and status (`leasehold_http_requests_total`, `leasehold_http_request_duration_seconds`).
//!
//! It runs on every request, so it only reads the clock twice and records two series; the route
//! is the template the router matched (`/tasks/{id}`), so a path a client makes up cannot add a
//! series. Answers hyper gives before the router (a connection over the cap, a head too large)
//! are not counted here.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics;

/// The route label of a request no route matched (a `404` from the fallback).
const UNMATCHED: &str = "unmatched";

/// The middleware: layered with `Router::layer`, so the matched route is known.
pub(super) async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics::http_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// The method as a label: the standard ones by name, any other as `other`, so that a client
/// cannot add series by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
