//! `GET /queues/{name}/history`: transitions counted in the step they were committed in, the
//! backlog sampled at each step's end, the window, and the same answers as `GET /queues/{name}`
//! for unknown queues and scoped tokens. `GET /activity`: every queue's history in one answer.

use std::time::Duration;

use common::{ActivityList, ActivityPoint, QueueHistory, QueueList, SubmitTask};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::{TestApp, assert_problem, spawn_app};
use crate::roles::spawn_with_tokens;

const STEP_MS: i64 = 10_000;

/// A task of the default queue whose lease lasts 10 s.
fn task(n: u32) -> SubmitTask {
    SubmitTask {
        lease_secs: Some(10),
        ..SubmitTask::new(json!(n))
    }
}

/// The start of the step `ms` falls in.
fn step_start(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(STEP_MS) * STEP_MS / 1000).unwrap()
}

/// The history asked for with `query`, asserting a `200`.
async fn history(app: &TestApp, queue: &str, query: &str) -> QueueHistory {
    let response = app.queue_history(queue, query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a history")
}

/// Every queue's history asked for with `query`, asserting a `200`.
async fn activity(app: &TestApp, query: &str) -> ActivityList {
    let response = app.activity(query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("every queue's history")
}

/// Tasks submitted over a history's window.
fn submitted(history: &QueueHistory) -> u64 {
    history.points.iter().map(|p| p.submitted).sum()
}

/// The point of the step `ms` falls in.
async fn point_at(app: &TestApp, ms: i64) -> ActivityPoint {
    let history = history(app, "default", "").await;
    let at = step_start(ms);
    let point = history.points.into_iter().find(|p| p.at == at);
    point.unwrap_or_else(|| panic!("no point at {at}"))
}

/// The current step's point of the default queue.
async fn current(app: &TestApp) -> ActivityPoint {
    point_at(app, app.now_ms()).await
}

/// submitted, leased, succeeded, failed, retried, expired.
fn counted(point: &ActivityPoint) -> [u64; 6] {
    let p = point;
    [
        p.submitted,
        p.leased,
        p.succeeded,
        p.failed,
        p.retried,
        p.expired,
    ]
}

#[tokio::test]
async fn every_transition_is_counted_in_the_current_step_with_the_backlog_now() {
    let app = spawn_app().await;
    app.submit_task(task(1)).await;
    let batch: Vec<Value> = (2..=4).map(|n| json!(task(n))).collect();
    assert_eq!(app.submit_batch(&batch).await.status(), StatusCode::CREATED);
    let leased = app.lease_as("w01", 4).await.tasks;
    assert_eq!(leased.len(), 4);

    let ok = app.succeed(&leased[0], "w01", json!("done")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let again = app.fail(&leased[1], "w01", None, Some(60)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let given_up = app.fail(&leased[2], "w01", Some(false), None).await;
    assert_eq!(given_up.status(), StatusCode::OK);

    let now = current(&app).await;
    assert_eq!(counted(&now), [4, 4, 1, 1, 1, 0]);
    assert_eq!((now.queued, now.in_flight), (1, 1));
}

#[tokio::test]
async fn an_expired_lease_is_counted_and_the_closed_step_keeps_its_sample() {
    let app = spawn_app().await;
    app.submit_task(task(1)).await;
    let last_attempt = SubmitTask {
        max_attempts: Some(1),
        ..task(2)
    };
    app.submit_task(last_attempt).await;
    let leased = app.lease_as("w01", 2).await.tasks;
    let before = app.now_ms();
    app.engine.sample_activity().await.expect("a sample");

    app.advance(Duration::from_secs(11)).await;

    let late = app.succeed(&leased[0], "w01", json!("late")).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    let now = current(&app).await;
    // Out of attempts, the second task failed; its expiry counts as an expiry only.
    assert_eq!(counted(&now), [0, 0, 0, 0, 0, 2]);
    assert_eq!((now.queued, now.in_flight), (1, 0));
    let closed = point_at(&app, before).await;
    assert_eq!(counted(&closed), [2, 2, 0, 0, 0, 0]);
    assert_eq!((closed.queued, closed.in_flight), (0, 2));
}

#[tokio::test]
async fn a_replayed_submission_is_not_counted_again() {
    let app = spawn_app().await;
    let keyed = SubmitTask {
        idempotency_key: Some("once".into()),
        ..task(1)
    };
    app.submit_task(keyed.clone()).await;
    assert_eq!(app.submit(&json!(keyed)).await.status(), StatusCode::OK);

    assert_eq!(current(&app).await.submitted, 1);
}

#[tokio::test]
async fn points_are_whole_steps_since_the_start_oldest_first_within_the_window() {
    let app = spawn_app().await;
    let start = app.now_ms();
    app.submit_task(task(1)).await;
    app.advance(Duration::from_secs(35)).await;

    let whole = history(&app, "default", "").await;
    assert_eq!((whole.step_secs, whole.window_secs), (10, 3600));
    let steps = (app.now_ms().div_euclid(STEP_MS) - start.div_euclid(STEP_MS) + 1) as usize;
    assert_eq!(whole.points.len(), steps);
    assert_eq!(whole.points[0].at, step_start(start));
    assert_eq!(whole.points[steps - 1].at, step_start(app.now_ms()));
    for pair in whole.points.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, time::Duration::seconds(10));
    }
    assert_eq!(whole.points[0].submitted, 1);

    let last = history(&app, "default", "?window=10").await;
    assert_eq!(last.points, whole.points[steps - 1..]);
    assert_eq!(last.window_secs, 10);
    let rounded_up = history(&app, "default", "?window=11").await;
    assert_eq!(rounded_up.points, whole.points[steps - 2..]);
}

#[tokio::test]
async fn a_window_out_of_range_or_not_an_integer_is_a_400() {
    let app = spawn_app().await;
    app.submit_task(task(1)).await;
    for query in [
        "?window=9",
        "?window=0",
        "?window=3601",
        "?window=-10",
        "?window=60.5",
        "?window=ten",
        "?window=",
        "?colour=red",
    ] {
        let response = app.queue_history("default", query).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    history(&app, "default", "?window=3600").await;
}

#[tokio::test]
async fn an_unknown_queue_is_404_as_for_the_queue_itself() {
    let app = spawn_app().await;
    let response = app.queue_history("nowhere", "").await;
    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn a_scoped_token_reads_the_history_of_its_queues_only() {
    let tokens = json!([
        { "name": "dash", "token": "dash", "role": "read-only", "queues": ["billing-"] },
        { "name": "root", "token": "root", "role": "admin" },
    ]);
    let (mut app, _tokens) = spawn_with_tokens(tokens, |_| {}).await;
    app.token = Some("root".into());
    for queue in ["billing-eu", "reports"] {
        let submitted = app.submit(&json!({ "queue": queue, "payload": 1 })).await;
        assert_eq!(submitted.status(), StatusCode::CREATED);
    }
    app.token = Some("dash".into());

    let ours = history(&app, "billing-eu", "").await;
    assert_eq!(ours.points.last().unwrap().submitted, 1);
    let theirs = app.queue_history("reports", "").await;
    assert_problem(theirs, StatusCode::FORBIDDEN, "forbidden-by-queue-scope").await;
    let all = activity(&app, "").await;
    let names: Vec<&str> = all.queues.iter().map(|h| h.queue.as_str()).collect();
    assert_eq!(names, ["billing-eu"]);
}

#[tokio::test]
async fn every_queues_history_comes_in_one_answer_as_each_queue_alone_answers() {
    let app = spawn_app().await;
    app.submit_task(task(1)).await;
    app.submit_task(task(2)).await;
    let other = app
        .submit(&json!({ "queue": "reports", "payload": 3 }))
        .await;
    assert_eq!(other.status(), StatusCode::CREATED);

    let all = activity(&app, "?window=60").await;
    let listed: QueueList = app.get("/queues").await.json().await.unwrap();
    let names: Vec<&str> = all.queues.iter().map(|h| h.queue.as_str()).collect();
    let expected: Vec<&str> = listed.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, expected);
    assert_eq!(names, ["default", "reports"]);
    for one in &all.queues {
        let alone = history(&app, &one.queue, "?window=60").await;
        assert_eq!(one.window_secs, 60);
        assert_eq!(submitted(one), submitted(&alone), "{}", one.queue);
        assert_eq!(
            one.points.last().unwrap().queued,
            alone.points.last().unwrap().queued
        );
    }
    assert_eq!(submitted(&all.queues[0]), 2);
    assert_eq!(submitted(&all.queues[1]), 1);
}

#[tokio::test]
async fn every_queues_history_refuses_a_window_out_of_range() {
    let app = spawn_app().await;
    for query in ["?window=5", "?window=3601", "?window=soon", "?since=1"] {
        let response = app.activity(query).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
}
