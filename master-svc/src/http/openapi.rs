//! The master's part of the OpenAPI document, and the serving of the whole one. The operations
//! are the `#[utoipa::path]` annotations on the handlers beside this module; the schemas and
//! problem responses come from `common`. `leasehold-tools` merges [`MasterApi`] with the
//! worker's operations into `openapi.yaml` at the repository root (its `openapi` binary), and its
//! test fails when the committed file is not what the code generates. The master serves that
//! committed file, so it does not build the worker's code: as is at `/openapi.yaml`, as JSON at
//! `/openapi.json` and, as a page, at `/docs`.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use common::Problem;
use common::openapi::{
    API_TOKEN, Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge,
    PushAddressNotAllowed, TooManyWorkers, Unauthorized, Unavailable, UnsupportedMediaType,
    WORKER_TOKEN, WorkerIdReserved,
};
use serde::Serialize;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_scalar::Scalar;

use super::{access, audit, docs, leases, masters, operations, probes, queues, tasks, workers};

/// The master's operations (`leasehold-tools` adds the worker's to make `openapi.yaml`).
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
            Auth: when the master runs with tokens (`--tokens-file`, `--api-token`, \
            `--worker-token`), every operation but the probes, metrics and docs needs \
            `Authorization: Bearer <token>`. Each token has a role (`producer`, `worker`, \
            `operator`, `read-only`, `admin`; `--api-token` is an admin, `--worker-token` a \
            worker) and may be limited to queues whose names start with given prefixes; \
            `GET /whoami` says which. A missing or wrong token is a `401` with \
            `WWW-Authenticate: Bearer`; an operation outside the token's role a `403` \
            `forbidden-by-role`, a queue outside its prefixes a `403` \
            `forbidden-by-queue-scope`. Without tokens, everything is open.\n\n\
            The `worker` operation is served by each worker's own server (port 8081 by \
            default); the probes by both services."
    ),
    // Relative: the master serves this document, so its own origin is the right server whatever
    // address it was reached at; a file read from disk leaves the base URL to the reader.
    servers((url = "/", description = "The master this document was fetched from (`--listen`, \
        port 8080 by default)")),
    paths(
        tasks::submit, tasks::submit_batch, tasks::list, tasks::get, tasks::attempts, tasks::cancel,
        tasks::retry, operations::bulk, operations::get, operations::list,
        leases::lease, leases::heartbeat, leases::result, leases::results, leases::release,
        queues::list, queues::get, queues::history, queues::activity, queues::patch, queues::pause,
        queues::resume, queues::seal, queues::unseal,
        workers::register, workers::withdraw, workers::list, workers::remove,
        masters::list,
        access::whoami, audit::list,
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
        (name = "queues", description = "Operators: counts per queue; flow control (pause, \
            in-flight cap, rate limit, per-key limit); seal and unseal."),
        (name = "workers", description = "The workers: those the master pushes tasks to, and \
            those pulling theirs."),
        (name = "masters", description = "Operators: the masters sharing the store."),
        (name = "worker", description = "A worker's own server: the push entry point."),
        (name = "access", description = "Who a token is, and the audit log of operator actions."),
        (name = "probes", description = "Liveness, readiness and Prometheus metrics; never need a token."),
        (name = "docs", description = "This document, and a page to read it."),
    ),
)]
pub struct MasterApi;

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

/// `openapi.yaml` as committed: what the master serves.
const YAML: &str = include_str!("../../../openapi.yaml");

/// The committed document, parsed. A YAML value keeps its keys in the file's order (a
/// `serde_json::Value` would sort them), so the JSON written from it reads as the YAML does.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
struct Committed(serde_norway::Value);

impl utoipa_scalar::Spec for Committed {}

static COMMITTED: LazyLock<Committed> = LazyLock::new(|| {
    Committed(serde_norway::from_str(YAML).expect("the committed openapi.yaml parses"))
});
static JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&*COMMITTED).expect("the document serializes"));
static PAGE: LazyLock<String> = LazyLock::new(|| {
    Scalar::new(COMMITTED.clone())
        .custom_html(docs::template())
        .to_html()
});

/// This document, as JSON
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapiJson", tag = "docs",
    security(),
    responses((status = 200, description = "The OpenAPI document.", body = Object,
        example = json!({ "openapi": "3.1.0", "info": { "title": "Leasehold" } }))))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

/// This document, as YAML
#[utoipa::path(get, path = "/openapi.yaml", operation_id = "openapiYaml", tag = "docs",
    security(),
    responses((status = 200, description = "The OpenAPI document (the repository's openapi.yaml).",
        body = Object, content_type = "application/yaml",
        example = json!({ "openapi": "3.1.0", "info": { "title": "Leasehold" } }))))]
pub async fn openapi_yaml() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], YAML)
}

/// Interactive API reference
///
/// A page that renders this document with Scalar, whose script the master serves itself (no
/// internet needed).
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "docs",
    security(),
    responses((status = 200, description = "An HTML page.", body = String,
        content_type = "text/html", example = json!("<!doctype html>..."))))]
pub async fn docs() -> Html<&'static str> {
    Html(PAGE.as_str())
}
