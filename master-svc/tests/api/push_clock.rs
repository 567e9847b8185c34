//! The push feeder times a pushed task's lease by the engine's clock (a test's manual clock
//! here, the database server's on PostgreSQL), not by this machine's.

use std::time::Duration;

use axum::Json;
use common::{DoTaskReply, LeasedTask, Outcome, SubmitTask, Task, TaskState};
use serde_json::json;
use time::OffsetDateTime;

use crate::helpers::{TestApp, spawn_app_with};

/// How long the worker below takes to answer each push.
const RUN_TIME: Duration = Duration::from_millis(2_500);

/// A push worker that answers every task with a success after [`RUN_TIME`]; returns its URL.
async fn slow_worker() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let do_task = |Json(task): Json<LeasedTask>| async move {
        tokio::time::sleep(RUN_TIME).await;
        Json(DoTaskReply {
            worker_id: "slow".into(),
            outcome: Outcome::Succeeded,
            result: Some(json!(task.task_id.0)),
            error: None,
            retry: false,
            pause_queue_secs: None,
        })
    };
    let app = axum::Router::new().route("/do-task", axum::routing::post(do_task));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Polls the task until `check` holds, for up to 5 s.
async fn wait_for_task(app: &TestApp, id: i64, check: impl Fn(&Task) -> bool) -> Task {
    for _ in 0..100 {
        let task = app.task(id).await;
        if check(&task) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} never got there: {:?}", app.task(id).await);
}

fn expires_at(task: &Task) -> OffsetDateTime {
    task.lease
        .as_ref()
        .expect("a leased task has a lease")
        .expires_at
}

#[tokio::test]
async fn a_pushed_task_is_renewed_by_the_engines_clock_when_this_machines_is_behind_it() {
    let url = slow_worker().await;
    let app = spawn_app_with(|config| config.push_workers = vec![url]).await;
    // The engine's clock an hour ahead of this machine's: timed by this machine's clock, the
    // 3 s lease would look an hour long, and be renewed every twenty minutes.
    app.clock.advance(Duration::from_secs(3_600));
    let task = SubmitTask {
        lease_secs: Some(3),
        ..SubmitTask::new(json!("slow"))
    };
    let task = app.submit_task(task).await;
    let leased = wait_for_task(&app, task.id.0, |t| t.state == TaskState::Leased).await;
    let first_expiry = expires_at(&leased);

    // Two of the lease's three seconds pass on the engine's clock; the feeder renews it every
    // second of the worker's run.
    app.clock.advance(Duration::from_secs(2));
    let renewed = wait_for_task(&app, task.id.0, |t| {
        t.state != TaskState::Leased || expires_at(t) > first_expiry
    })
    .await;

    assert_eq!(renewed.state, TaskState::Leased, "{renewed:?}");
    assert_eq!(
        expires_at(&renewed) - first_expiry,
        time::Duration::seconds(2),
        "renewed for 3 s from the engine's time"
    );
    let done = wait_for_task(&app, task.id.0, |t| t.state == TaskState::Succeeded).await;
    assert_eq!(done.attempts, 1);
}
