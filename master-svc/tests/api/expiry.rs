//! Lease expiry on the controlled clock: re-leasing, exhausted attempts, and heartbeats.

use std::time::Duration;

use common::{Heartbeat, HeartbeatAck, LeasedTask, SubmitTask, TaskState};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn submit_with_attempts(app: &TestApp, max_attempts: u32) -> common::Task {
    app.submit_task(SubmitTask {
        max_attempts: Some(max_attempts),
        lease_secs: Some(10),
        ..SubmitTask::new(json!("task data 1"))
    })
    .await
}

async fn beat(app: &TestApp, leased: &LeasedTask, lease_secs: Option<u64>) -> reqwest::Response {
    let body = Heartbeat {
        lease_id: leased.lease_id.clone(),
        lease_secs,
    };
    app.heartbeat(leased.task_id.0, &json!(body)).await
}

#[tokio::test]
async fn an_expired_lease_puts_the_task_back_with_its_attempt_counted() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    app.lease_one("w01").await;

    app.advance(secs(11)).await;

    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Queued, 1));
    assert_eq!(after.lease, None);
    assert_eq!(app.queue_info("default").await.counts.queued, 1);
}

#[tokio::test]
async fn a_lease_is_not_reclaimed_before_its_deadline() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    app.lease_one("w01").await;

    app.advance(Duration::from_millis(9_999)).await;

    assert_eq!(app.task(task.id.0).await.state, TaskState::Leased);
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn an_expired_task_is_leased_by_another_worker_with_attempt_2() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    let first = app.lease_one("w01").await;
    app.advance(secs(11)).await;

    let second = app.lease_one("w02").await;

    assert_eq!((second.task_id, second.attempt), (task.id, 2));
    assert_ne!(second.lease_id, first.lease_id);
    let after = app.task(task.id.0).await;
    assert_eq!(after.lease.unwrap().worker_id, "w02");
    assert_eq!(app.succeed(&second, "w02", json!("ok")).await.status(), 200);
}

#[tokio::test]
async fn a_task_whose_only_attempt_expires_fails_with_an_error() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 1).await;
    app.lease_one("w01").await;

    app.advance(secs(11)).await;

    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Failed, 1));
    assert!(after.error.unwrap().contains("expired"));
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn a_task_fails_once_its_second_and_last_attempt_expires() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 2).await;
    app.lease_one("w01").await;
    app.advance(secs(11)).await;
    assert_eq!(app.lease_one("w02").await.attempt, 2);

    app.advance(secs(11)).await;

    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Failed, 2));
    assert!(after.error.is_some());
    assert_eq!(app.queue_info("default").await.counts.failed, 1);
}

#[tokio::test]
async fn a_heartbeat_extends_the_lease() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    let leased = app.lease_one("w01").await;
    app.advance(secs(8)).await;

    let response = beat(&app, &leased, None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let ack: HeartbeatAck = response.json().await.unwrap();
    assert_eq!(
        ack.expires_at - leased.expires_at,
        time::Duration::seconds(8)
    );
    assert!(!ack.cancel_requested);
    // Past the first deadline, before the new one.
    app.advance(secs(8)).await;
    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Leased);
    assert_eq!(after.lease.unwrap().expires_at, ack.expires_at);
    assert_eq!(app.succeed(&leased, "w01", json!("ok")).await.status(), 200);
}

#[tokio::test]
async fn a_heartbeat_with_lease_secs_sets_a_new_length_from_now() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    let leased = app.lease_one("w01").await;
    app.advance(secs(5)).await;

    let ack: HeartbeatAck = beat(&app, &leased, Some(60)).await.json().await.unwrap();

    let now = app.now_ms() as i128 * 1_000_000;
    assert_eq!(ack.expires_at.unix_timestamp_nanos(), now + 60_000_000_000);
    app.advance(secs(59)).await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Leased);
    app.advance(secs(1)).await;
    assert_eq!(app.task(task.id.0).await.state, TaskState::Queued);
}

#[tokio::test]
async fn a_lease_without_heartbeats_expires_even_after_one_was_sent() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    let leased = app.lease_one("w01").await;
    app.advance(secs(5)).await;
    assert_eq!(beat(&app, &leased, None).await.status(), 200);

    app.advance(secs(10)).await;

    assert_eq!(app.task(task.id.0).await.state, TaskState::Queued);
}

#[tokio::test]
async fn a_heartbeat_on_an_expired_lease_is_refused_with_409() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    let leased = app.lease_one("w01").await;
    app.advance(secs(11)).await;

    let response = beat(&app, &leased, None).await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.lease), (TaskState::Queued, None));
}

#[tokio::test]
async fn a_heartbeat_past_the_deadline_is_refused_before_the_reaper_runs() {
    let app = spawn_app().await;
    submit_with_attempts(&app, 3).await;
    let leased = app.lease_one("w01").await;
    app.clock.advance(secs(10));

    let response = beat(&app, &leased, None).await;

    assert_problem(response, StatusCode::CONFLICT, "lease-expired").await;
}

#[tokio::test]
async fn a_heartbeat_on_a_superseded_lease_does_not_extend_the_new_one() {
    let app = spawn_app().await;
    let task = submit_with_attempts(&app, 3).await;
    let stale = app.lease_one("w01").await;
    app.advance(secs(11)).await;
    let current = app.lease_one("w02").await;

    let response = beat(&app, &stale, Some(3600)).await;

    assert_problem(response, StatusCode::CONFLICT, "lease-superseded").await;
    let lease = app.task(task.id.0).await.lease.unwrap();
    assert_eq!(lease.expires_at, current.expires_at);
}

#[tokio::test]
async fn a_heartbeat_on_a_finished_task_is_refused() {
    let app = spawn_app().await;
    submit_with_attempts(&app, 3).await;
    let leased = app.lease_one("w01").await;
    app.succeed(&leased, "w01", json!("ok")).await;

    let response = beat(&app, &leased, None).await;

    assert_problem(response, StatusCode::CONFLICT, "lease-ended").await;
}

#[tokio::test]
async fn a_heartbeat_for_an_unknown_task_is_404() {
    let app = spawn_app().await;
    submit_with_attempts(&app, 3).await;
    let mut leased = app.lease_one("w01").await;
    leased.task_id.0 += 1000;
    assert_problem(
        beat(&app, &leased, None).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}
