//! Submitting tasks, one at a time and in batches, and idempotency keys.

use common::{BatchSubmitted, SubmitTask, Task, TaskState};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn keyed(payload: Value, key: &str) -> Value {
    json!(SubmitTask {
        idempotency_key: Some(key.into()),
        ..SubmitTask::new(payload)
    })
}

async fn submitted(app: &TestApp, task: &Value, status: StatusCode) -> Task {
    let response = app.submit(task).await;
    assert_eq!(response.status(), status);
    response.json().await.expect("a task")
}

async fn batch(app: &TestApp, tasks: &[Value], status: StatusCode) -> BatchSubmitted {
    let response = app.submit_batch(tasks).await;
    assert_eq!(response.status(), status);
    response.json().await.expect("a batch reply")
}

#[tokio::test]
async fn a_submitted_task_is_queued_with_defaults_and_a_location() {
    let app = spawn_app().await;

    let response = app.submit(&json!({ "payload": { "n": 1 } })).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let task: Task = response.json().await.unwrap();
    assert_eq!(location, format!("/tasks/{}", task.id));
    assert_eq!(task.state, TaskState::Queued);
    assert_eq!(task.queue, "default");
    assert_eq!(task.payload, json!({ "n": 1 }));
    assert_eq!((task.priority, task.attempts, task.max_attempts), (0, 0, 3));
    assert_eq!(task.run_at, task.created_at);
    assert_eq!(app.task(task.id.0).await, task);
}

#[tokio::test]
async fn task_ids_grow_in_submission_order() {
    let app = spawn_app().await;
    let first = app.submit_payload(json!(1)).await;
    let second = app.submit_payload(json!(2)).await;
    assert!(second.id > first.id);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_200_and_the_same_task() {
    let app = spawn_app().await;
    let first = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::CREATED).await;

    let again = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::OK).await;

    assert_eq!(again.id, first.id);
    assert_eq!(again.idempotency_key.as_deref(), Some("k1"));
    assert_eq!(app.all_tasks().await.len(), 1);
}

#[tokio::test]
async fn a_repeated_idempotency_key_with_another_payload_is_refused_with_409() {
    let app = spawn_app().await;
    let first = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::CREATED).await;

    let response = app.submit(&keyed(json!("b"), "k1")).await;

    let problem = assert_problem(response, StatusCode::CONFLICT, "idempotency-key-reused").await;
    assert!(problem.detail.unwrap().contains("payload"));
    let tasks = app.all_tasks().await;
    assert_eq!(
        (tasks.len(), tasks[0].id, &tasks[0].payload),
        (1, first.id, &json!("a"))
    );
}

#[tokio::test]
async fn a_batch_reusing_a_key_for_another_queue_is_refused_and_inserts_nothing() {
    let app = spawn_app().await;
    submitted(&app, &keyed(json!("a"), "k1"), StatusCode::CREATED).await;
    let mut elsewhere = keyed(json!("a"), "k1");
    elsewhere["queue"] = json!("other");

    let response = app
        .submit_batch(&[keyed(json!("new"), "k2"), elsewhere])
        .await;

    assert_problem(response, StatusCode::CONFLICT, "idempotency-key-reused").await;
    assert_eq!(app.all_tasks().await.len(), 1);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_task_as_it_is_now() {
    let app = spawn_app().await;
    let first = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::CREATED).await;
    let leased = app.lease_one("w01").await;
    app.succeed(&leased, "w01", json!("done")).await;

    let again = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::OK).await;

    assert_eq!(again.id, first.id);
    assert_eq!(again.state, TaskState::Succeeded);
    app.assert_nothing_to_lease("w02").await;
}

#[tokio::test]
async fn a_batch_is_created_in_request_order() {
    let app = spawn_app().await;
    let tasks: Vec<Value> = (0..5).map(|i| json!({ "payload": i })).collect();

    let reply = batch(&app, &tasks, StatusCode::CREATED).await;

    assert_eq!(reply.created, 5);
    let payloads: Vec<Value> = reply.tasks.iter().map(|t| t.payload.clone()).collect();
    assert_eq!(payloads, (0..5).map(|i| json!(i)).collect::<Vec<_>>());
    assert!(reply.tasks.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(app.all_tasks().await.len(), 5);
}

#[tokio::test]
async fn a_key_repeated_inside_one_batch_creates_one_task() {
    let app = spawn_app().await;
    let tasks = [
        keyed(json!("a"), "k1"),
        keyed(json!("b"), "k2"),
        keyed(json!("a"), "k1"),
    ];

    let reply = batch(&app, &tasks, StatusCode::CREATED).await;

    assert_eq!(reply.created, 2);
    assert_eq!(reply.tasks[0].id, reply.tasks[2].id);
    assert_ne!(reply.tasks[0].id, reply.tasks[1].id);
    assert_eq!(app.all_tasks().await.len(), 2);
}

#[tokio::test]
async fn a_key_repeated_inside_one_batch_for_another_payload_refuses_the_batch() {
    let app = spawn_app().await;
    let tasks = [keyed(json!("a"), "k1"), keyed(json!("a again"), "k1")];

    let response = app.submit_batch(&tasks).await;

    assert_problem(response, StatusCode::CONFLICT, "idempotency-key-reused").await;
    assert!(app.all_tasks().await.is_empty());
}

#[tokio::test]
async fn a_batch_of_known_keys_returns_200_and_creates_nothing() {
    let app = spawn_app().await;
    let tasks = [keyed(json!("a"), "k1"), keyed(json!("b"), "k2")];
    let first = batch(&app, &tasks, StatusCode::CREATED).await;

    let again = batch(&app, &tasks, StatusCode::OK).await;

    assert_eq!(again.created, 0);
    assert_eq!(again.tasks, first.tasks);
    assert_eq!(app.all_tasks().await.len(), 2);
}

#[tokio::test]
async fn a_key_first_used_in_a_batch_is_known_to_a_single_submission() {
    let app = spawn_app().await;
    let first = batch(&app, &[keyed(json!("a"), "k1")], StatusCode::CREATED).await;

    let again = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::OK).await;

    assert_eq!(again.id, first.tasks[0].id);
    assert_eq!(app.all_tasks().await.len(), 1);
}

#[tokio::test]
async fn a_key_first_used_alone_is_known_to_a_batch() {
    let app = spawn_app().await;
    let first = submitted(&app, &keyed(json!("a"), "k1"), StatusCode::CREATED).await;

    let reply = batch(
        &app,
        &[keyed(json!("a"), "k1"), json!({ "payload": "new" })],
        StatusCode::CREATED,
    )
    .await;

    assert_eq!(reply.created, 1);
    assert_eq!(reply.tasks[0].id, first.id);
    assert_eq!(app.all_tasks().await.len(), 2);
}

#[tokio::test]
async fn concurrent_submissions_with_one_key_create_one_task() {
    let app = spawn_app().await;
    let body = keyed(json!("a"), "k1");
    let responses = futures_util::future::join_all((0..8).map(|_| app.submit(&body))).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for response in responses {
        created += usize::from(response.status() == StatusCode::CREATED);
        ids.push(response.json::<Task>().await.unwrap().id);
    }
    assert_eq!(created, 1);
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(app.all_tasks().await.len(), 1);
}

#[tokio::test]
async fn a_batch_with_one_invalid_task_creates_none() {
    let app = spawn_app().await;
    let tasks = [
        json!({ "payload": 1 }),
        json!({ "payload": 2, "max_attempts": 0 }),
    ];

    let response = app.submit_batch(&tasks).await;

    crate::helpers::assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    assert!(app.all_tasks().await.is_empty());
}

/// Concurrent submissions are committed in groups on PostgreSQL: each answer must still be its
/// own task, stored as sent, and each batch's tasks in its order.
#[tokio::test]
async fn concurrent_submissions_each_get_their_own_tasks_in_order() {
    let app = &spawn_app().await;
    let singles = (0..48).map(|n| async move {
        let task = submitted(
            app,
            &json!({ "payload": { "single": n } }),
            StatusCode::CREATED,
        )
        .await;
        vec![(task, json!({ "single": n }))]
    });
    let batches = (0..8).map(|n| async move {
        let tasks: Vec<Value> = (0..5)
            .map(|i| json!({ "payload": { "batch": n, "i": i } }))
            .collect();
        let reply = batch(app, &tasks, StatusCode::CREATED).await;
        let ids: Vec<i64> = reply.tasks.iter().map(|t| t.id.0).collect();
        assert!(ids.is_sorted(), "batch {n} not in id order: {ids:?}");
        let sent = tasks.iter().map(|t| t["payload"].clone());
        reply.tasks.into_iter().zip(sent).collect::<Vec<_>>()
    });
    let (singles, batches) = tokio::join!(
        futures_util::future::join_all(singles),
        futures_util::future::join_all(batches)
    );

    let answered: Vec<(Task, Value)> = singles.into_iter().chain(batches).flatten().collect();
    let mut ids: Vec<i64> = answered.iter().map(|(task, _)| task.id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 48 + 8 * 5, "every task its own id");
    for (task, sent) in answered {
        assert_eq!(
            task.payload, sent,
            "task {} answered with another's payload",
            task.id
        );
        assert_eq!(
            app.task(task.id.0).await.payload,
            sent,
            "task {} stored",
            task.id
        );
    }
    assert_eq!(app.all_tasks().await.len(), 48 + 8 * 5);
}

#[tokio::test]
async fn concurrent_submissions_to_a_sealed_queue_are_refused_and_the_others_stored() {
    let app = &spawn_app().await;
    app.submit_task(SubmitTask {
        queue: Some("closed".into()),
        ..SubmitTask::new(json!("before the seal"))
    })
    .await;
    assert_eq!(app.seal("closed").await.status(), 200);

    let submissions = (0..32).map(|n| {
        let queue = if n % 2 == 0 { "closed" } else { "open" };
        async move {
            let body = json!({ "queue": queue, "payload": n });
            (queue, app.submit(&body).await.status())
        }
    });
    let answers = futures_util::future::join_all(submissions).await;

    for (queue, status) in answers {
        let expected = match queue {
            "closed" => StatusCode::CONFLICT,
            _ => StatusCode::CREATED,
        };
        assert_eq!(status, expected, "a submission to {queue}");
    }
    let stored = app.all_tasks().await;
    assert_eq!(stored.iter().filter(|t| t.queue == "open").count(), 16);
    assert_eq!(stored.iter().filter(|t| t.queue == "closed").count(), 1);
}
