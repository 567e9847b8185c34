//! The OpenAPI document of both services, generated from the code: the operations are the
//! `#[utoipa::path]` annotations on the handlers (the master's beside this module, the worker's
//! in `worker_svc::http`), the schemas and problem responses come from `common`. `openapi.yaml`
//! at the repository root is this document as the `openapi` binary prints it, and a test fails
//! when the two differ. The master serves it at `/openapi.json`, `/openapi.yaml` and, as a page,
//! `/docs`.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use common::Problem;
use common::openapi::{
    API_TOKEN, Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge,
    PushAddressNotAllowed, TooManyWorkers, Unauthorized, Unavailable, UnsupportedMediaType,
    WORKER_TOKEN, WorkerIdReserved,
};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Server};
use utoipa::{Modify, OpenApi};
use utoipa_scalar::Scalar;
use worker_svc::http::WorkerApi;

use super::{leases, probes, queues, tasks, workers};

/// Where the worker's operations are served, by default.
const WORKER_SERVER: &str = "http://localhost:8081";

/// The master's operations.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Leasehold",
        description = "A master holds tasks and hands them to workers under leases. A lease \
            expires if its worker dies or stalls; the task then goes back to its queue, and a \
            late result from the old lease is refused with `409` (fencing).\n\n\
            Every body is JSON; every error is `application/problem+json` (RFC 9457) whose \
            `type` names the problem, e.g. `https://leasehold.dev/problems/lease-expired`. A \
            path that does not exist is a `404` problem, and a method a path does not take a \
            `405` problem (`https://leasehold.dev/problems/method-not-allowed`).\n\n\
            Auth: when the master runs with `--api-token`, every operation but the probes, \
            metrics and docs needs `Authorization: Bearer <token>` (`apiToken`); with \
            `--worker-token`, the worker operations (`leases`, and registering and withdrawing \
            a push worker) also take that token (`workerToken`); listing and removing push \
            workers are the operator's. A missing or wrong token is a `401` with \
            `WWW-Authenticate: Bearer`, a worker token on an operator operation a `403`. \
            Without tokens, everything is open.\n\n\
            The `worker` operation is served by each worker's own server (port 8081 by \
            default); the probes by both services."
    ),
    servers((url = "http://localhost:8080", description = "A master (`--listen`, port 8080 by default)")),
    paths(
        tasks::submit, tasks::submit_batch, tasks::list, tasks::get, tasks::cancel, tasks::retry,
        leases::lease, leases::heartbeat, leases::result, leases::results, leases::release,
        queues::list, queues::get, queues::seal, queues::unseal,
        workers::register, workers::withdraw, workers::list, workers::remove,
        probes::healthz, probes::readyz, probes::metrics,
        openapi_json, openapi_yaml, docs,
    ),
    components(
        schemas(Problem),
        responses(
            InvalidRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
            UnsupportedMediaType, Unavailable, WorkerIdReserved, TooManyWorkers,
            PushAddressNotAllowed,
        ),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "tasks", description = "Producers and operators: submit, look at, list, cancel and retry tasks."),
        (name = "leases", description = "Workers: lease tasks, keep the leases alive, report results, hand tasks back."),
        (name = "queues", description = "Operators: counts per queue; seal and unseal."),
        (name = "workers", description = "Push mode: the workers the master pushes tasks to."),
        (name = "worker", description = "A worker's own server: the push entry point."),
        (name = "probes", description = "Liveness, readiness and Prometheus metrics; never need a token."),
        (name = "docs", description = "This document, and a page to read it."),
    ),
)]
struct MasterApi;

/// The bearer schemes the `security` of each operation names.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            API_TOKEN,
            bearer("The master's `--api-token` (producers and operators): opens every operation."),
        );
        components.add_security_scheme(
            WORKER_TOKEN,
            bearer(
                "`--worker-token`: opens the master's worker operations (lease, heartbeat, \
                 result, release, registering and withdrawing a push worker), and is what the \
                 master sends to a worker's `/do-task`.",
            ),
        );
    }
}

/// The whole document: the master's operations, then the worker's. A path both serve (the
/// probes) keeps the master's operation and names both servers.
pub fn document() -> Document {
    let mut document = MasterApi::openapi();
    let mut worker = WorkerApi::openapi();
    let master = document.servers.clone().unwrap_or_default();
    let worker_server = Server::builder()
        .url(WORKER_SERVER)
        .description(Some("A worker (`--listen`, port 8081 by default)"))
        .build();
    for (path, mut item) in std::mem::take(&mut worker.paths.paths) {
        match document.paths.paths.get_mut(&path) {
            Some(shared) => {
                let both = master.iter().cloned().chain([worker_server.clone()]);
                shared.servers = Some(both.collect());
            }
            None => {
                item.servers = Some(vec![worker_server.clone()]);
                document.paths.paths.insert(path, item);
            }
        }
    }
    document.merge(worker);
    common::openapi::SchemaExamples.modify(&mut document);
    camel_case_links(&mut document);
    document
}

/// utoipa 5 writes the fields of a Link object in snake case (`operation_id`, `request_body`),
/// which no tool reads; utoipa 6 fixes it but needs Rust 1.88. Until then each response's links
/// are written out here with the spec's names, in the response's extensions (which serialize
/// flattened into the response object, so the key reads `links` as it should).
fn camel_case_links(document: &mut Document) {
    let operations = document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    });
    let responses = operations.flat_map(|operation| operation.responses.responses.values_mut());
    for response in responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if response.links.is_empty() {
            continue;
        }
        let links: serde_json::Map<String, Value> = std::mem::take(&mut response.links)
            .into_iter()
            .map(|(name, link)| {
                (
                    name,
                    camel_case(serde_json::to_value(link).unwrap_or_default()),
                )
            })
            .collect();
        response
            .extensions
            .get_or_insert_with(Default::default)
            .insert("links".into(), Value::Object(links));
    }
}

fn camel_case(link: Value) -> Value {
    let Value::Object(fields) = link else {
        return link;
    };
    let renamed = fields.into_iter().map(|(name, value)| {
        let name = match name.as_str() {
            "operation_id" => "operationId".to_owned(),
            "operation_ref" => "operationRef".to_owned(),
            "request_body" => "requestBody".to_owned(),
            _ => name,
        };
        (name, value)
    });
    Value::Object(renamed.collect())
}

/// The document as `openapi.yaml` holds it.
pub fn yaml() -> String {
    document().to_yaml().expect("the document serializes")
}

static JSON: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_pretty_json()
        .expect("the document serializes")
});
static YAML: LazyLock<String> = LazyLock::new(yaml);
static PAGE: LazyLock<String> = LazyLock::new(|| Scalar::new(document()).to_html());

/// This document, as JSON
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapiJson", tag = "docs",
    responses((status = 200, description = "The OpenAPI document.", body = Object,
        example = json!({ "openapi": "3.1.0", "info": { "title": "Leasehold" } }))))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

/// This document, as YAML
#[utoipa::path(get, path = "/openapi.yaml", operation_id = "openapiYaml", tag = "docs",
    responses((status = 200, description = "The OpenAPI document (the repository's openapi.yaml).",
        body = Object, content_type = "application/yaml",
        example = json!("openapi: 3.1.0\ninfo:\n  title: Leasehold\n"))))]
pub async fn openapi_yaml() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], YAML.as_str())
}

/// Interactive API reference
///
/// A page that renders this document with Scalar (loaded by the browser from its CDN).
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "docs",
    responses((status = 200, description = "An HTML page.", body = String,
        content_type = "text/html", example = json!("<!doctype html>..."))))]
pub async fn docs() -> Html<&'static str> {
    Html(PAGE.as_str())
}
