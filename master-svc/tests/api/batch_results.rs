//! `POST /tasks/results`: many results in one request, each fenced and answered on its own.

use common::{LeaseId, LeasedTask, ReportBatchReply, ReportFor, TaskId, TaskResult, TaskState};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn success(leased: &LeasedTask, worker: &str) -> ReportFor {
    ReportFor {
        task_id: leased.task_id,
        report: TaskResult::succeeded(leased.lease_id.clone(), worker, json!(leased.payload)),
    }
}

async fn report(app: &TestApp, results: &[ReportFor]) -> ReportBatchReply {
    let response = app.results(&json!({ "results": results })).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a batch reply")
}

async fn lease_three(app: &TestApp) -> Vec<LeasedTask> {
    for n in 1..=3 {
        app.submit_payload(json!(format!("task data {n}"))).await;
    }
    app.lease_as("w01", 3).await.tasks
}

#[tokio::test]
async fn a_batch_of_results_is_accepted_and_answered_in_request_order() {
    let app = spawn_app().await;
    let mut leased = lease_three(&app).await;
    leased.reverse();
    let results: Vec<ReportFor> = leased.iter().map(|t| success(t, "w01")).collect();

    let reply = report(&app, &results).await;

    let ids: Vec<TaskId> = reply.results.iter().map(|ack| ack.task_id).collect();
    assert_eq!(ids, leased.iter().map(|t| t.task_id).collect::<Vec<_>>());
    for (ack, leased) in reply.results.iter().zip(&leased) {
        assert_eq!(
            (ack.status, ack.state, &ack.problem),
            (200, Some(TaskState::Succeeded), &None)
        );
        let task = app.task(leased.task_id.0).await;
        assert_eq!(task.state, TaskState::Succeeded);
        assert_eq!(task.result, Some(leased.payload.clone()));
        assert_eq!(task.worker_id.as_deref(), Some("w01"));
    }
}

#[tokio::test]
async fn a_refused_result_in_a_batch_changes_nothing_and_does_not_hold_back_the_others() {
    let app = spawn_app().await;
    let leased = lease_three(&app).await;
    let mut stale = success(&leased[1], "w01");
    stale.report.lease_id = LeaseId("0000000000000000".into());
    let unknown = ReportFor {
        task_id: TaskId(999),
        ..success(&leased[2], "w01")
    };
    let results = [success(&leased[0], "w01"), stale, unknown];

    let reply = report(&app, &results).await;

    let statuses: Vec<u16> = reply.results.iter().map(|ack| ack.status).collect();
    assert_eq!(statuses, [200, 409, 404]);
    let problem = reply.results[1].problem.as_ref().expect("a problem");
    assert_eq!((problem.status, problem.kind()), (409, "lease-superseded"));
    assert_eq!(
        reply.results[2].problem.as_ref().unwrap().kind(),
        "not-found"
    );
    assert_eq!(
        app.task(leased[0].task_id.0).await.state,
        TaskState::Succeeded
    );
    assert_eq!(app.task(leased[1].task_id.0).await.state, TaskState::Leased);
}

#[tokio::test]
async fn the_same_result_twice_in_one_batch_is_accepted_once() {
    let app = spawn_app().await;
    app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    let failure = ReportFor {
        task_id: leased.task_id,
        report: TaskResult::failed(leased.lease_id.clone(), "w01", "boom"),
    };

    let reply = report(&app, &[failure.clone(), failure]).await;

    assert!(
        reply.results.iter().all(|ack| ack.status == 200),
        "{reply:?}"
    );
    let task = app.task(leased.task_id.0).await;
    assert_eq!((task.state, task.attempts), (TaskState::Queued, 1));
}

#[tokio::test]
async fn an_empty_or_oversized_batch_is_refused_with_400() {
    let app = spawn_app().await;
    app.submit_payload(json!("task data 1")).await;
    let leased = app.lease_one("w01").await;
    let too_many: Vec<Value> = (0..257).map(|_| json!(success(&leased, "w01"))).collect();

    for body in [json!({ "results": [] }), json!({ "results": too_many })] {
        let response = app.results(&body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert_eq!(app.task(leased.task_id.0).await.state, TaskState::Leased);
}

#[tokio::test]
async fn a_batch_with_one_malformed_result_is_refused_whole_and_records_nothing() {
    let app = spawn_app().await;
    let leased = lease_three(&app).await;
    let mut malformed = ReportFor {
        task_id: leased[1].task_id,
        report: TaskResult::failed(leased[1].lease_id.clone(), "w01", "boom"),
    };
    malformed.report.retry_after_secs = Some(604_801);
    let body = json!({ "results": [success(&leased[0], "w01"), malformed] });

    let response = app.results(&body).await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    assert!(problem.detail.unwrap().starts_with("results[1]: "));
    for task in &leased {
        assert_eq!(app.task(task.task_id.0).await.state, TaskState::Leased);
    }
}
