//! Finding tasks: tags at submission, and `GET /tasks`'s filters beyond queue and state.

use std::time::Duration;

use common::{ListedTask, SubmitTask, Task, TaskPage, TaskState};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn tagged(payload: i64, tags: &[&str]) -> SubmitTask {
    SubmitTask {
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        ..SubmitTask::new(json!(payload))
    }
}

/// The ids `GET /tasks{query}` lists, following every cursor.
async fn ids(app: &TestApp, query: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let response = app.list_tasks(&format!("{query}&limit=2{cursor}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let page: TaskPage = response.json().await.unwrap();
        ids.extend(page.tasks.iter().map(|task| task.id().0));
        match page.next_cursor {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn tags_are_kept_sorted_shown_on_the_task_and_in_listings_and_found_by_tag() {
    let app = spawn_app().await;
    let first = app
        .submit_task(tagged(1, &["nightly", "eu", "nightly"]))
        .await;
    let second = app.submit_task(tagged(2, &["eu"])).await;
    app.submit_task(tagged(3, &[])).await;
    assert_eq!(first.tags, ["eu", "nightly"]);
    assert_eq!(app.task(first.id.0).await.tags, ["eu", "nightly"]);
    let page: TaskPage = app.list_tasks("?tag=eu").await.json().await.unwrap();
    let summaries: Vec<_> = page.tasks.into_iter().map(ListedTask::summary).collect();
    assert_eq!(summaries[0].tags, ["eu", "nightly"]);

    assert_eq!(ids(&app, "?tag=eu").await, [first.id.0, second.id.0]);
    assert_eq!(ids(&app, "?tag=nightly").await, [first.id.0]);
    assert_eq!(ids(&app, "?tag=none").await, Vec::<i64>::new());
}

#[tokio::test]
async fn bad_tags_are_refused_with_400_and_nothing_is_created() {
    let app = spawn_app().await;
    let long = "x".repeat(65);
    let seventeen: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
    for tags in [json!([""]), json!([long]), json!(seventeen), json!("eu")] {
        let response = app.submit(&json!({"payload": 1, "tags": tags})).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    let sixteen_of_64: Vec<String> = (0..16).map(|i| format!("{i:064}")).collect();
    let response = app
        .submit(&json!({"payload": 1, "tags": sixteen_of_64}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.all_tasks().await.len(), 1);
}

#[tokio::test]
async fn a_resubmission_with_other_tags_is_another_submission_and_is_refused() {
    let app = spawn_app().await;
    let task = json!({"payload": 1, "idempotency_key": "k1", "tags": ["a", "b"]});
    assert_eq!(app.submit(&task).await.status(), StatusCode::CREATED);
    let same_set = json!({"payload": 1, "idempotency_key": "k1", "tags": ["b", "a", "a"]});
    assert_eq!(app.submit(&same_set).await.status(), StatusCode::OK);
    let other = json!({"payload": 1, "idempotency_key": "k1", "tags": ["a"]});
    let response = app.submit(&other).await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "idempotency-key-reused").await;
    assert!(problem.detail.unwrap().contains("tags"));
}

/// Four tasks: 1 succeeded by w1 (key k1), 2 failed by w2 with "disk full" (key k2), then, a
/// minute later, 3 failed by w1 with "timeout" and 4 queued (key k1).
async fn four_tasks(app: &TestApp) -> Vec<Task> {
    let keyed = |payload: i64, key: &str| SubmitTask {
        concurrency_key: Some(key.into()),
        max_attempts: Some(1),
        ..SubmitTask::new(json!(payload))
    };
    let one = app.submit_task(keyed(1, "k1")).await;
    let two = app.submit_task(keyed(2, "k2")).await;
    let leased = app.lease_one("w1").await;
    app.succeed(&leased, "w1", json!(1)).await;
    let leased = app.lease_one("w2").await;
    let failed = common::TaskResult::failed(leased.lease_id.clone(), "w2", "disk full");
    app.result(leased.task_id.0, &json!(failed)).await;
    app.advance(Duration::from_secs(60)).await;
    let three = app
        .submit_task(SubmitTask {
            max_attempts: Some(1),
            ..SubmitTask::new(json!(3))
        })
        .await;
    let leased = app.lease_one("w1").await;
    let failed = common::TaskResult::failed(leased.lease_id.clone(), "w1", "timeout after 30 s");
    app.result(leased.task_id.0, &json!(failed)).await;
    let four = app.submit_task(keyed(4, "k1")).await;
    let mut tasks = Vec::new();
    for task in [one, two, three, four] {
        tasks.push(app.task(task.id.0).await);
    }
    assert_eq!(
        tasks.iter().map(|t| t.state).collect::<Vec<_>>(),
        [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::Failed,
            TaskState::Queued
        ]
    );
    tasks
}

#[tokio::test]
async fn each_filter_lists_only_the_tasks_that_match_it_alone_and_combined() {
    let app = spawn_app().await;
    let tasks = four_tasks(&app).await;
    let id = |i: usize| tasks[i].id.0;
    let time = |i: usize| {
        tasks[i]
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let cases: Vec<(String, Vec<i64>)> = vec![
        ("?worker_id=w1".into(), vec![id(0), id(2)]),
        ("?worker_id=w1&state=failed".into(), vec![id(2)]),
        ("?concurrency_key=k1".into(), vec![id(0), id(3)]),
        ("?concurrency_key=k1&state=queued".into(), vec![id(3)]),
        (format!("?created_after={}", time(2)), vec![id(2), id(3)]),
        (format!("?created_before={}", time(2)), vec![id(0), id(1)]),
        (format!("?finished_after={}", time(2)), vec![id(2)]),
        (
            format!("?finished_after={}", time(0)),
            vec![id(0), id(1), id(2)],
        ),
        ("?error_contains=timeout".into(), vec![id(2)]),
        ("?error_contains=disk&state=failed".into(), vec![id(1)]),
        ("?error_contains=disk&queue=other".into(), vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(&app, &query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn a_filter_that_cannot_be_read_is_refused_with_400() {
    let app = spawn_app().await;
    for query in [
        "?created_after=yesterday",
        "?finished_after=2026-01-01",
        "?error_contains=",
        "?worker_id=",
        &format!("?tag={}", "x".repeat(65)),
    ] {
        let response = app.list_tasks(query).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
}
