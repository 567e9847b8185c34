//! Waiting for a task to finish: `GET /tasks/{id}?wait_secs=` and `POST /tasks?wait_secs=`,
//! woken by the commit that finishes the task.

use std::time::Duration;

use common::{Task, TaskState};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// Far below the waits the tests ask for: a waiter answered this fast was woken, not timed out.
const PROMPT: Duration = Duration::from_secs(2);

/// `GET /tasks/{id}?wait_secs=20` in the background.
fn wait_for(app: &TestApp, id: i64) -> tokio::task::JoinHandle<(StatusCode, Task)> {
    let (client, url) = (
        app.client.clone(),
        app.url(&format!("/tasks/{id}?wait_secs=20")),
    );
    tokio::spawn(async move {
        let response = client.get(url).send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    })
}

#[tokio::test]
async fn a_waiter_is_answered_as_soon_as_the_result_commits() {
    let app = spawn_app().await;
    let id = app.submit_payload(json!("hello")).await.id.0;
    let waiter = wait_for(&app, id);
    app.wait_for_result_waiters(1).await;

    let leased = app.lease_one("w01").await;
    let finished_at = Instant::now();
    app.succeed(&leased, "w01", json!("HELLO")).await;
    let (status, task) = waiter.await.unwrap();

    assert!(
        finished_at.elapsed() < PROMPT,
        "woken after {:?}",
        finished_at.elapsed()
    );
    assert_eq!((status, task.state), (StatusCode::OK, TaskState::Succeeded));
    assert_eq!(task.result, Some(json!("HELLO")));
}

#[tokio::test]
async fn a_waiter_is_answered_when_the_task_is_cancelled_or_fails_for_good() {
    let app = spawn_app().await;
    let queued = app.submit_payload(json!(1)).await.id.0;
    let waiter = wait_for(&app, queued);
    app.wait_for_result_waiters(1).await;
    app.cancel(queued).await;
    assert_eq!(waiter.await.unwrap().1.state, TaskState::Cancelled);

    let failing = app.submit_payload(json!(2)).await.id.0;
    let waiter = wait_for(&app, failing);
    app.wait_for_result_waiters(1).await;
    let leased = app.lease_one("w01").await;
    app.fail(&leased, "w01", Some(false), None).await;
    assert_eq!(waiter.await.unwrap().1.state, TaskState::Failed);
}

#[tokio::test]
async fn a_retried_failure_does_not_answer_the_waiter() {
    let app = spawn_app().await;
    let id = app.submit_payload(json!(1)).await.id.0;
    let waiter = wait_for(&app, id);
    app.wait_for_result_waiters(1).await;
    let leased = app.lease_one("w01").await;
    app.fail(&leased, "w01", None, Some(0)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "answered before the task finished");

    let again = app.lease_one("w01").await;
    app.succeed(&again, "w01", json!("done")).await;
    assert_eq!(waiter.await.unwrap().1.state, TaskState::Succeeded);
}

#[tokio::test]
async fn a_wait_that_runs_out_answers_the_task_as_it_is() {
    let app = spawn_app().await;
    let id = app.submit_payload(json!(1)).await.id.0;
    let started = Instant::now();
    let response = app.get(&format!("/tasks/{id}?wait_secs=1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let task: Task = response.json().await.unwrap();
    assert_eq!(task.state, TaskState::Queued);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(app.engine.finish_waiters(), 0, "the waiter left");
}

#[tokio::test]
async fn a_finished_task_is_answered_at_once() {
    let app = spawn_app().await;
    let id = app.submit_payload(json!(1)).await.id.0;
    app.cancel(id).await;
    let started = Instant::now();
    let response = app.get(&format!("/tasks/{id}?wait_secs=30")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() < PROMPT);
}

#[tokio::test]
async fn a_submission_with_a_wait_answers_with_the_finished_task() {
    let app = spawn_app().await;
    let (client, url) = (app.client.clone(), app.url("/tasks?wait_secs=20"));
    let submit = tokio::spawn(async move {
        let response = client
            .post(url)
            .json(&json!({ "payload": "hi" }))
            .send()
            .await;
        let response = response.unwrap();
        (response.status(), response.json::<Task>().await.unwrap())
    });
    app.wait_for_result_waiters(1).await;
    let leased = app.lease_one("w01").await;
    app.succeed(&leased, "w01", json!("HI")).await;

    let (status, task) = submit.await.unwrap();
    assert_eq!(
        (status, task.state),
        (StatusCode::CREATED, TaskState::Succeeded)
    );
    assert_eq!(task.result, Some(json!("HI")));
}

#[tokio::test]
async fn a_submission_whose_wait_runs_out_is_accepted_with_202() {
    let app = spawn_app().await;
    let response = app
        .post("/tasks?wait_secs=1", &json!({ "payload": 1 }))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers().contains_key("location"));
    let task: Task = response.json().await.unwrap();
    assert_eq!(task.state, TaskState::Queued);
}

#[tokio::test]
async fn a_wait_over_60_seconds_is_refused_and_submits_nothing() {
    let app = spawn_app().await;
    let response = app
        .post("/tasks?wait_secs=61", &json!({ "payload": 1 }))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    assert!(app.all_tasks().await.is_empty(), "nothing submitted");
    let id = app.submit_payload(json!(1)).await.id.0;
    let response = app.get(&format!("/tasks/{id}?wait_secs=61")).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    let response = app.get(&format!("/tasks/{id}?wait_secs=soon")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn waiting_for_an_unknown_task_is_a_404() {
    let app = spawn_app().await;
    let response = app.get("/tasks/4242?wait_secs=5").await;
    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}
