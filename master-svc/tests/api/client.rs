//! `leasehold_client::MasterClient` against a live master: each of its operator and probe
//! methods reaches its endpoint and reads the answer (the worker's methods are exercised by the
//! worker and the end-to-end tests).

use common::probe::ProbeState;
use common::{ListTasks, RegisterWorker, SubmitTask, TaskState, TaskView};
use leasehold_client::{ClientError, MasterClient};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_client_lists_cancels_and_retries_tasks() {
    let app = spawn_app().await;
    let master = MasterClient::new(&app.address, None);
    for n in 1..=3 {
        master.submit(&SubmitTask::new(json!(n))).await.unwrap();
    }

    let query = ListTasks {
        limit: Some(2),
        view: Some(TaskView::Full),
        ..ListTasks::default()
    };
    let page = master.list(&query).await.unwrap();
    let first = page.tasks[0].clone().full().expect("listed in full");
    let cancelled = master.cancel(first.id).await.unwrap();
    let retried = master.retry(first.id).await.unwrap();

    assert_eq!(page.tasks.len(), 2);
    assert_eq!(page.next_cursor.as_deref(), Some("2"));
    assert_eq!(first.payload, json!(1));
    assert_eq!(cancelled.state, TaskState::Cancelled);
    assert_eq!(retried.state, TaskState::Queued);
}

#[tokio::test]
async fn the_client_seals_unseals_and_counts_queues() {
    let app = spawn_app().await;
    let master = MasterClient::new(&app.address, None);
    master.submit(&SubmitTask::new(json!("x"))).await.unwrap();

    let sealed = master.seal("default").await.unwrap();
    let refused = master.submit(&SubmitTask::new(json!("y"))).await;
    let unsealed = master.unseal("default").await.unwrap();
    let queues = master.queues().await.unwrap();

    assert!(sealed.sealed && !unsealed.sealed);
    assert!(matches!(refused, Err(ClientError::Refused(p)) if p.status == 409));
    assert_eq!(queues.queues.len(), 1);
    assert_eq!(queues.queues[0].counts.queued, 1);
}

#[tokio::test]
async fn the_client_reads_a_queues_history() {
    let app = spawn_app().await;
    let master = MasterClient::new(&app.address, None);
    master.submit(&SubmitTask::new(json!("x"))).await.unwrap();

    let hour = master.queue_history("default", None).await.unwrap();
    let last = master.queue_history("default", Some(10)).await.unwrap();
    let refused = master.queue_history("default", Some(5)).await;

    assert_eq!((hour.window_secs, last.window_secs), (3600, 10));
    assert_eq!(last.points.len(), 1);
    assert_eq!((last.points[0].submitted, last.points[0].queued), (1, 1));
    assert!(matches!(refused, Err(ClientError::Refused(p)) if p.status == 400));
}

#[tokio::test]
async fn the_client_removes_a_push_worker() {
    let app = spawn_app().await;
    let master = MasterClient::new(&app.address, None);
    let registration = RegisterWorker {
        id: "p01".into(),
        url: "http://127.0.0.1:9".into(),
        capacity: None,
        queues: None,
    };
    master.register_worker(&registration).await.unwrap();

    master.remove_worker("p01").await.unwrap();
    let again = master.remove_worker("p01").await;

    assert!(master.workers().await.unwrap().workers.is_empty());
    assert!(matches!(again, Err(ClientError::Refused(p)) if p.status == 404));
}

#[tokio::test]
async fn the_client_reads_the_probes_and_the_metrics() {
    let app = spawn_app().await;
    let master = MasterClient::new(&app.address, None);

    assert_eq!(master.healthz().await.unwrap().status, ProbeState::Ok);
    assert_eq!(master.readyz().await.unwrap().status, ProbeState::Ready);
    let metrics = master.metrics().await.unwrap();
    assert!(metrics.contains("leasehold_"), "{metrics}");
}
