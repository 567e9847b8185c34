//! Bad request bodies: every class gets a `400` `invalid-request` problem and changes nothing.
//!
//! Each test sends its cases against a master holding one queued and one leased task, and checks
//! afterwards that no task and no queue changed.

use common::{LeasedTask, QueueInfo, Task};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// A master with one queued task and one leased task, and a snapshot to compare against.
struct Scene {
    app: TestApp,
    leased: LeasedTask,
    tasks: Vec<Task>,
    queues: Vec<QueueInfo>,
}

impl Scene {
    async fn new() -> Scene {
        let app = spawn_app().await;
        app.submit_payload(json!("to be leased")).await;
        let leased = app.lease_one("w01").await;
        app.submit_payload(json!("queued")).await;
        let tasks = app.all_tasks().await;
        let queues = app.queue_list().await;
        Scene {
            app,
            leased,
            tasks,
            queues,
        }
    }

    fn task_path(&self, action: &str) -> String {
        format!("/tasks/{}/{action}", self.leased.task_id)
    }

    /// Sends each `(path, body)` as JSON and asserts a `400` problem naming the defect.
    async fn assert_all_refused(&self, cases: &[(String, String)]) {
        for (path, body) in cases {
            let response = self
                .app
                .post_raw(path, Some("application/json"), body)
                .await;
            let status = response.status();
            assert_eq!(status, StatusCode::BAD_REQUEST, "POST {path} {body}");
            assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
        }
        self.assert_unchanged().await;
    }

    async fn assert_unchanged(&self) {
        assert_eq!(self.app.all_tasks().await, self.tasks);
        assert_eq!(self.app.queue_list().await, self.queues);
    }

    fn lease_id(&self) -> Value {
        json!(self.leased.lease_id)
    }
}

fn case(path: &str, body: impl ToString) -> (String, String) {
    (path.to_owned(), body.to_string())
}

#[tokio::test]
async fn malformed_json_is_refused() {
    let scene = Scene::new().await;
    let cases: Vec<_> = ["/tasks", "/tasks/batch", "/tasks/lease"]
        .into_iter()
        .map(String::from)
        .chain(["heartbeat", "result", "release"].map(|a| scene.task_path(a)))
        .flat_map(|path| {
            [r#"{"payload": 1"#, "", "not json", r#"{"payload": 1}}"#].map(|b| case(&path, b))
        })
        .collect();
    scene.assert_all_refused(&cases).await;
}

#[tokio::test]
async fn fields_of_the_wrong_type_are_refused() {
    let scene = Scene::new().await;
    let lease_id = scene.lease_id();
    let cases = [
        case("/tasks", json!({ "payload": 1, "priority": "high" })),
        case("/tasks", json!({ "payload": 1, "max_attempts": "3" })),
        case("/tasks", json!({ "payload": 1, "queue": 7 })),
        case("/tasks", json!({ "payload": 1, "delay_secs": 1.5 })),
        case(
            "/tasks",
            json!({ "payload": 1, "priority": 3_000_000_000_i64 }),
        ),
        case("/tasks", json!([{ "payload": 1 }])),
        case("/tasks/batch", json!({ "tasks": { "payload": 1 } })),
        case("/tasks/batch", json!([{ "payload": 1 }])),
        case("/tasks/lease", json!({ "worker_id": 5 })),
        case(
            "/tasks/lease",
            json!({ "worker_id": "w", "max_tasks": "8" }),
        ),
        case(
            "/tasks/lease",
            json!({ "worker_id": "w", "queues": "default" }),
        ),
        case(&scene.task_path("heartbeat"), json!({ "lease_id": 12 })),
        case(
            &scene.task_path("result"),
            json!({ "lease_id": lease_id, "worker_id": "w01", "outcome": "maybe" }),
        ),
        case(
            &scene.task_path("result"),
            json!({ "lease_id": lease_id, "worker_id": "w01", "outcome": "failed",
                    "retry": "no" }),
        ),
        case(
            &scene.task_path("release"),
            json!({ "lease_id": lease_id, "delay_secs": "soon" }),
        ),
    ];
    scene.assert_all_refused(&cases).await;
}

#[tokio::test]
async fn missing_required_fields_are_refused() {
    let scene = Scene::new().await;
    let lease_id = scene.lease_id();
    let cases = [
        case("/tasks", json!({})),
        case("/tasks", json!({ "queue": "default", "priority": 1 })),
        case("/tasks/batch", json!({})),
        case(
            "/tasks/batch",
            json!({ "tasks": [{ "payload": 1 }, { "queue": "q" }] }),
        ),
        case("/tasks/lease", json!({ "max_tasks": 1 })),
        case(&scene.task_path("heartbeat"), json!({})),
        case(
            &scene.task_path("result"),
            json!({ "lease_id": lease_id, "worker_id": "w01" }),
        ),
        case(
            &scene.task_path("result"),
            json!({ "lease_id": lease_id, "outcome": "succeeded" }),
        ),
        case(&scene.task_path("release"), json!({ "delay_secs": 1 })),
    ];
    scene.assert_all_refused(&cases).await;
}

#[tokio::test]
async fn unknown_fields_are_refused() {
    let scene = Scene::new().await;
    let lease_id = scene.lease_id();
    let cases = [
        case("/tasks", json!({ "payload": 1, "prority": 5 })),
        case(
            "/tasks/batch",
            json!({ "tasks": [{ "payload": 1, "delay": 5 }] }),
        ),
        case(
            "/tasks/batch",
            json!({ "tasks": [{ "payload": 1 }], "atomic": true }),
        ),
        case("/tasks/lease", json!({ "worker_id": "w", "max_task": 3 })),
        case(
            &scene.task_path("heartbeat"),
            json!({ "lease_id": lease_id, "lease_sec": 3 }),
        ),
        case(
            &scene.task_path("result"),
            json!({ "lease_id": lease_id, "worker_id": "w01", "outcome": "succeeded",
                    "results": 1 }),
        ),
        case(
            &scene.task_path("release"),
            json!({ "lease_id": lease_id, "delay": 3 }),
        ),
    ];
    scene.assert_all_refused(&cases).await;
}

#[tokio::test]
async fn numbers_out_of_range_are_refused() {
    let scene = Scene::new().await;
    let lease_id = scene.lease_id();
    let week = common::MAX_DURATION_SECS;
    let lease = |extra: Value| {
        let mut body = json!({ "worker_id": "w02" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        case("/tasks/lease", body)
    };
    let result = |extra: Value| {
        let mut body = json!({ "lease_id": lease_id, "worker_id": "w01", "outcome": "failed" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        case(&scene.task_path("result"), body)
    };
    let cases = [
        lease(json!({ "max_tasks": 0 })),
        lease(json!({ "max_tasks": 257 })),
        lease(json!({ "max_tasks": -1 })),
        lease(json!({ "wait_secs": 61 })),
        lease(json!({ "lease_secs": 0 })),
        lease(json!({ "lease_secs": week + 1 })),
        lease(json!({ "queues": [] })),
        lease(json!({ "queues": (0..33).map(|i| format!("q{i}")).collect::<Vec<_>>() })),
        case("/tasks", json!({ "payload": 1, "max_attempts": 0 })),
        case("/tasks", json!({ "payload": 1, "max_attempts": 1001 })),
        case("/tasks", json!({ "payload": 1, "delay_secs": -1 })),
        case("/tasks", json!({ "payload": 1, "delay_secs": week + 1 })),
        case("/tasks", json!({ "payload": 1, "lease_secs": 0 })),
        case("/tasks/batch", json!({ "tasks": [] })),
        case(
            "/tasks/batch",
            json!({ "tasks": vec![json!({ "payload": 0 }); common::MAX_BATCH_TASKS + 1] }),
        ),
        case(
            &scene.task_path("heartbeat"),
            json!({ "lease_id": lease_id, "lease_secs": 0 }),
        ),
        case(
            &scene.task_path("release"),
            json!({ "lease_id": lease_id, "delay_secs": -1 }),
        ),
        case(
            &scene.task_path("release"),
            json!({ "lease_id": lease_id, "delay_secs": week + 1 }),
        ),
        result(json!({ "retry_after_secs": -5 })),
        result(json!({ "retry_after_secs": week + 1 })),
    ];
    scene.assert_all_refused(&cases).await;
    // The valid neighbours of the limits are accepted.
    let edge = json!({ "worker_id": "w02", "max_tasks": 256, "wait_secs": 0 });
    assert_eq!(scene.app.lease(&edge).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_queue_names_are_refused() {
    let scene = Scene::new().await;
    let long = "q".repeat(common::MAX_NAME_LEN + 1);
    let bad = [
        "",
        "has space",
        "a/b",
        "ünïcode",
        "semi;colon",
        long.as_str(),
    ];
    let cases: Vec<_> = bad
        .iter()
        .flat_map(|name| {
            [
                case("/tasks", json!({ "payload": 1, "queue": name })),
                case(
                    "/tasks/batch",
                    json!({ "tasks": [{ "payload": 1 }, { "payload": 2, "queue": name }] }),
                ),
                case(
                    "/tasks/lease",
                    json!({ "worker_id": "w02", "queues": ["default", name] }),
                ),
            ]
        })
        .collect();
    scene.assert_all_refused(&cases).await;
}

#[tokio::test]
async fn empty_or_overlong_names_are_refused() {
    let scene = Scene::new().await;
    let lease_id = scene.lease_id();
    let long = "w".repeat(common::MAX_NAME_LEN + 1);
    let mut cases = Vec::new();
    for name in ["", long.as_str()] {
        cases.push(case("/tasks/lease", json!({ "worker_id": name })));
        cases.push(case(
            &scene.task_path("result"),
            json!({ "lease_id": lease_id, "worker_id": name, "outcome": "succeeded" }),
        ));
        cases.push(case(
            "/tasks",
            json!({ "payload": 1, "idempotency_key": name }),
        ));
    }
    scene.assert_all_refused(&cases).await;
}
