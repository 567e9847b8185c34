//! Handing tasks back (release), cancelling them, and the operator's retry of dead tasks.

use std::time::Duration;

use common::{Heartbeat, HeartbeatAck, LeasedTask, Release, SubmitTask, Task, TaskState};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app};

async fn release(app: &TestApp, leased: &LeasedTask, delay_secs: Option<u64>) -> reqwest::Response {
    let body = Release {
        lease_id: leased.lease_id.clone(),
        delay_secs,
    };
    app.release(leased.task_id.0, &json!(body)).await
}

async fn beat(app: &TestApp, leased: &LeasedTask) -> HeartbeatAck {
    let body = Heartbeat {
        lease_id: leased.lease_id.clone(),
        lease_secs: None,
    };
    let response = app.heartbeat(leased.task_id.0, &json!(body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn ok_task(response: reqwest::Response) -> Task {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A task that failed for good, with `max_attempts` 1.
async fn failed_task(app: &TestApp) -> Task {
    let task = app
        .submit_task(SubmitTask {
            max_attempts: Some(1),
            ..SubmitTask::new(json!(1))
        })
        .await;
    let leased = app.lease_one("w01").await;
    app.fail(&leased, "w01", None, None).await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Failed);
    task
}

#[tokio::test]
async fn a_released_task_is_queued_again_without_counting_the_attempt() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;

    let after = ok_task(release(&app, &leased, None).await).await;

    assert_eq!((after.state, after.attempts), (TaskState::Queued, 0));
    assert_eq!(after.lease, None);
    let again = app.lease_one("w02").await;
    assert_eq!((again.task_id, again.attempt), (task.id, 1));
}

#[tokio::test]
async fn a_release_gives_back_only_its_own_attempt() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    app.lease_one("w01").await;
    app.advance(Duration::from_secs(31)).await;
    let second = app.lease_one("w02").await;
    assert_eq!(app.task(task.id.0).await.attempts, 2);

    let after = ok_task(release(&app, &second, None).await).await;

    assert_eq!(after.attempts, 1);
}

#[tokio::test]
async fn a_release_with_delay_secs_keeps_the_task_back_that_long() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;

    let after = ok_task(release(&app, &leased, Some(30)).await).await;

    let run_at_ms = (after.run_at.unix_timestamp_nanos() / 1_000_000) as i64;
    assert_eq!(run_at_ms - app.now_ms(), 30_000);
    app.advance(Duration::from_secs(29)).await;
    app.assert_nothing_to_lease("w02").await;
    app.advance(Duration::from_secs(1)).await;
    assert_eq!(app.lease_one("w02").await.task_id, task.id);
}

#[tokio::test]
async fn a_released_lease_can_no_longer_be_used() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    release(&app, &leased, Some(60)).await;

    assert_problem(
        release(&app, &leased, None).await,
        StatusCode::CONFLICT,
        "lease-released",
    )
    .await;
    let response = app.succeed(&leased, "w01", json!("late")).await;
    assert_problem(response, StatusCode::CONFLICT, "lease-released").await;
    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.result), (TaskState::Queued, None));
}

#[tokio::test]
async fn a_release_of_an_expired_lease_is_refused() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    app.advance(Duration::from_secs(31)).await;

    let response = release(&app, &leased, None).await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
    assert_eq!(app.task(task.id.0).await.attempts, 1);
}

#[tokio::test]
async fn cancelling_a_queued_task_cancels_it_at_once() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;

    let after = ok_task(app.cancel(task.id.0).await).await;

    assert_eq!(after.state, TaskState::Cancelled);
    assert_eq!(app.task(task.id.0).await.state, TaskState::Cancelled);
    app.assert_nothing_to_lease("w01").await;
}

#[tokio::test]
async fn cancelling_a_leased_task_asks_its_worker_through_the_heartbeat() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    assert!(!beat(&app, &leased).await.cancel_requested);

    let after = ok_task(app.cancel(task.id.0).await).await;

    assert_eq!(after.state, TaskState::Leased);
    assert!(after.cancel_requested);
    assert!(beat(&app, &leased).await.cancel_requested);
    let released = ok_task(release(&app, &leased, None).await).await;
    assert_eq!(released.state, TaskState::Cancelled);
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn a_cancelled_task_whose_lease_expires_stays_cancelled() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    app.lease_one("w01").await;
    app.cancel(task.id.0).await;

    app.advance(Duration::from_secs(31)).await;

    assert_eq!(app.task(task.id.0).await.state, TaskState::Cancelled);
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn a_failure_reported_after_a_cancel_request_cancels_the_task() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    app.cancel(task.id.0).await;

    app.fail(&leased, "w01", None, Some(0)).await;

    assert_eq!(app.task(task.id.0).await.state, TaskState::Cancelled);
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn cancelling_a_cancelled_task_changes_nothing() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let first = ok_task(app.cancel(task.id.0).await).await;
    assert_eq!(ok_task(app.cancel(task.id.0).await).await, first);
}

#[tokio::test]
async fn cancelling_a_succeeded_task_is_refused_with_wrong_state() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    app.succeed(&leased, "w01", json!("done")).await;

    let response = app.cancel(task.id.0).await;

    assert_problem(response, StatusCode::CONFLICT, "wrong-state").await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Succeeded);
}

#[tokio::test]
async fn cancelling_a_failed_task_is_refused_with_wrong_state() {
    let app = spawn_app().await;
    let task = failed_task(&app).await;
    assert_problem(
        app.cancel(task.id.0).await,
        StatusCode::CONFLICT,
        "wrong-state",
    )
    .await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Failed);
}

#[tokio::test]
async fn cancelling_an_unknown_task_is_404() {
    let app = spawn_app().await;
    assert_problem(app.cancel(4242).await, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn retrying_a_failed_task_queues_it_with_fresh_attempts() {
    let app = spawn_app().await;
    let task = failed_task(&app).await;

    let after = ok_task(app.retry(task.id.0).await).await;

    assert_eq!((after.state, after.attempts), (TaskState::Queued, 0));
    assert_eq!((after.result, after.worker_id), (None, None));
    let again = app.lease_one("w02").await;
    assert_eq!((again.task_id, again.attempt), (task.id, 1));
}

#[tokio::test]
async fn retrying_a_cancelled_task_queues_it() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    app.cancel(task.id.0).await;

    let after = ok_task(app.retry(task.id.0).await).await;

    assert_eq!((after.state, after.attempts), (TaskState::Queued, 0));
    assert!(!after.cancel_requested);
    assert_eq!(app.lease_one("w01").await.task_id, task.id);
}

#[tokio::test]
async fn retrying_a_queued_or_leased_or_succeeded_task_is_refused_with_wrong_state() {
    let app = spawn_app().await;
    let queued = app.submit_payload(json!(1)).await;
    assert_problem(
        app.retry(queued.id.0).await,
        StatusCode::CONFLICT,
        "wrong-state",
    )
    .await;
    let leased = app.lease_one("w01").await;
    assert_problem(
        app.retry(queued.id.0).await,
        StatusCode::CONFLICT,
        "wrong-state",
    )
    .await;
    app.succeed(&leased, "w01", json!("done")).await;
    assert_problem(
        app.retry(queued.id.0).await,
        StatusCode::CONFLICT,
        "wrong-state",
    )
    .await;
    assert_eq!(app.task(queued.id.0).await.state, TaskState::Succeeded);
}

#[tokio::test]
async fn the_old_lease_of_a_retried_task_cannot_finish_it() {
    let app = spawn_app().await;
    let task = app
        .submit_task(SubmitTask {
            max_attempts: Some(1),
            ..SubmitTask::new(json!(1))
        })
        .await;
    let stale = app.lease_one("w01").await;
    app.advance(Duration::from_secs(31)).await;
    app.retry(task.id.0).await;

    let response = app.succeed(&stale, "w01", json!("late")).await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.result), (TaskState::Queued, None));
}
