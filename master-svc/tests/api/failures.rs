//! Failures reported by workers: backoff before the next attempt, `retry_after_secs`,
//! non-retryable failures and the last attempt.

use std::time::Duration;

use common::{SubmitTask, Task, TaskState};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Milliseconds from the master's current time to the task's `run_at`.
fn delay_ms(app: &TestApp, task: &Task) -> i64 {
    (task.run_at.unix_timestamp_nanos() / 1_000_000) as i64 - app.now_ms()
}

#[tokio::test]
async fn a_failure_with_attempts_left_waits_out_the_default_backoff() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;

    let response = app.fail(&leased, "w01", None, None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let after: Task = response.json().await.unwrap();
    assert_eq!((after.state, after.attempts), (TaskState::Queued, 1));
    assert_eq!(after.error.as_deref(), Some("boom"));
    assert_eq!(after.worker_id, None);
    // Base 1 s, plus up to a quarter of jitter.
    let delay = delay_ms(&app, &after);
    assert!((1_000..=1_250).contains(&delay), "{delay} ms");
    app.assert_nothing_to_lease("w02").await;
    app.advance(Duration::from_millis(999)).await;
    app.assert_nothing_to_lease("w02").await;
    app.advance(Duration::from_millis(251)).await;
    let again = app.lease_one("w02").await;
    assert_eq!((again.task_id, again.attempt), (task.id, 2));
}

#[tokio::test]
async fn the_backoff_doubles_with_each_failed_attempt() {
    let app = spawn_app_with(|config| config.retry_backoff_base_ms = 10_000).await;
    app.submit_task(SubmitTask {
        max_attempts: Some(5),
        ..SubmitTask::new(json!(1))
    })
    .await;
    for (attempt, base_ms) in [(1, 10_000), (2, 20_000), (3, 40_000)] {
        let leased = app.lease_one("w01").await;
        assert_eq!(leased.attempt, attempt);
        let after: Task = app
            .fail(&leased, "w01", None, None)
            .await
            .json()
            .await
            .unwrap();
        let delay = delay_ms(&app, &after);
        assert!(
            (base_ms..=base_ms * 5 / 4).contains(&delay),
            "{attempt}: {delay}"
        );
        app.advance(Duration::from_millis(base_ms as u64 - 1)).await;
        app.assert_nothing_to_lease("w01").await;
        app.advance(Duration::from_millis(base_ms as u64 / 4 + 1))
            .await;
    }
}

#[tokio::test]
async fn the_backoff_is_capped_at_retry_backoff_max_secs() {
    let app = spawn_app_with(|config| {
        config.retry_backoff_base_ms = 10_000;
        config.retry_backoff_max_secs = 15;
    })
    .await;
    app.submit_task(SubmitTask {
        max_attempts: Some(5),
        ..SubmitTask::new(json!(1))
    })
    .await;
    let first = app.lease_one("w01").await;
    app.fail(&first, "w01", None, Some(0)).await;
    let second = app.lease_one("w01").await;

    let after: Task = app
        .fail(&second, "w01", None, None)
        .await
        .json()
        .await
        .unwrap();

    // 20 s uncapped; 15 s capped, plus up to a quarter of jitter.
    let delay = delay_ms(&app, &after);
    assert!((15_000..=18_750).contains(&delay), "{delay} ms");
}

#[tokio::test]
async fn retry_after_secs_replaces_the_backoff() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;

    let after: Task = app
        .fail(&leased, "w01", None, Some(120))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(delay_ms(&app, &after), 120_000);
    app.advance(Duration::from_secs(119)).await;
    app.assert_nothing_to_lease("w02").await;
    app.advance(Duration::from_secs(1)).await;
    assert_eq!(app.lease_one("w02").await.task_id, task.id);
}

#[tokio::test]
async fn retry_after_secs_of_zero_makes_the_task_ready_at_once() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    app.fail(&leased, "w01", None, Some(0)).await;
    assert_eq!(app.lease_one("w02").await.task_id, task.id);
}

#[tokio::test]
async fn a_failure_with_retry_false_fails_the_task_at_once() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;

    let response = app.fail(&leased, "w01", Some(false), None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Failed, 1));
    assert_eq!(after.error.as_deref(), Some("boom"));
    assert_eq!(after.worker_id.as_deref(), Some("w01"));
    app.advance(Duration::from_secs(3600)).await;
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn a_failure_on_the_last_attempt_fails_the_task() {
    let app = spawn_app().await;
    let task = app
        .submit_task(SubmitTask {
            max_attempts: Some(2),
            ..SubmitTask::new(json!(1))
        })
        .await;
    let first = app.lease_one("w01").await;
    app.fail(&first, "w01", None, Some(0)).await;
    let second = app.lease_one("w02").await;
    assert_eq!(second.attempt, 2);

    app.fail(&second, "w02", None, Some(0)).await;

    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Failed, 2));
    assert_eq!(after.worker_id.as_deref(), Some("w02"));
    app.assert_nothing_to_lease("w03").await;
    assert_eq!(app.queue_info("default").await.counts.failed, 1);
}

#[tokio::test]
async fn a_failure_without_an_error_message_still_records_one() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    let body = json!({ "lease_id": leased.lease_id, "worker_id": "w01", "outcome": "failed",
                       "retry": false });

    assert_eq!(app.result(task.id.0, &body).await.status(), 200);

    let error = app.task(task.id.0).await.error.expect("an error");
    assert!(!error.is_empty());
}

#[tokio::test]
async fn a_success_after_a_failed_attempt_clears_the_error() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let first = app.lease_one("w01").await;
    app.fail(&first, "w01", None, Some(0)).await;
    let second = app.lease_one("w01").await;

    app.succeed(&second, "w01", json!("fine")).await;

    let after = app.task(task.id.0).await;
    assert_eq!(after.state, TaskState::Succeeded);
    assert_eq!((after.error, after.result), (None, Some(json!("fine"))));
}
