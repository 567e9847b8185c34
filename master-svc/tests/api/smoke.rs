use common::TaskState;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_submitted_task_is_leased_and_completed() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    assert_eq!(leased.task_id, task.id);
    assert_eq!(leased.attempt, 1);
    let response = app
        .succeed(&leased, "w01", json!("Processed data from task 1"))
        .await;
    assert_eq!(response.status(), 200);
    let done = app.task(task.id.0).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.worker_id.as_deref(), Some("w01"));
    assert_eq!(done.result, Some(json!("Processed data from task 1")));
}
