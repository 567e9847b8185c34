//! What the contract checks (scripts/contract.sh: schemathesis against openapi.yaml) found, each
//! pinned here: the service now does what the document says.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn integral_floats_are_accepted_where_an_integer_is_asked_for() {
    // JSON Schema's `integer` is any number without a fraction, so `60.0` is an integer.
    let app = spawn_app().await;
    let task = json!({ "payload": 1, "priority": 5.0, "max_attempts": 2.0, "delay_secs": 0.0,
                       "lease_secs": 60.0 });
    assert_eq!(app.submit(&task).await.status(), StatusCode::CREATED);
    let leased = app
        .lease(&json!({ "worker_id": "w01", "max_tasks": 1.0, "wait_secs": 0.0 }))
        .await;
    assert_eq!(leased.status(), StatusCode::OK);
    let leased: common::LeaseResponse = leased.json().await.unwrap();
    assert_eq!(leased.tasks.len(), 1);
    let id = leased.tasks[0].task_id.0;
    let beat = json!({ "lease_id": leased.tasks[0].lease_id, "lease_secs": 30.0 });
    assert_eq!(app.heartbeat(id, &beat).await.status(), StatusCode::OK);
    let release = json!({ "lease_id": leased.tasks[0].lease_id, "delay_secs": 0.0 });
    assert_eq!(app.release(id, &release).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn fractions_are_still_refused_where_an_integer_is_asked_for() {
    let app = spawn_app().await;
    let response = app.submit(&json!({ "payload": 1, "priority": 1.5 })).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
}

#[tokio::test]
async fn a_batch_task_written_as_an_array_is_refused_with_400() {
    // serde would read `[null, null]` as a task with a null payload and queue.
    let app = spawn_app().await;
    let response = app
        .post("/tasks/batch", &json!({ "tasks": [[null, null]] }))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    assert!(app.all_tasks().await.is_empty());
}

#[tokio::test]
async fn names_are_limited_in_characters_not_bytes() {
    // 200 characters of two bytes each: within the document's `maxLength: 200`.
    let app = spawn_app().await;
    let name = "é".repeat(common::MAX_NAME_LEN);
    let task = json!({ "payload": 1, "idempotency_key": name });
    assert_eq!(app.submit(&task).await.status(), StatusCode::CREATED);
    let leased = app.lease(&json!({ "worker_id": name })).await;
    assert_eq!(leased.status(), StatusCode::OK);
    let too_long = json!({ "worker_id": "é".repeat(common::MAX_NAME_LEN + 1) });
    assert_problem(
        app.lease(&too_long).await,
        StatusCode::BAD_REQUEST,
        "invalid-request",
    )
    .await;
}

#[tokio::test]
async fn a_push_registration_for_no_pushed_queue_is_refused_with_400() {
    // Before, it was accepted and its feeder retried a lease of no queue every second.
    let app = spawn_app_with(|config| config.push_queues = Some(vec!["push".into()])).await;
    let registration = json!({ "id": "w02", "url": "http://127.0.0.1:9", "queues": ["default"] });
    let response = app.post("/workers", &registration).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    let listed: common::WorkerList = app.get("/workers").await.json().await.unwrap();
    assert!(listed.workers.is_empty());
}

#[tokio::test]
async fn a_push_registration_the_master_cannot_reach_is_refused_with_400() {
    // Before, they were accepted and every push to them failed: the first names no host, the
    // second's port is not a number, the third is not HTTP.
    let app = spawn_app().await;
    for url in ["http://", "http://127.0.0.1:port", "ftp://127.0.0.1:9"] {
        let registration = json!({ "id": "w03", "url": url });
        let response = app.post("/workers", &registration).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    let listed: common::WorkerList = app.get("/workers").await.json().await.unwrap();
    assert!(listed.workers.is_empty());
}
