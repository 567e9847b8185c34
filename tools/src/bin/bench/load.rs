//! Load loops shared by the benchmarks: filling a queue, and draining it as pulling workers do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{LeaseRequest, ReportFor, SubmitTask, TaskResult};
use leasehold_client::MasterClient;
use serde_json::{Value, json};

use crate::Report;

/// The queue every measurement fills and drains.
pub(crate) const QUEUE: &str = "bench";

/// Queues `tasks` tasks of `payload` on `queue`, `chunk` per batch request, over `loops`
/// connections.
pub(crate) async fn fill(
    client: &MasterClient,
    queue: &str,
    tasks: u64,
    chunk: u64,
    loops: u64,
    payload: &Value,
) {
    let template = task(queue, payload.clone());
    fill_from(client, tasks, chunk, loops, move |_| template.clone()).await;
}

/// Queues `tasks` no-op tasks on `queue`, the n-th with concurrency key `key-{n % keys}`, as
/// [`fill`] queues them for a drain.
pub(crate) async fn fill_keyed(client: &MasterClient, queue: &str, tasks: u64, keys: u64) {
    let template = no_op(queue);
    let keyed = move |n: u64| SubmitTask {
        concurrency_key: Some(format!("key-{}", n % keys)),
        ..template.clone()
    };
    fill_from(client, tasks, 5_000, 4, keyed).await;
}

/// Queues `make(0)` to `make(tasks - 1)`, `chunk` per batch request, over `loops` connections.
async fn fill_from(
    client: &MasterClient,
    tasks: u64,
    chunk: u64,
    loops: u64,
    make: impl Fn(u64) -> SubmitTask + Send + Sync + 'static,
) {
    let (left, make) = (Arc::new(AtomicU64::new(tasks)), Arc::new(make));
    let handles: Vec<_> = (0..loops)
        .map(|_| {
            let (client, left, make) = (client.clone(), left.clone(), make.clone());
            tokio::spawn(async move {
                loop {
                    let taken = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n > 0).then(|| n - n.min(chunk))
                    });
                    let Ok(before) = taken else { return };
                    let first = tasks - before;
                    let batch = (first..first + before.min(chunk)).map(&*make).collect();
                    client.submit_batch(batch).await.expect("batch submitted");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("fill loop");
    }
}

/// A no-op task: its payload is `null`.
pub(crate) fn no_op(queue: &str) -> SubmitTask {
    task(queue, Value::Null)
}

fn task(queue: &str, payload: Value) -> SubmitTask {
    SubmitTask {
        queue: Some(queue.to_owned()),
        ..SubmitTask::new(payload)
    }
}

/// Drains `queue` with `loops` lease loops of `batch` tasks, until `stop_after` results are
/// accepted (or the queue is empty), reporting results as `report` says. Returns results per
/// second from the first lease to the last accepted result.
pub(crate) async fn drain(
    client: &MasterClient,
    queue: &str,
    loops: u64,
    batch: u32,
    report: Report,
    stop_after: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..loops)
        .map(|n| {
            let lease = LeaseRequest {
                queues: Some(vec![queue.to_owned()]),
                max_tasks: Some(batch),
                ..LeaseRequest::new(format!("bench-{n}"))
            };
            let (client, done) = (client.clone(), done.clone());
            tokio::spawn(lease_loop(client, lease, report, done, stop_after))
        })
        .collect();
    for handle in handles {
        handle.await.expect("lease loop");
    }
    done.load(Ordering::SeqCst) as f64 / started.elapsed().as_secs_f64()
}

async fn lease_loop(
    client: MasterClient,
    mut lease: LeaseRequest,
    report: Report,
    done: Arc<AtomicU64>,
    stop_after: u64,
) {
    loop {
        let carried = lease.results.len() as u64;
        let leased = client.lease(&lease).await.expect("lease");
        assert!(
            leased.results.iter().all(|ack| ack.status == 200),
            "a result refused"
        );
        done.fetch_add(carried, Ordering::Relaxed);
        let results: Vec<ReportFor> = leased
            .tasks
            .into_iter()
            .map(|task| ReportFor {
                task_id: task.task_id,
                report: TaskResult::succeeded(task.lease_id, &lease.worker_id, json!(null)),
            })
            .collect();
        let count = results.len() as u64;
        let last = results.is_empty() || done.load(Ordering::Relaxed) + count >= stop_after;
        match report {
            Report::WithLease if !last => {
                lease.results = results;
                continue;
            }
            Report::Single => {
                for item in results {
                    let accepted = client.result(item.task_id, &item.report).await;
                    accepted.expect("result accepted");
                }
            }
            Report::WithLease | Report::Batch if !results.is_empty() => {
                let reply = client.results(results).await.expect("results sent");
                assert!(
                    reply.results.iter().all(|ack| ack.status == 200),
                    "a result refused"
                );
            }
            Report::WithLease | Report::Batch => {}
        }
        lease.results.clear();
        done.fetch_add(count, Ordering::Relaxed);
        if last {
            return;
        }
    }
}

/// Waits until `check` is true, polling every 20 ms, up to `limit`.
pub(crate) async fn until(limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out");
}
