//! `GET /tasks/{id}/attempts`: every lease of a task, how it ended, and what fencing refused.

use std::time::Duration;

use common::{AttemptEnd, Heartbeat, LeasedTask, RefusedKind, SubmitTask, TaskAttempts};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

async fn attempts(app: &TestApp, id: i64) -> TaskAttempts {
    let response = app.get(&format!("/tasks/{id}/attempts")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn submit(app: &TestApp, max_attempts: u32) -> i64 {
    let task = SubmitTask {
        max_attempts: Some(max_attempts),
        lease_secs: Some(10),
        ..SubmitTask::new(json!("task data"))
    };
    app.submit_task(task).await.id.0
}

async fn beat(app: &TestApp, leased: &LeasedTask) -> reqwest::Response {
    let body = Heartbeat {
        lease_id: leased.lease_id.clone(),
        lease_secs: None,
    };
    app.heartbeat(leased.task_id.0, &json!(body)).await
}

#[tokio::test]
async fn each_lease_is_listed_with_its_worker_heartbeats_end_and_error() {
    let app = spawn_app().await;
    let id = submit(&app, 3).await;
    let first = app.lease_one("w01").await;
    let leased_at = app.now_ms();
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(beat(&app, &first).await.status(), StatusCode::OK);
    assert_eq!(beat(&app, &first).await.status(), StatusCode::OK);
    let live = attempts(&app, id).await;
    assert_eq!(live.attempts.len(), 1);
    assert_eq!(
        (live.attempts[0].heartbeats, live.attempts[0].end),
        (2, None)
    );
    assert!(live.attempts[0].expires_at.is_some());

    let failed = app.fail(&first, "w01", None, Some(0)).await;
    assert_eq!(failed.status(), StatusCode::OK);
    let second = app.lease_one("w02").await;
    app.succeed(&second, "w02", json!("done")).await;

    let history = attempts(&app, id).await;
    assert_eq!(history.task_id.0, id);
    assert_eq!(history.earlier, None);
    let [one, two] = &history.attempts[..] else {
        panic!("two attempts: {history:?}")
    };
    assert_eq!((one.attempt, one.worker_id.as_str()), (1, "w01"));
    assert_eq!(one.lease_id, first.lease_id);
    assert_eq!(
        one.leased_at.unix_timestamp_nanos() / 1_000_000,
        leased_at as i128
    );
    assert_eq!((one.heartbeats, one.end), (2, Some(AttemptEnd::Failed)));
    assert!(one.last_heartbeat_at.is_some() && one.ended_at.is_some());
    assert_eq!(one.error.as_deref(), Some("boom"));
    assert_eq!((two.attempt, two.worker_id.as_str()), (2, "w02"));
    assert_eq!(
        (two.end, two.error.as_deref()),
        (Some(AttemptEnd::Succeeded), None)
    );
    assert_eq!(two.heartbeats, 0);
}

#[tokio::test]
async fn a_stale_result_and_heartbeat_are_kept_with_their_reasons() {
    let app = spawn_app().await;
    let id = submit(&app, 3).await;
    let zombie = app.lease_one("w01").await;
    app.advance(Duration::from_secs(11)).await;
    let successor = app.lease_one("w02").await;

    let late = app.succeed(&zombie, "w01", json!("late")).await;
    assert_problem(late, StatusCode::CONFLICT, "lease-superseded").await;
    let stale_beat = beat(&app, &zombie).await;
    assert_problem(stale_beat, StatusCode::CONFLICT, "lease-superseded").await;
    app.succeed(&successor, "w02", json!("done")).await;
    let after_finish = beat(&app, &successor).await;
    assert_eq!(after_finish.status(), StatusCode::CONFLICT);

    let history = attempts(&app, id).await;
    let [expired, finished] = &history.attempts[..] else {
        panic!("two attempts: {history:?}")
    };
    assert_eq!(expired.end, Some(AttemptEnd::Expired));
    let refused: Vec<_> = expired
        .refused
        .iter()
        .map(|r| (r.request, r.reason.as_str(), r.worker_id.as_deref()))
        .collect();
    assert_eq!(
        refused,
        [
            (RefusedKind::Result, "lease-superseded", Some("w01")),
            (RefusedKind::Heartbeat, "lease-superseded", Some("w01")),
        ]
    );
    assert_eq!(finished.end, Some(AttemptEnd::Succeeded));
    assert_eq!(finished.refused.len(), 1);
    assert_eq!(finished.refused[0].reason, "lease-ended");
    assert!(history.refused.is_empty());
}

#[tokio::test]
async fn a_released_lease_and_a_cancelled_one_are_told_apart() {
    let app = spawn_app().await;
    let id = submit(&app, 3).await;
    let first = app.lease_one("w01").await;
    let release = json!({ "lease_id": first.lease_id });
    assert_eq!(app.release(id, &release).await.status(), StatusCode::OK);
    let second = app.lease_one("w01").await;
    assert_eq!(app.cancel(id).await.status(), StatusCode::OK);
    let release = json!({ "lease_id": second.lease_id });
    assert_eq!(app.release(id, &release).await.status(), StatusCode::OK);

    let ends: Vec<_> = attempts(&app, id)
        .await
        .attempts
        .iter()
        .map(|a| (a.attempt, a.end))
        .collect();
    assert_eq!(
        ends,
        [
            (1, Some(AttemptEnd::Released)),
            (1, Some(AttemptEnd::Cancelled))
        ]
    );
}

#[tokio::test]
async fn attempts_beyond_those_kept_are_summarised_not_dropped() {
    let app = spawn_app_with(|config| config.history_kept = 2).await;
    let id = submit(&app, 5).await;
    for _ in 0..3 {
        let leased = app.lease_one("w01").await;
        app.fail(&leased, "w01", None, Some(0)).await;
    }
    app.lease_one("w01").await;
    app.advance(Duration::from_secs(11)).await;

    let history = attempts(&app, id).await;
    let listed: Vec<_> = history
        .attempts
        .iter()
        .map(|a| (a.attempt, a.end))
        .collect();
    assert_eq!(
        listed,
        [
            (3, Some(AttemptEnd::Failed)),
            (4, Some(AttemptEnd::Expired))
        ]
    );
    let earlier = history.earlier.expect("two attempts summarised");
    assert_eq!(earlier.attempts, 2);
    assert_eq!(earlier.ends.get("failed"), Some(&2));
    assert!(earlier.first_leased_at.is_some() && earlier.last_ended_at.is_some());
}

#[tokio::test]
async fn attempts_of_an_unknown_task_are_a_404() {
    let app = spawn_app().await;
    let response = app.get("/tasks/4242/attempts").await;
    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn a_queued_task_has_no_attempts_yet() {
    let app = spawn_app().await;
    let id = submit(&app, 3).await;
    let history = attempts(&app, id).await;
    assert!(history.attempts.is_empty() && history.refused.is_empty());
}
