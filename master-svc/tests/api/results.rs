//! Results and their fencing: only the live lease's worker can finish a task, a re-sent result
//! changes nothing, and each stale case is refused with its own problem kind.

use std::time::Duration;

use common::{LeasedTask, Task, TaskResult, TaskState};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// Moves the clock past the default 30 s lease, so the reaper reclaims it.
const PAST_THE_LEASE: Duration = Duration::from_secs(31);

/// Asserts that no result of `worker` was ever recorded on the task.
fn assert_no_result_from(task: &Task, worker: &str) {
    assert_ne!(task.worker_id.as_deref(), Some(worker), "{task:?}");
    assert_ne!(
        task.result,
        Some(json!(format!("from {worker}"))),
        "{task:?}"
    );
}

async fn succeed_as(app: &TestApp, leased: &LeasedTask, worker: &str) -> reqwest::Response {
    app.succeed(leased, worker, json!(format!("from {worker}")))
        .await
}

#[tokio::test]
async fn a_result_after_the_lease_expired_is_refused_with_lease_expired() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let stale = app.lease_one("w01").await;
    app.advance(PAST_THE_LEASE).await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Queued);

    let response = succeed_as(&app, &stale, "w01").await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Queued);
    assert_no_result_from(&after, "w01");
}

#[tokio::test]
async fn a_result_after_the_deadline_is_refused_even_before_the_reaper_runs() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let stale = app.lease_one("w01").await;
    // Move the clock alone: the reaper has not reclaimed the lease yet.
    app.clock.advance(PAST_THE_LEASE);

    let response = succeed_as(&app, &stale, "w01").await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
    assert_no_result_from(&app.task(task.id.0).await, "w01");
}

#[tokio::test]
async fn a_result_while_another_worker_holds_the_task_is_refused_with_lease_superseded() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let stale = app.lease_one("w01").await;
    app.advance(PAST_THE_LEASE).await;
    let current = app.lease_one("w02").await;
    assert_eq!(current.task_id, task.id);

    let response = succeed_as(&app, &stale, "w01").await;

    assert_problem(response, StatusCode::CONFLICT, "lease-superseded").await;
    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Leased);
    assert_eq!(after.lease.as_ref().expect("a live lease").worker_id, "w02");
    assert_no_result_from(&after, "w01");
    // The live lease is untouched: its worker still finishes the task.
    assert_eq!(succeed_as(&app, &current, "w02").await.status(), 200);
}

#[tokio::test]
async fn a_result_after_another_worker_finished_the_task_is_refused_with_task_finished() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let stale = app.lease_one("w01").await;
    app.advance(PAST_THE_LEASE).await;
    let current = app.lease_one("w02").await;
    assert_eq!(succeed_as(&app, &current, "w02").await.status(), 200);

    let response = succeed_as(&app, &stale, "w01").await;

    assert_problem(response, StatusCode::CONFLICT, "task-finished").await;
    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Succeeded);
    assert_eq!(after.worker_id.as_deref(), Some("w02"));
    assert_eq!(after.result, Some(json!("from w02")));
}

#[tokio::test]
async fn a_result_from_an_older_lease_while_the_task_waits_again_is_lease_expired() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let oldest = app.lease_one("w01").await;
    app.advance(PAST_THE_LEASE).await;
    app.lease_one("w02").await;
    app.advance(PAST_THE_LEASE).await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Queued);

    let response = succeed_as(&app, &oldest, "w01").await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Queued, 2));
    assert_no_result_from(&after, "w01");
}

#[tokio::test]
async fn a_stale_failure_does_not_fail_the_finished_task() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let stale = app.lease_one("w01").await;
    app.advance(PAST_THE_LEASE).await;
    let current = app.lease_one("w02").await;
    succeed_as(&app, &current, "w02").await;

    let response = app.fail(&stale, "w01", Some(false), None).await;

    assert_problem(response, StatusCode::CONFLICT, "task-finished").await;
    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Succeeded);
    assert_eq!(after.error, None);
}

#[tokio::test]
async fn re_sending_an_accepted_result_with_the_same_lease_returns_200_and_changes_nothing() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    assert_eq!(succeed_as(&app, &leased, "w01").await.status(), 200);
    let first = app.task(task.id.0).await;
    app.advance(Duration::from_secs(5)).await;

    let response = succeed_as(&app, &leased, "w01").await;

    assert_eq!(response.status(), StatusCode::OK);
    let echoed: Task = response.json().await.unwrap();
    assert_eq!(echoed, first);
    assert_eq!(app.task(task.id.0).await, first);
}

#[tokio::test]
async fn re_sending_an_accepted_failure_does_not_count_it_twice() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    assert_eq!(app.fail(&leased, "w01", None, Some(60)).await.status(), 200);
    let first = app.task(task.id.0).await;
    assert_eq!(first.state, TaskState::Queued);

    let response = app.fail(&leased, "w01", None, Some(60)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.task(task.id.0).await, first);
}

#[tokio::test]
async fn a_different_outcome_for_an_accepted_lease_is_refused_with_result_mismatch() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    assert_eq!(succeed_as(&app, &leased, "w01").await.status(), 200);
    let first = app.task(task.id.0).await;

    let response = app.fail(&leased, "w01", Some(false), None).await;

    assert_problem(response, StatusCode::CONFLICT, "result-mismatch").await;
    assert_eq!(app.task(task.id.0).await, first);
}

#[tokio::test]
async fn the_same_outcome_with_another_result_value_is_refused_with_result_mismatch() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    assert_eq!(
        app.succeed(&leased, "w01", json!("one")).await.status(),
        200
    );
    let first = app.task(task.id.0).await;

    let response = app.succeed(&leased, "w01", json!("two")).await;

    assert_problem(response, StatusCode::CONFLICT, "result-mismatch").await;
    assert_eq!(app.task(task.id.0).await, first);
    let again = app.succeed(&leased, "w01", json!("one")).await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_result_from_another_worker_id_on_a_live_lease_is_refused_with_wrong_worker() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;

    let response = succeed_as(&app, &leased, "w02").await;

    assert_problem(response, StatusCode::CONFLICT, "wrong-worker").await;
    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Leased);
    assert_no_result_from(&after, "w02");
    assert_eq!(succeed_as(&app, &leased, "w01").await.status(), 200);
}

#[tokio::test]
async fn a_result_from_another_worker_id_on_a_finished_lease_is_refused_with_wrong_worker() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    succeed_as(&app, &leased, "w01").await;

    let response = succeed_as(&app, &leased, "w02").await;

    assert_problem(response, StatusCode::CONFLICT, "wrong-worker").await;
    assert_eq!(app.task(task.id.0).await.worker_id.as_deref(), Some("w01"));
}

#[tokio::test]
async fn a_result_with_an_unknown_lease_id_changes_nothing() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let mut leased = app.lease_one("w01").await;
    leased.lease_id.0 = "not-a-lease".into();

    let response = succeed_as(&app, &leased, "w01").await;

    assert_problem(response, StatusCode::CONFLICT, "lease-superseded").await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Leased);
}

#[tokio::test]
async fn a_result_for_an_unknown_task_is_404() {
    let app = spawn_app().await;
    app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    let body = TaskResult::succeeded(leased.lease_id, "w01", json!("done"));

    let response = app.result(leased.task_id.0 + 1000, &json!(body)).await;

    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}
