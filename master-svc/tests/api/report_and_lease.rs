//! `POST /tasks/lease` carrying results: "report and lease next" in one round trip.

use std::sync::Arc;
use std::time::Duration;

use common::{LeaseId, LeaseRequest, LeaseResponse, LeasedTask, ReportFor, TaskResult, TaskState};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn success(leased: &LeasedTask) -> ReportFor {
    ReportFor {
        task_id: leased.task_id,
        report: TaskResult::succeeded(leased.lease_id.clone(), "w01", json!("done")),
    }
}

fn lease_after(results: Vec<ReportFor>) -> LeaseRequest {
    LeaseRequest {
        results,
        ..LeaseRequest::new("w01")
    }
}

async fn submit(app: &TestApp, count: usize) {
    for n in 1..=count {
        app.submit_payload(json!(format!("task data {n}"))).await;
    }
}

#[tokio::test]
async fn a_lease_request_records_the_results_it_carries_then_leases_the_next_task() {
    let app = spawn_app().await;
    submit(&app, 2).await;
    let first = app.lease_one("w01").await;

    let reply = app.lease_with(lease_after(vec![success(&first)])).await;

    assert_eq!(reply.tasks.len(), 1);
    assert_ne!(reply.tasks[0].task_id, first.task_id);
    assert_eq!(reply.results.len(), 1);
    let ack = &reply.results[0];
    assert_eq!(
        (ack.task_id, ack.status, ack.state, &ack.problem),
        (first.task_id, 200, Some(TaskState::Succeeded), &None)
    );
    let task = app.task(first.task_id.0).await;
    assert_eq!(task.state, TaskState::Succeeded);
    assert_eq!(task.result, Some(json!("done")));
}

#[tokio::test]
async fn a_lease_request_without_results_has_no_results_in_its_reply() {
    let app = spawn_app().await;
    submit(&app, 1).await;

    let response = app.lease(&json!({ "worker_id": "w01" })).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("results").is_none(), "{body}");
}

#[tokio::test]
async fn a_refused_result_is_answered_on_its_own_and_the_lease_still_goes_ahead() {
    let app = spawn_app().await;
    submit(&app, 2).await;
    let first = app.lease_one("w01").await;
    let mut stale = success(&first);
    stale.report.lease_id = LeaseId("0000000000000000".into());

    let reply = app.lease_with(lease_after(vec![stale])).await;

    assert_eq!(reply.tasks.len(), 1);
    let problem = reply.results[0].problem.as_ref().expect("a problem");
    assert_eq!((problem.status, problem.kind()), (409, "lease-superseded"));
    assert_eq!(app.task(first.task_id.0).await.state, TaskState::Leased);
}

#[tokio::test]
async fn a_malformed_lease_or_result_refuses_the_whole_request_and_records_nothing() {
    let app = spawn_app().await;
    submit(&app, 2).await;
    let first = app.lease_one("w01").await;
    let mut malformed = success(&first);
    malformed.report.retry_after_secs = Some(604_801);
    let too_many: Vec<ReportFor> = (0..257).map(|_| success(&first)).collect();
    let bad_queue = LeaseRequest {
        queues: Some(vec!["no spaces".into()]),
        ..lease_after(vec![success(&first)])
    };

    for request in [
        lease_after(vec![malformed]),
        lease_after(too_many),
        bad_queue,
    ] {
        let response = app.lease(&json!(request)).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }

    assert_eq!(app.task(first.task_id.0).await.state, TaskState::Leased);
    assert_eq!(app.queue_info("default").await.counts.leased, 1);
}

#[tokio::test]
async fn carried_results_are_committed_while_the_long_poll_waits() {
    let app = Arc::new(spawn_app().await);
    submit(&app, 1).await;
    let only = app.lease_one("w01").await;
    let request = LeaseRequest {
        wait_secs: Some(30),
        ..lease_after(vec![success(&only)])
    };

    let long_poll = tokio::spawn({
        let app = app.clone();
        async move { app.lease_with(request).await }
    });
    app.wait_for_long_polls(1).await;

    // Recorded while the long-poll still waits (for nothing: no task is queued).
    let mut state = app.task(only.task_id.0).await.state;
    for _ in 0..100 {
        if state == TaskState::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        state = app.task(only.task_id.0).await.state;
    }
    assert_eq!(state, TaskState::Succeeded);
    assert!(!long_poll.is_finished());
    app.submit_payload(json!("task data 2")).await;
    let reply: LeaseResponse = tokio::time::timeout(Duration::from_secs(5), long_poll)
        .await
        .expect("the long-poll answered")
        .unwrap();
    assert_eq!(reply.tasks.len(), 1);
    assert_eq!(reply.results[0].status, 200);
}
