//! Roles: every role × endpoint pair answers as the roles table of the README says, from a
//! table written here apart from the master's own (`access::roles`, `http::access::ROUTES`),
//! so that a change to either shows up as a difference.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// The roles, in the order of [`EXPECTED`]'s columns, each with its token.
pub(crate) const ROLES: [(&str, &str); 5] = [
    ("producer", "tok-producer"),
    ("worker", "tok-worker"),
    ("operator", "tok-operator"),
    ("read-only", "tok-read-only"),
    ("admin", "tok-admin"),
];

/// A master with `tokens` (the `tokens` array of a tokens file) and the dir holding the file,
/// which must live as long as the master.
pub(crate) async fn spawn_with_tokens(
    tokens: Value,
    configure: impl FnOnce(&mut master_svc::Config),
) -> (TestApp, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    std::fs::write(&path, json!({ "tokens": tokens }).to_string()).unwrap();
    let app = spawn_app_with(|config| {
        config.tokens_file = Some(path);
        configure(config);
    })
    .await;
    (app, dir)
}

/// One unscoped token per role, named after it.
pub(crate) async fn spawn_with_every_role() -> (TestApp, TempDir) {
    let tokens = ROLES
        .iter()
        .map(|(role, token)| json!({ "name": role, "token": token, "role": role }))
        .collect();
    spawn_with_tokens(Value::Array(tokens), |_| {}).await
}

/// Each endpoint, and whether producer, worker, operator, read-only and admin may use it.
const EXPECTED: &[(&str, &str, [bool; 5])] = &[
    //                                       prod   worker  oper   r-o    admin
    ("GET", "/whoami", [true, true, true, true, true]),
    ("POST", "/tasks", [true, false, true, false, true]),
    ("POST", "/tasks/batch", [true, false, true, false, true]),
    ("GET", "/tasks", [true, false, true, true, true]),
    ("GET", "/tasks/{id}", [true, false, true, true, true]),
    (
        "GET",
        "/tasks/{id}/attempts",
        [true, false, true, true, true],
    ),
    ("DELETE", "/tasks/{id}", [false, false, true, false, true]),
    (
        "POST",
        "/tasks/{id}/retry",
        [false, false, true, false, true],
    ),
    ("POST", "/tasks/bulk", [false, false, true, false, true]),
    ("GET", "/operations", [false, false, true, true, true]),
    ("GET", "/operations/{id}", [false, false, true, true, true]),
    ("POST", "/tasks/lease", [false, true, true, false, true]),
    (
        "POST",
        "/tasks/{id}/heartbeat",
        [false, true, true, false, true],
    ),
    (
        "POST",
        "/tasks/{id}/result",
        [false, true, true, false, true],
    ),
    ("POST", "/tasks/results", [false, true, true, false, true]),
    (
        "POST",
        "/tasks/{id}/release",
        [false, true, true, false, true],
    ),
    ("GET", "/queues", [false, false, true, true, true]),
    ("GET", "/queues/{name}", [false, false, true, true, true]),
    ("PATCH", "/queues/{name}", [false, false, true, false, true]),
    (
        "POST",
        "/queues/{name}/pause",
        [false, false, true, false, true],
    ),
    (
        "POST",
        "/queues/{name}/resume",
        [false, false, true, false, true],
    ),
    (
        "POST",
        "/queues/{name}/seal",
        [false, false, true, false, true],
    ),
    (
        "POST",
        "/queues/{name}/unseal",
        [false, false, true, false, true],
    ),
    ("GET", "/workers", [false, false, true, true, true]),
    ("POST", "/workers", [false, true, true, false, true]),
    ("DELETE", "/workers/{id}", [false, false, true, false, true]),
    (
        "DELETE",
        "/workers/{id}/registration",
        [false, true, true, false, true],
    ),
    ("GET", "/audit", [false, false, true, true, true]),
    ("GET", "/masters", [false, false, true, true, true]),
];

/// A body each endpoint takes (what it does with it does not matter here, only that the
/// answer is not a `401` or `403`).
fn body(method: &str, path: &str) -> Option<Value> {
    let lease = json!({ "lease_id": "00000000-0000-0000-0000-000000000000" });
    Some(match (method, path) {
        ("POST", "/tasks") => json!({ "payload": 1 }),
        ("POST", "/tasks/batch") => json!({ "tasks": [{ "payload": 1 }] }),
        ("POST", "/tasks/lease") => json!({ "worker_id": "w9", "wait_secs": 0 }),
        ("POST", "/tasks/{id}/heartbeat" | "/tasks/{id}/release") => lease,
        ("POST", "/tasks/{id}/result") => json!({
            "lease_id": "00000000-0000-0000-0000-000000000000",
            "worker_id": "w9", "outcome": "succeeded", "result": 1 }),
        ("POST", "/tasks/results") => json!({ "results": [] }),
        ("PATCH", "/queues/{name}") => json!({ "max_in_flight": 5 }),
        ("POST", "/workers") => json!({ "id": "pod-z", "url": "http://127.0.0.1:9" }),
        ("POST", _) => json!({}),
        _ => return None,
    })
}

async fn call(app: &TestApp, method: &str, path: &str, task_id: i64) -> reqwest::Response {
    let url = path
        .replace("{id}", &task_id.to_string())
        .replace("{name}", "default");
    let url = if path == "/workers/{id}" || path == "/workers/{id}/registration" {
        path.replace("{id}", "nobody")
    } else {
        url
    };
    let method: Method = method.parse().unwrap();
    let mut request = app.client.request(method.clone(), app.url(&url));
    if let Some(body) = body(method.as_str(), path) {
        let content_type = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        request = request
            .header("content-type", content_type)
            .body(body.to_string());
    }
    if let Some(token) = &app.token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn every_role_may_use_exactly_the_endpoints_of_its_row_in_the_roles_table() {
    let (mut app, _tokens) = spawn_with_every_role().await;
    app.token = Some("tok-admin".into());
    let task_id = app.submit_payload(json!(0)).await.id.0;

    let mut wrong = Vec::new();
    for (method, path, allowed) in EXPECTED {
        for ((role, token), allowed) in ROLES.iter().zip(allowed) {
            app.token = Some((*token).into());
            let response = call(&app, method, path, task_id).await;
            let status = response.status();
            let opened = status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN;
            if opened != *allowed {
                wrong.push(format!("{role} {method} {path}: {status}"));
            } else if !allowed {
                assert_problem(response, StatusCode::FORBIDDEN, "forbidden-by-role").await;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answered against the table:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn a_refusal_by_role_names_the_token_its_role_and_the_action() {
    let (mut app, _tokens) = spawn_with_every_role().await;
    app.token = Some("tok-read-only".into());
    let response = app.seal("default").await;
    let problem = assert_problem(response, StatusCode::FORBIDDEN, "forbidden-by-role").await;
    let detail = problem.detail.unwrap();
    assert!(
        detail.contains("`read-only`") && detail.contains("seal"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_unknown_token_is_refused_with_401_when_a_tokens_file_is_set() {
    let (mut app, _tokens) = spawn_with_every_role().await;
    app.token = Some("tok-nobody".into());
    assert_eq!(app.whoami().await.status(), StatusCode::UNAUTHORIZED);
    app.token = None;
    assert_eq!(app.queues().await.status(), StatusCode::UNAUTHORIZED);
}
