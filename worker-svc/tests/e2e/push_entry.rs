//! The worker's push entry points, `POST /do-task` and `POST /do-tasks`.

use std::time::Duration;

use common::{DoTaskReply, DoTasks, LeaseId, LeasedTask, Outcome, PushedResult, TaskId};
use serde_json::json;
use time::OffsetDateTime;

use crate::cluster::Cluster;

fn pushed(id: i64, payload: serde_json::Value) -> LeasedTask {
    LeasedTask {
        task_id: TaskId(id),
        lease_id: LeaseId(format!("lease-{id}")),
        queue: "default".into(),
        payload,
        attempt: 1,
        expires_at: OffsetDateTime::now_utc() + Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_task_runs_and_its_outcome_is_the_reply() {
    let cluster = Cluster::start().await;
    let (_worker, url) = cluster
        .worker("w1", &["--no-pull", "--handler", "uppercase"])
        .await;
    let client = reqwest::Client::new();
    let reply: DoTaskReply = client
        .post(format!("{url}/do-task"))
        .json(&pushed(1, json!("hello world")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply.worker_id, "w1");
    assert_eq!(reply.outcome, Outcome::Succeeded);
    assert_eq!(reply.result, Some(json!("HELLO WORLD")));
    let failed: DoTaskReply = client
        .post(format!("{url}/do-task"))
        .json(&pushed(2, json!(42)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((failed.outcome, failed.retry), (Outcome::Failed, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_answers_429_with_retry_after() {
    let cluster = Cluster::start().await;
    let args = ["--no-pull", "--concurrency", "1", "--handler", "process"];
    let (_worker, url) = cluster.worker("w1", &args).await;
    let client = reqwest::Client::new();
    let slow = client
        .post(format!("{url}/do-task"))
        .json(&pushed(1, json!({ "sleep_ms": 1_000 })))
        .send();
    let slow = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = client
        .post(format!("{url}/do-task"))
        .json(&pushed(2, json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(busy.headers()["content-type"], "application/problem+json");
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_configured_do_task_refuses_requests_without_it() {
    let cluster = Cluster::start().await;
    let args = [
        "--no-pull",
        "--handler",
        "uppercase",
        "--worker-token",
        "s3cret",
    ];
    let (_worker, url) = cluster.worker("w1", &args).await;
    let client = reqwest::Client::new();
    let anonymous = client
        .post(format!("{url}/do-task"))
        .json(&pushed(1, json!("a")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let authorized = client
        .post(format!("{url}/do-task"))
        .bearer_auth("s3cret")
        .json(&pushed(1, json!("a")))
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_tasks_streams_each_result_as_its_task_finishes() {
    let cluster = Cluster::start().await;
    let args = ["--no-pull", "--concurrency", "2", "--handler", "process"];
    let (_worker, url) = cluster.worker("w1", &args).await;
    let tasks = vec![
        pushed(1, json!({ "sleep_ms": 1_500 })),
        pushed(2, json!({ "sleep_ms": 0 })),
    ];
    let started = std::time::Instant::now();
    let mut response = reqwest::Client::new()
        .post(format!("{url}/do-tasks"))
        .json(&DoTasks { tasks })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");

    // The quick task's line comes first, long before the slow task ends.
    let mut text = String::new();
    let mut seen = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find('\n') {
            let line: PushedResult = serde_json::from_str(&text[..end]).unwrap();
            seen.push((line.task_id, started.elapsed()));
            assert_eq!(
                (line.reply.worker_id.as_str(), line.reply.outcome),
                ("w1", Outcome::Succeeded)
            );
            text.drain(..=end);
        }
    }
    let ids: Vec<TaskId> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [TaskId(2), TaskId(1)]);
    assert!(seen[0].1 < Duration::from_millis(1_000), "{seen:?}");
    assert!(text.is_empty(), "a partial line: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_tasks_takes_all_the_tasks_or_none() {
    let cluster = Cluster::start().await;
    let args = ["--no-pull", "--concurrency", "2", "--handler", "process"];
    let (_worker, url) = cluster.worker("w1", &args).await;
    let client = reqwest::Client::new();
    let three = DoTasks {
        tasks: (1..=3).map(|id| pushed(id, json!({}))).collect(),
    };
    let busy = client
        .post(format!("{url}/do-tasks"))
        .json(&three)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    let none = client
        .post(format!("{url}/do-tasks"))
        .json(&json!({ "tasks": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 400);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    let two = DoTasks {
        tasks: (1..=2).map(|id| pushed(id, json!({}))).collect(),
    };
    let ran = client
        .post(format!("{url}/do-tasks"))
        .json(&two)
        .send()
        .await
        .unwrap();
    assert_eq!(ran.status(), 200);
    assert_eq!(ran.text().await.unwrap().lines().count(), 2);
}
