//! Leasing: batches, exclusivity under concurrency, priority, delays and queue selection.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{LeaseRequest, SubmitTask, TaskId, TaskState};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn submit_many(app: &TestApp, n: usize) -> Vec<TaskId> {
    let tasks: Vec<Value> = (0..n).map(|i| json!({ "payload": i })).collect();
    let response = app.submit_batch(&tasks).await;
    assert_eq!(response.status(), 201);
    let reply: common::BatchSubmitted = response.json().await.unwrap();
    reply.tasks.into_iter().map(|task| task.id).collect()
}

#[tokio::test]
async fn a_lease_marks_the_task_leased_to_its_worker() {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;

    let leased = app.lease_one("w01").await;

    assert_eq!((leased.task_id, leased.attempt), (task.id, 1));
    assert_eq!(leased.payload, json!("task data 1"));
    assert_eq!(leased.queue, "default");
    let now = app.now_ms() as i128 * 1_000_000;
    assert_eq!(
        leased.expires_at.unix_timestamp_nanos(),
        now + 30_000_000_000
    );
    let after = app.task(task.id.0).await;
    assert_eq!((after.state, after.attempts), (TaskState::Leased, 1));
    let lease = after.lease.expect("a lease");
    assert_eq!(
        (lease.worker_id.as_str(), lease.expires_at),
        ("w01", leased.expires_at)
    );
}

#[tokio::test]
async fn a_leased_task_is_not_leased_again() {
    let app = spawn_app().await;
    app.submit_payload(json!("task data 1")).await;
    app.lease_one("w01").await;
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn lease_secs_in_the_request_sets_the_lease_length() {
    let app = spawn_app().await;
    app.submit_payload(json!(1)).await;
    let leased = app
        .lease_with(LeaseRequest {
            lease_secs: Some(5),
            ..LeaseRequest::new("w01")
        })
        .await;
    let now = app.now_ms() as i128 * 1_000_000;
    assert_eq!(
        leased.tasks[0].expires_at.unix_timestamp_nanos(),
        now + 5_000_000_000
    );
}

#[tokio::test]
async fn the_tasks_own_lease_secs_applies_when_the_worker_names_none() {
    let app = spawn_app().await;
    app.submit_task(SubmitTask {
        lease_secs: Some(7),
        ..SubmitTask::new(json!(1))
    })
    .await;
    let leased = app.lease_one("w01").await;
    let now = app.now_ms() as i128 * 1_000_000;
    assert_eq!(
        leased.expires_at.unix_timestamp_nanos(),
        now + 7_000_000_000
    );
}

#[tokio::test]
async fn a_batch_lease_returns_up_to_max_tasks_distinct_tasks() {
    let app = spawn_app().await;
    submit_many(&app, 40).await;

    let first = app.lease_as("w01", 32).await;
    let second = app.lease_as("w02", 32).await;

    assert_eq!(first.tasks.len(), 32);
    assert_eq!(second.tasks.len(), 8);
    let ids: HashSet<TaskId> = first
        .tasks
        .iter()
        .chain(&second.tasks)
        .map(|t| t.task_id)
        .collect();
    assert_eq!(ids.len(), 40);
    let leases: HashSet<_> = first.tasks.iter().map(|t| t.lease_id.clone()).collect();
    assert_eq!(leases.len(), 32, "every task gets its own lease id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leasers_never_receive_the_same_task_and_together_receive_all() {
    let app = Arc::new(spawn_app().await);
    let submitted: HashSet<TaskId> = submit_many(&app, 500).await.into_iter().collect();

    let leasers = (0..16).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let leased = app.lease_as(&format!("w{i:02}"), 8).await;
                if leased.tasks.is_empty() {
                    return mine;
                }
                mine.extend(leased.tasks.into_iter().map(|t| t.task_id));
            }
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for leaser in leasers.collect::<Vec<_>>() {
        for id in leaser.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "task {id} leased twice");
        }
    }

    assert_eq!(total, 500);
    assert_eq!(seen, submitted);
    assert_eq!(app.queue_info("default").await.counts.leased, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leasers_naming_overlapping_queues_never_share_a_task() {
    let app = Arc::new(spawn_app().await);
    submit_many(&app, 300).await;

    // Half name only `default`, half `default` and `other`: the master may serve them together.
    let leasers = (0..16).map(|i| {
        let app = app.clone();
        let queues = if i % 2 == 0 {
            vec!["default".to_owned()]
        } else {
            vec!["default".to_owned(), "other".to_owned()]
        };
        let worker = format!("w{i:02}");
        tokio::spawn(async move {
            let request = LeaseRequest {
                queues: Some(queues),
                max_tasks: Some(4),
                ..LeaseRequest::new(&worker)
            };
            let mut mine = Vec::new();
            loop {
                let leased = app.lease_with(request.clone()).await;
                if leased.tasks.is_empty() {
                    return mine;
                }
                mine.extend(
                    leased
                        .tasks
                        .into_iter()
                        .map(|t| (t.task_id, worker.clone())),
                );
            }
        })
    });
    let mut seen = HashSet::new();
    for leaser in leasers.collect::<Vec<_>>() {
        for (id, worker) in leaser.await.unwrap() {
            assert!(seen.insert(id), "task {id} leased twice");
            let lease = app.task(id.0).await.lease.expect("a live lease");
            assert_eq!(
                lease.worker_id, worker,
                "task {id} is leased to another worker"
            );
        }
    }
    assert_eq!(seen.len(), 300);
}

#[tokio::test]
async fn higher_priority_tasks_are_leased_first() {
    let app = spawn_app().await;
    for priority in [0, 10, -5, 5] {
        app.submit_task(SubmitTask {
            priority,
            ..SubmitTask::new(json!(priority))
        })
        .await;
    }

    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(app.lease_one("w01").await.payload);
    }

    assert_eq!(order, [json!(10), json!(5), json!(0), json!(-5)]);
}

#[tokio::test]
async fn tasks_of_equal_priority_are_leased_oldest_first() {
    let app = spawn_app().await;
    let ids = submit_many(&app, 3).await;
    let leased = app.lease_as("w01", 3).await;
    let order: Vec<TaskId> = leased.tasks.iter().map(|t| t.task_id).collect();
    assert_eq!(order, ids);
}

#[tokio::test]
async fn a_delayed_task_is_not_leased_before_its_time() {
    let app = spawn_app().await;
    let delayed = app
        .submit_task(SubmitTask {
            delay_secs: Some(60),
            priority: 100,
            ..SubmitTask::new(json!("later"))
        })
        .await;
    assert_eq!(
        delayed.run_at - delayed.created_at,
        time::Duration::seconds(60)
    );
    app.submit_payload(json!("now")).await;

    let now = app.lease_one("w01").await;
    assert_eq!(now.payload, json!("now"));
    app.succeed(&now, "w01", json!("done")).await;
    app.advance(Duration::from_secs(59)).await;
    app.assert_nothing_to_lease("w01").await;
    app.advance(Duration::from_secs(1)).await;

    assert_eq!(app.lease_one("w01").await.task_id, delayed.id);
}

#[tokio::test]
async fn a_delayed_task_that_came_due_is_leased_before_ready_tasks_of_lower_priority() {
    let app = spawn_app().await;
    app.submit_payload(json!("ready")).await;
    for (delay_secs, priority) in [(10, 5), (20, 9)] {
        app.submit_task(SubmitTask {
            delay_secs: Some(delay_secs),
            priority,
            ..SubmitTask::new(json!(priority))
        })
        .await;
    }

    app.advance(Duration::from_secs(30)).await;
    let order: Vec<Value> = app
        .lease_as("w01", 3)
        .await
        .tasks
        .into_iter()
        .map(|t| t.payload)
        .collect();

    assert_eq!(order, [json!(9), json!(5), json!("ready")]);
}

#[tokio::test]
async fn a_worker_leases_only_from_the_queues_it_names() {
    let app = spawn_app().await;
    for queue in ["emails", "images", "default"] {
        app.submit_task(SubmitTask {
            queue: Some(queue.into()),
            ..SubmitTask::new(json!(queue))
        })
        .await;
    }

    let leased = app
        .lease_with(LeaseRequest {
            queues: Some(vec!["emails".into(), "images".into()]),
            max_tasks: Some(10),
            ..LeaseRequest::new("w01")
        })
        .await;

    let mut queues: Vec<&str> = leased.tasks.iter().map(|t| t.queue.as_str()).collect();
    queues.sort_unstable();
    assert_eq!(queues, ["emails", "images"]);
    assert_eq!(app.lease_one("w02").await.queue, "default");
}

#[tokio::test]
async fn priority_is_compared_across_the_queues_of_one_request() {
    let app = spawn_app().await;
    for (queue, priority) in [("a", 1), ("b", 9), ("a", 5)] {
        app.submit_task(SubmitTask {
            queue: Some(queue.into()),
            priority,
            ..SubmitTask::new(json!(priority))
        })
        .await;
    }
    let request = LeaseRequest {
        queues: Some(vec!["a".into(), "b".into()]),
        max_tasks: Some(2),
        ..LeaseRequest::new("w01")
    };
    let leased = app.lease_with(request).await;
    let payloads: Vec<Value> = leased.tasks.into_iter().map(|t| t.payload).collect();
    assert_eq!(payloads, [json!(9), json!(5)]);
}

#[tokio::test]
async fn an_empty_queue_gives_an_empty_lease_at_once() {
    let app = spawn_app().await;
    let leased = app.lease_as("w01", 8).await;
    assert!(leased.tasks.is_empty());
    assert!(!leased.no_more_tasks);
}
