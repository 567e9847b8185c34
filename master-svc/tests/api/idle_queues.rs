//! Idle queues: one with no tasks and no settings stops being listed and exported once it has
//! been so for `--queue-idle-secs`; one with tasks, or sealed, stays.

use std::time::Duration;

use common::SubmitTask;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

const IDLE: Duration = Duration::from_secs(60);

async fn spawn() -> TestApp {
    spawn_app_with(|config| config.queue_idle_secs = IDLE.as_secs()).await
}

async fn listed(app: &TestApp) -> Vec<String> {
    app.queue_list().await.into_iter().map(|q| q.name).collect()
}

async fn exported(app: &TestApp, queue: &str) -> bool {
    let text = app.metrics().await.text().await.unwrap();
    text.contains(&format!("leasehold_queue_tasks{{queue=\"{queue}\""))
}

#[tokio::test]
async fn a_queue_with_no_tasks_and_no_settings_is_forgotten_after_the_idle_time() {
    let app = spawn().await;
    app.unseal("passing").await;
    app.advance(IDLE / 2).await;
    assert_eq!(listed(&app).await, ["passing"]);
    assert!(exported(&app, "passing").await);

    app.advance(IDLE).await;

    assert!(listed(&app).await.is_empty());
    assert!(!exported(&app, "passing").await);
    assert_eq!(app.queue("passing").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_queue_with_tasks_or_sealed_is_kept() {
    let app = spawn().await;
    app.submit_task(SubmitTask {
        queue: Some("busy".into()),
        ..SubmitTask::new(json!(1))
    })
    .await;
    app.seal("closed").await;

    app.advance(IDLE).await;
    app.advance(IDLE * 2).await;

    assert_eq!(listed(&app).await, ["busy", "closed"]);
}

#[tokio::test]
async fn a_forgotten_queue_comes_back_with_its_next_task() {
    let app = spawn().await;
    app.unseal("again").await;
    app.advance(IDLE).await;
    app.advance(IDLE * 2).await;
    assert!(listed(&app).await.is_empty());

    app.submit_task(SubmitTask {
        queue: Some("again".into()),
        ..SubmitTask::new(json!(1))
    })
    .await;

    assert_eq!(app.queue_info("again").await.counts.queued, 1);
}
