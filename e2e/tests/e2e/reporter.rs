//! The worker's `Reporter` against the real master: results that finish together go in one
//! `POST /tasks/results`, and each is answered on its own.

use common::{LeaseId, LeaseRequest, TaskResult, TaskState};
use leasehold_client::ClientError;
use serde_json::json;
use worker_svc::report::Reporter;

use crate::cluster::{Cluster, payload};

#[tokio::test]
async fn the_workers_reporter_answers_each_grouped_result_on_its_own() {
    let cluster = Cluster::start().await;
    for n in 1..=3 {
        cluster.submit(payload(&format!("task data {n}"))).await;
    }
    let request = LeaseRequest {
        max_tasks: Some(3),
        ..LeaseRequest::new("w01")
    };
    let leased = cluster.client.lease(&request).await.expect("leased").tasks;
    assert_eq!(leased.len(), 3);
    let reporter = Reporter::start(cluster.client.clone());
    let success = |n: usize| {
        let task = &leased[n];
        TaskResult::succeeded(task.lease_id.clone(), "w01", task.payload.clone())
    };
    let stale_lease = LeaseId("0000000000000000".into());

    let answers = futures_util::future::join_all([
        reporter.report(leased[0].task_id, success(0)),
        reporter.report(leased[1].task_id, success(1)),
        reporter.report(
            leased[2].task_id,
            TaskResult::succeeded(stale_lease, "w01", json!(1)),
        ),
    ])
    .await;

    assert!(answers[0].is_ok() && answers[1].is_ok(), "{answers:?}");
    match &answers[2] {
        Err(ClientError::Refused(problem)) => assert_eq!(problem.kind(), "lease-superseded"),
        other => panic!("the stale result was not refused: {other:?}"),
    }
    let states = [
        TaskState::Succeeded,
        TaskState::Succeeded,
        TaskState::Leased,
    ];
    for (task, state) in leased.iter().zip(states) {
        assert_eq!(cluster.task(task.task_id).await.state, state);
    }
}
