//! `GET /tasks` and `GET /tasks/{id}`: pages, cursors and filters.

use std::collections::HashSet;

use common::{ListedTask, SubmitTask, TaskId, TaskPage, TaskState, TaskSummary};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

/// A page of summaries (the default view).
struct Page {
    tasks: Vec<TaskSummary>,
    next_cursor: Option<String>,
}

async fn page(app: &TestApp, query: &str) -> Page {
    let page = full_page(app, query).await;
    Page {
        tasks: page.tasks.into_iter().map(ListedTask::summary).collect(),
        next_cursor: page.next_cursor,
    }
}

async fn full_page(app: &TestApp, query: &str) -> TaskPage {
    let response = app.list_tasks(query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a task page")
}

/// Follows cursors from the first page of `filter` to the last; returns every page.
async fn walk(app: &TestApp, filter: &str, limit: u32) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let mut query = format!("?limit={limit}{filter}");
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let next = page(app, &query).await;
        cursor = next.next_cursor.clone();
        pages.push(next);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

async fn submit_to(app: &TestApp, queue: &str, n: usize) -> Vec<TaskId> {
    let tasks: Vec<Value> = (0..n)
        .map(|i| json!({ "payload": i, "queue": queue }))
        .collect();
    let reply: common::BatchSubmitted = app.submit_batch(&tasks).await.json().await.unwrap();
    reply.tasks.into_iter().map(|t| t.id).collect()
}

#[tokio::test]
async fn pagination_walks_every_task_exactly_once_in_id_order() {
    let app = spawn_app().await;
    let submitted = submit_to(&app, "default", 25).await;

    let pages = walk(&app, "", 10).await;

    let sizes: Vec<usize> = pages.iter().map(|p| p.tasks.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let listed: Vec<TaskId> = pages.iter().flat_map(|p| &p.tasks).map(|t| t.id).collect();
    assert_eq!(listed, submitted);
}

#[tokio::test]
async fn a_last_page_that_is_exactly_full_is_followed_by_an_empty_one() {
    let app = spawn_app().await;
    let submitted = submit_to(&app, "default", 20).await;

    let pages = walk(&app, "", 10).await;

    let listed: Vec<TaskId> = pages.iter().flat_map(|p| &p.tasks).map(|t| t.id).collect();
    assert_eq!(listed, submitted);
    assert!(pages.last().unwrap().next_cursor.is_none());
}

#[tokio::test]
async fn the_default_page_holds_100_tasks() {
    let app = spawn_app().await;
    submit_to(&app, "default", 101).await;
    let first = page(&app, "").await;
    assert_eq!(first.tasks.len(), 100);
    assert!(first.next_cursor.is_some());
}

#[tokio::test]
async fn tasks_submitted_while_paging_are_still_reached() {
    let app = spawn_app().await;
    submit_to(&app, "default", 5).await;
    let first = page(&app, "?limit=5").await;
    let late = app.submit_payload(json!("late")).await;

    let cursor = first.next_cursor.expect("a full page has a cursor");
    let next = page(&app, &format!("?limit=5&cursor={cursor}")).await;

    assert_eq!(next.tasks.len(), 1);
    assert_eq!(next.tasks[0].id, late.id);
}

#[tokio::test]
async fn the_queue_filter_lists_only_that_queue() {
    let app = spawn_app().await;
    let emails = submit_to(&app, "emails", 7).await;
    submit_to(&app, "images", 6).await;

    let pages = walk(&app, "&queue=emails", 3).await;

    let listed: Vec<TaskId> = pages.iter().flat_map(|p| &p.tasks).map(|t| t.id).collect();
    assert_eq!(listed, emails);
    assert!(
        pages
            .iter()
            .flat_map(|p| &p.tasks)
            .all(|t| t.queue == "emails")
    );
}

#[tokio::test]
async fn the_state_filter_lists_only_that_state() {
    let app = spawn_app().await;
    submit_to(&app, "default", 6).await;
    let leased = app.lease_as("w01", 4).await.tasks;
    app.succeed(&leased[0], "w01", json!("ok")).await;

    let leased_ids: HashSet<TaskId> = leased[1..].iter().map(|t| t.task_id).collect();
    let listed = page(&app, "?state=leased").await.tasks;
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<HashSet<_>>(),
        leased_ids
    );
    assert!(listed.iter().all(|t| t.state == TaskState::Leased));
    assert_eq!(page(&app, "?state=queued").await.tasks.len(), 2);
    let succeeded = page(&app, "?state=succeeded").await.tasks;
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].id, leased[0].task_id);
    assert!(page(&app, "?state=failed").await.tasks.is_empty());
}

#[tokio::test]
async fn queue_and_state_filters_combine() {
    let app = spawn_app().await;
    submit_to(&app, "emails", 2).await;
    let images = submit_to(&app, "images", 2).await;
    app.cancel(images[1].0).await;

    let listed = page(&app, "?queue=images&state=cancelled").await.tasks;

    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, images[1]);
}

#[tokio::test]
async fn a_listed_task_reads_as_get_task_does() {
    let app = spawn_app().await;
    let task = app
        .submit_task(SubmitTask {
            priority: 3,
            idempotency_key: Some("k".into()),
            ..SubmitTask::new(json!({ "a": [1, 2] }))
        })
        .await;
    let listed = full_page(&app, "?view=full").await.tasks;
    assert_eq!(listed, [ListedTask::Full(app.task(task.id.0).await)]);
}

#[tokio::test]
async fn an_unknown_task_is_404() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!(1)).await;
    let response = app.get_task(task.id.0 + 1).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn a_listing_with_no_tasks_is_one_empty_page() {
    let app = spawn_app().await;
    let only = page(&app, "").await;
    assert!(only.tasks.is_empty());
    assert!(only.next_cursor.is_none());
}

/// The keys of each task a listing shows, from its raw JSON.
async fn listed_keys(app: &TestApp, query: &str) -> Vec<Vec<String>> {
    let page: Value = app.list_tasks(query).await.json().await.unwrap();
    let tasks = page["tasks"].as_array().unwrap();
    let keys = |task: &Value| task.as_object().unwrap().keys().cloned().collect();
    tasks.iter().map(keys).collect()
}

#[tokio::test]
async fn a_listing_shows_payloads_and_results_only_in_full() {
    let app = spawn_app().await;
    app.submit_payload(json!({ "big": "data" })).await;
    let leased = app.lease_one("w01").await;
    app.succeed(&leased, "w01", json!("a result")).await;

    let summary = listed_keys(&app, "").await;
    let full = listed_keys(&app, "?view=full").await;

    assert!(
        !summary[0].iter().any(|k| k == "payload" || k == "result"),
        "{summary:?}"
    );
    assert!(summary[0].iter().any(|k| k == "error"), "{summary:?}");
    assert!(full[0].iter().any(|k| k == "payload") && full[0].iter().any(|k| k == "result"));
    let listed = full_page(&app, "?view=full").await.tasks;
    assert_eq!(
        listed[0].clone().full().unwrap().result,
        Some(json!("a result"))
    );
}

/// `n` tasks whose payloads are 400 bytes each as stored (a JSON string of 398 characters).
async fn submit_400_byte_payloads(app: &TestApp, n: usize) -> Vec<TaskId> {
    let tasks: Vec<Value> = (0..n)
        .map(|i| json!({ "payload": format!("{i}{}", "x".repeat(397)) }))
        .collect();
    let reply: common::BatchSubmitted = app.submit_batch(&tasks).await.json().await.unwrap();
    reply.tasks.into_iter().map(|t| t.id).collect()
}

#[tokio::test]
async fn a_full_page_ends_at_the_byte_limit_and_its_cursor_goes_on() {
    let app = spawn_app_with(|config| config.list_page_max_bytes = 1_000).await;
    let submitted = submit_400_byte_payloads(&app, 5).await;

    let pages = walk(&app, "&view=full", 100).await;

    let sizes: Vec<usize> = pages.iter().map(|p| p.tasks.len()).collect();
    assert_eq!(sizes, [2, 2, 1], "1,000 bytes hold two 400-byte payloads");
    let listed: Vec<TaskId> = pages.iter().flat_map(|p| &p.tasks).map(|t| t.id).collect();
    assert_eq!(listed, submitted);
}

#[tokio::test]
async fn a_task_larger_than_the_byte_limit_is_listed_alone() {
    let app = spawn_app_with(|config| config.list_page_max_bytes = 100).await;
    let submitted = submit_400_byte_payloads(&app, 2).await;

    let first = full_page(&app, "?view=full").await;

    assert_eq!(first.tasks.len(), 1);
    assert_eq!(first.tasks[0].id(), submitted[0]);
    assert_eq!(first.next_cursor, Some(submitted[0].to_string()));
}

#[tokio::test]
async fn a_summary_page_is_not_cut_by_the_payloads_it_does_not_show() {
    let app = spawn_app_with(|config| config.list_page_max_bytes = 1_000).await;
    submit_400_byte_payloads(&app, 5).await;

    let only = page(&app, "").await;

    assert_eq!(only.tasks.len(), 5);
    assert!(only.next_cursor.is_none());
}
