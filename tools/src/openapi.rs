//! The OpenAPI document of both services, generated from the code: the master's operations
//! ([`MasterApi`], from the `#[utoipa::path]` annotations on its handlers) merged with the
//! worker's ([`WorkerApi`]). `openapi.yaml` at the repository root is [`yaml`]'s output, which
//! the master serves as committed; `tests/openapi.rs` fails when the two differ.

use master_svc::http::openapi::MasterApi;
use serde_json::Value;
use utoipa::openapi::server::ServerVariableBuilder;
use utoipa::openapi::{OpenApi as Document, RefOr, Server};
use utoipa::{Modify, OpenApi};
use worker_svc::http::WorkerApi;

/// Where the worker's operations are served: each worker's own address, which is not the
/// master's (so no relative URL will do) and not known here; a server variable, defaulting to a
/// worker started by hand beside the master, which a reader or a generated client fills in.
const WORKER_SERVER: &str = "http://{worker}";
/// The default of [`WORKER_SERVER`]'s variable: a worker's default `--listen` port.
const WORKER_DEFAULT: &str = "localhost:8081";

/// The whole document: the master's operations, then the worker's. A path both serve (the
/// probes) keeps the master's operation and names both servers.
pub fn document() -> Document {
    let mut document = MasterApi::openapi();
    let mut worker = WorkerApi::openapi();
    let master = document.servers.clone().unwrap_or_default();
    let worker_server = Server::builder()
        .url(WORKER_SERVER)
        .description(Some("A worker's own server"))
        .parameter(
            "worker",
            ServerVariableBuilder::new()
                .default_value(WORKER_DEFAULT)
                .description(Some("The worker's `--listen` address: host and port")),
        )
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
    // After the merge, which keeps the master's copy of a schema both documents have: schemas
    // only the worker's document has get their examples too.
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
