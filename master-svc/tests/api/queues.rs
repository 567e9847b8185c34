//! Queues: counts, sealing and unsealing, and when leasers are told there is no more work.

use std::time::Duration;

use common::{LeaseRequest, LeaseResponse, QueueInfo, StateCounts, SubmitTask};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn to(queue: &str, payload: Value) -> SubmitTask {
    SubmitTask {
        queue: Some(queue.into()),
        ..SubmitTask::new(payload)
    }
}

/// Leases up to 8 tasks from `queues` without waiting.
async fn lease_from(app: &TestApp, queues: &[&str]) -> LeaseResponse {
    app.lease_with(LeaseRequest {
        queues: Some(queues.iter().map(|q| q.to_string()).collect()),
        max_tasks: Some(8),
        ..LeaseRequest::new("w01")
    })
    .await
}

#[tokio::test]
async fn queue_counts_follow_the_tasks_through_every_state() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.submit_task(to("work", json!(i))).await;
    }
    let leased = lease_from(&app, &["work"]).await.tasks;
    app.succeed(&leased[0], "w01", json!("ok")).await;
    app.fail(&leased[1], "w01", Some(false), None).await;
    app.cancel(leased[2].task_id.0).await;
    app.release(
        leased[2].task_id.0,
        &json!({ "lease_id": leased[2].lease_id }),
    )
    .await;
    app.release(
        leased[3].task_id.0,
        &json!({ "lease_id": leased[3].lease_id }),
    )
    .await;

    let info = app.queue_info("work").await;

    let expected = StateCounts {
        queued: 1,
        leased: 1,
        succeeded: 1,
        failed: 1,
        cancelled: 1,
    };
    assert_eq!(info.counts, expected);
    assert_eq!(info.name, "work");
    assert!(!info.sealed);
}

#[tokio::test]
async fn the_queue_list_names_every_queue_with_its_counts() {
    let app = spawn_app().await;
    app.submit_task(to("b", json!(1))).await;
    app.submit_task(to("a", json!(1))).await;
    app.submit_task(to("a", json!(2))).await;

    let queues = app.queue_list().await;

    let summary: Vec<(&str, u64)> = queues
        .iter()
        .map(|q| (q.name.as_str(), q.counts.queued))
        .collect();
    assert_eq!(summary, [("a", 2), ("b", 1)]);
}

#[tokio::test]
async fn the_oldest_ready_task_age_is_reported() {
    let app = spawn_app().await;
    app.submit_task(to("work", json!(1))).await;
    app.advance(Duration::from_secs(90)).await;
    app.submit_task(to("work", json!(2))).await;
    let info = app.queue_info("work").await;
    assert_eq!(info.oldest_queued_age_secs, Some(90.0));
}

#[tokio::test]
async fn the_oldest_ready_task_is_found_whatever_its_priority() {
    let app = spawn_app().await;
    let with_priority = |priority: i32| SubmitTask {
        priority,
        ..to("work", json!(priority))
    };
    app.submit_task(with_priority(-3)).await;
    app.advance(Duration::from_secs(30)).await;
    app.submit_task(with_priority(7)).await;
    app.advance(Duration::from_secs(30)).await;
    app.submit_task(with_priority(0)).await;
    app.submit_task(with_priority(7)).await;

    assert_eq!(
        app.queue_info("work").await.oldest_queued_age_secs,
        Some(60.0)
    );
    // The oldest, at the lowest priority, is leased last.
    let lease = |max_tasks| LeaseRequest {
        queues: Some(vec!["work".into()]),
        max_tasks: Some(max_tasks),
        ..LeaseRequest::new("w01")
    };
    assert_eq!(app.lease_with(lease(3)).await.tasks.len(), 3);
    assert_eq!(
        app.queue_info("work").await.oldest_queued_age_secs,
        Some(60.0)
    );
    assert_eq!(app.lease_with(lease(1)).await.tasks.len(), 1);
    assert_eq!(app.queue_info("work").await.oldest_queued_age_secs, None);
}

#[tokio::test]
async fn an_unknown_queue_is_404() {
    let app = spawn_app().await;
    assert_problem(
        app.queue("nowhere").await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_sealed_queue_refuses_new_tasks_with_queue_sealed() {
    let app = spawn_app().await;
    app.submit_task(to("batch", json!(1))).await;

    let sealed: QueueInfo = app.seal("batch").await.json().await.unwrap();
    assert!(sealed.sealed);

    let response = app.submit(&json!(to("batch", json!(2)))).await;
    assert_problem(response, StatusCode::CONFLICT, "queue-sealed").await;
    assert_eq!(app.queue_info("batch").await.counts.queued, 1);
}

#[tokio::test]
async fn a_batch_touching_a_sealed_queue_creates_nothing() {
    let app = spawn_app().await;
    app.seal("closed").await;
    let tasks = [json!(to("open", json!(1))), json!(to("closed", json!(2)))];

    let response = app.submit_batch(&tasks).await;

    assert_problem(response, StatusCode::CONFLICT, "queue-sealed").await;
    assert!(app.all_tasks().await.is_empty());
}

#[tokio::test]
async fn a_replayed_submission_to_a_since_sealed_queue_returns_the_original_task() {
    let app = spawn_app().await;
    let keyed = SubmitTask {
        idempotency_key: Some("k1".into()),
        ..to("batch", json!(1))
    };
    let original = app.submit_task(keyed.clone()).await;
    app.seal("batch").await;

    let response = app.submit(&json!(keyed)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let replayed: common::Task = response.json().await.unwrap();
    assert_eq!(replayed.id, original.id);
    assert_eq!(app.all_tasks().await.len(), 1);
}

#[tokio::test]
async fn sealing_an_unknown_queue_creates_it_sealed() {
    let app = spawn_app().await;
    assert_eq!(app.seal("later").await.status(), StatusCode::OK);
    let info = app.queue_info("later").await;
    assert!(info.sealed);
    assert_eq!(info.counts, StateCounts::default());
}

#[tokio::test]
async fn unsealing_reopens_a_queue() {
    let app = spawn_app().await;
    app.seal("batch").await;

    let unsealed: QueueInfo = app.unseal("batch").await.json().await.unwrap();

    assert!(!unsealed.sealed);
    app.submit_task(to("batch", json!(1))).await;
    let leased = lease_from(&app, &["batch"]).await;
    assert_eq!(leased.tasks.len(), 1);
    assert!(!leased.no_more_tasks);
}

#[tokio::test]
async fn no_more_tasks_waits_until_the_last_leased_task_is_finished() {
    let app = spawn_app().await;
    app.submit_task(to("batch", json!(1))).await;
    app.seal("batch").await;

    let first = lease_from(&app, &["batch"]).await;
    assert_eq!(first.tasks.len(), 1);
    assert!(!first.no_more_tasks);
    let while_leased = lease_from(&app, &["batch"]).await;
    assert!(while_leased.tasks.is_empty());
    assert!(!while_leased.no_more_tasks, "a task is still leased");

    app.succeed(&first.tasks[0], "w01", json!("ok")).await;

    assert!(lease_from(&app, &["batch"]).await.no_more_tasks);
}

#[tokio::test]
async fn no_more_tasks_is_false_while_a_delayed_task_waits_in_a_sealed_queue() {
    let app = spawn_app().await;
    app.submit_task(SubmitTask {
        delay_secs: Some(60),
        ..to("batch", json!(1))
    })
    .await;
    app.seal("batch").await;

    let reply = lease_from(&app, &["batch"]).await;

    assert!(reply.tasks.is_empty());
    assert!(!reply.no_more_tasks);
}

#[tokio::test]
async fn a_task_whose_lease_expires_in_a_sealed_queue_is_leased_again() {
    let app = spawn_app().await;
    app.submit_task(to("batch", json!(1))).await;
    app.seal("batch").await;
    lease_from(&app, &["batch"]).await;

    app.advance(Duration::from_secs(31)).await;

    let again = lease_from(&app, &["batch"]).await;
    assert_eq!(again.tasks.len(), 1, "the expired task is leased again");
    assert_eq!(again.tasks[0].attempt, 2);
}

#[tokio::test]
async fn no_more_tasks_needs_every_queue_asked_for_to_be_sealed_and_empty() {
    let app = spawn_app().await;
    app.seal("a").await;

    assert!(lease_from(&app, &["a"]).await.no_more_tasks);
    assert!(
        !lease_from(&app, &["a", "b"]).await.no_more_tasks,
        "b is not sealed"
    );
    app.seal("b").await;
    assert!(lease_from(&app, &["a", "b"]).await.no_more_tasks);
    app.unseal("b").await;
    assert!(!lease_from(&app, &["a", "b"]).await.no_more_tasks);
}

#[tokio::test]
async fn an_unsealed_empty_queue_never_says_no_more_tasks() {
    let app = spawn_app().await;
    app.submit_task(to("open", json!(1))).await;
    let leased = lease_from(&app, &["open"]).await;
    app.succeed(&leased.tasks[0], "w01", json!("ok")).await;
    assert!(!lease_from(&app, &["open"]).await.no_more_tasks);
}

#[tokio::test]
async fn the_counts_kept_with_each_change_are_what_counting_the_tasks_gives() {
    let app = spawn_app().await;
    for i in 0..12 {
        app.submit_task(to(["a", "b"][i % 2], json!(i))).await;
    }
    let leased = lease_from(&app, &["a", "b"]).await.tasks;
    app.succeed(&leased[0], "w01", json!("ok")).await;
    app.succeed(&leased[1], "w01", json!("ok")).await;
    app.fail(&leased[2], "w01", Some(true), None).await;
    app.fail(&leased[3], "w01", Some(false), None).await;
    app.cancel(leased[4].task_id.0).await;
    assert_counts_match_the_tasks(&app).await;
    // The rest of the leases expire (the cancelled one's with it); later, the finished tasks
    // are purged.
    app.advance(Duration::from_secs(3_600)).await;
    app.advance(Duration::from_secs(120)).await;
    assert_counts_match_the_tasks(&app).await;
    app.engine
        .reap(Some(Duration::from_secs(60)))
        .await
        .expect("purge");
    let purged = assert_counts_match_the_tasks(&app).await;
    let finished = |c: &StateCounts| c.succeeded + c.failed + c.cancelled;
    assert_eq!(purged.iter().map(|q| finished(&q.counts)).sum::<u64>(), 0);
    if crate::helpers::on_postgres() {
        // The masters fold the changes the triggers logged every second: still the same.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(assert_counts_match_the_tasks(&app).await, purged);
    }
}

/// Asserts that each queue's counts are what counting its tasks one by one gives.
async fn assert_counts_match_the_tasks(app: &TestApp) -> Vec<QueueInfo> {
    let queues = app.queue_list().await;
    let tasks = app.all_tasks().await;
    for queue in &queues {
        let mut recounted = StateCounts::default();
        for state in common::TaskState::ALL {
            let n = tasks
                .iter()
                .filter(|t| t.queue == queue.name && t.state == state)
                .count();
            recounted.set(state, n as u64);
        }
        assert_eq!(queue.counts, recounted, "queue {}", queue.name);
    }
    queues
}
