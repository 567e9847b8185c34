//! Load loops shared by the benchmarks: filling a queue, and draining it as pulling workers do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{LeaseRequest, ReportFor, SubmitTask, TaskResult};
use serde_json::json;
use worker_svc::MasterClient;

/// Queues `tasks` no-op tasks on `queue`, `chunk` per batch request, over `loops` connections.
pub async fn fill(client: &MasterClient, queue: &str, tasks: u64, chunk: u64, loops: u64) {
    let left = Arc::new(AtomicU64::new(tasks));
    let handles: Vec<_> = (0..loops)
        .map(|_| {
            let (client, left, queue) = (client.clone(), left.clone(), queue.to_owned());
            tokio::spawn(async move {
                loop {
                    let taken = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n > 0).then(|| n - n.min(chunk))
                    });
                    let Ok(before) = taken else { return };
                    let n = before.min(chunk);
                    let batch = (0..n).map(|_| no_op(&queue)).collect();
                    client.submit_batch(batch).await.expect("batch submitted");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("fill loop");
    }
}

pub fn no_op(queue: &str) -> SubmitTask {
    SubmitTask {
        queue: Some(queue.to_owned()),
        ..SubmitTask::new(json!(null))
    }
}

/// Drains `queue` with `loops` lease loops of `batch` tasks, until `stop_after` results are
/// accepted (or the queue is empty). A loop reports a leased batch's results in one
/// `POST /tasks/results`, or with `single_results` one `POST /tasks/{id}/result` each. Returns
/// results per second from the first lease to the last accepted result.
pub async fn drain(
    client: &MasterClient,
    queue: &str,
    loops: u64,
    batch: u32,
    single_results: bool,
    stop_after: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..loops)
        .map(|n| {
            let (client, done, queue) = (client.clone(), done.clone(), queue.to_owned());
            tokio::spawn(lease_loop(
                client,
                queue,
                format!("bench-{n}"),
                batch,
                single_results,
                done,
                stop_after,
            ))
        })
        .collect();
    for handle in handles {
        handle.await.expect("lease loop");
    }
    done.load(Ordering::SeqCst) as f64 / started.elapsed().as_secs_f64()
}

async fn lease_loop(
    client: MasterClient,
    queue: String,
    worker_id: String,
    batch: u32,
    single_results: bool,
    done: Arc<AtomicU64>,
    stop_after: u64,
) {
    let request = LeaseRequest {
        queues: Some(vec![queue]),
        max_tasks: Some(batch),
        ..LeaseRequest::new(&worker_id)
    };
    while done.load(Ordering::Relaxed) < stop_after {
        let leased = client.lease(&request).await.expect("lease");
        if leased.tasks.is_empty() {
            return;
        }
        let reports: Vec<ReportFor> = leased
            .tasks
            .into_iter()
            .map(|task| ReportFor {
                task_id: task.task_id,
                report: TaskResult::succeeded(task.lease_id, &worker_id, json!(null)),
            })
            .collect();
        let count = reports.len() as u64;
        if single_results {
            for item in reports {
                let accepted = client.result(item.task_id, &item.report).await;
                accepted.expect("result accepted");
            }
        } else {
            let reply = client.results(reports).await.expect("results sent");
            assert!(
                reply.results.iter().all(|ack| ack.status == 200),
                "a result refused"
            );
        }
        done.fetch_add(count, Ordering::Relaxed);
    }
}

/// Waits until `check` is true, polling every 20 ms, up to `limit`.
pub async fn until(limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out");
}
