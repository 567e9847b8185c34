//! The worker's push entry point, `POST /do-task`.

use std::time::Duration;

use common::{DoTaskReply, LeaseId, LeasedTask, Outcome, TaskId};
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
    let client = leasehold_client::http_client();
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
    let client = leasehold_client::http_client();
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
    let client = leasehold_client::http_client();
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
