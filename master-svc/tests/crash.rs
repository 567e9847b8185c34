//! Crash safety: the real `master-svc` binary is killed with SIGKILL in the middle of a load of
//! submissions and results, restarted on the same database, and must still have every task it
//! acknowledged and every result it accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{LeaseRequest, LeaseResponse, SubmitBatch, SubmitTask, Task, TaskResult, TaskState};
use serde_json::{Value, json};

/// Acknowledged submissions (id → payload) and accepted results (id → result).
#[derive(Default)]
struct Acked {
    tasks: HashMap<i64, Value>,
    results: HashMap<i64, Value>,
}

use leasehold_testkit::master::Master;
use leasehold_testkit::postgres;

/// A database for the whole test: a SQLite file, or with `LEASEHOLD_TEST_STORE=postgres` a
/// database on a throwaway PostgreSQL server.
fn database_url(dir: &tempfile::TempDir) -> String {
    if std::env::var("LEASEHOLD_TEST_STORE").is_ok_and(|store| store == "postgres") {
        postgres::fresh_database_url()
    } else {
        format!("sqlite:{}", dir.path().join("leasehold.db").display())
    }
}

/// Submits single tasks and batches until the master stops answering.
async fn submitter(url: String, n: usize, acked: Arc<Mutex<Acked>>) {
    let client = leasehold_client::http_client();
    for i in 0.. {
        let payload = json!({ "submitter": n, "seq": i });
        let sent = if i % 4 == 0 {
            let tasks = (0..8)
                .map(|j| SubmitTask::new(json!({ "submitter": n, "seq": i, "item": j })))
                .collect();
            client
                .post(format!("{url}/tasks/batch"))
                .json(&SubmitBatch { tasks })
                .send()
                .await
        } else {
            client
                .post(format!("{url}/tasks"))
                .json(&SubmitTask::new(payload))
                .send()
                .await
        };
        let Ok(response) = sent else { return };
        if response.status() != 201 {
            return;
        }
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        let tasks: Vec<Task> = match body.get("tasks") {
            Some(tasks) => serde_json::from_value(tasks.clone()).unwrap(),
            None => vec![serde_json::from_value(body).unwrap()],
        };
        let mut acked = acked.lock().unwrap();
        for task in tasks {
            acked.tasks.insert(task.id.0, task.payload);
        }
    }
}

/// Leases and completes tasks until the master stops answering.
async fn worker(url: String, n: usize, acked: Arc<Mutex<Acked>>) {
    let client = leasehold_client::http_client();
    let worker_id = format!("w{n}");
    loop {
        let request = LeaseRequest {
            max_tasks: Some(8),
            ..LeaseRequest::new(&worker_id)
        };
        let Ok(response) = client
            .post(format!("{url}/tasks/lease"))
            .json(&request)
            .send()
            .await
        else {
            return;
        };
        let Ok(leased) = response.json::<LeaseResponse>().await else {
            return;
        };
        for task in leased.tasks {
            let result = json!({ "done_by": worker_id, "task": task.task_id.0 });
            let body = TaskResult::succeeded(task.lease_id, &worker_id, result.clone());
            let url = format!("{url}/tasks/{}/result", task.task_id);
            let Ok(response) = client.post(url).json(&body).send().await else {
                return;
            };
            if response.status() == 200 {
                acked.lock().unwrap().results.insert(task.task_id.0, result);
            }
        }
    }
}

async fn check_nothing_lost(master: &Master, acked: &Acked) {
    let client = leasehold_client::http_client();
    for (id, payload) in &acked.tasks {
        let task: Task = client
            .get(format!("{}/tasks/{id}", master.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_else(|e| panic!("acknowledged task {id} is gone: {e}"));
        assert_eq!(&task.payload, payload, "task {id}");
        if let Some(result) = acked.results.get(id) {
            assert_eq!(task.state, TaskState::Succeeded, "task {id}");
            assert_eq!(task.result.as_ref(), Some(result), "task {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_load_loses_no_acknowledged_task_or_result() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(&dir);
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3 {
        let master = Master::start(&db).await;
        let mut load = Vec::new();
        for n in 0..6 {
            load.push(tokio::spawn(submitter(
                master.url.clone(),
                n,
                acked.clone(),
            )));
        }
        for n in 0..3 {
            load.push(tokio::spawn(worker(master.url.clone(), n, acked.clone())));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        master.kill();
        for task in load {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("load stops once the master is gone")
                .unwrap();
        }
    }
    let master = Master::start(&db).await;
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.tasks.len() > 100,
        "load too light: {}",
        acked.tasks.len()
    );
    assert!(!acked.results.is_empty(), "no result was accepted");
    eprintln!(
        "checking {} acknowledged tasks and {} accepted results after 3 kills",
        acked.tasks.len(),
        acked.results.len()
    );
    check_nothing_lost(&master, &acked).await;
    master.kill();
}
