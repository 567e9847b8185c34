//! End to end with real workers: queued tasks run by `worker-svc` processes as users run them
//! (pulling, the `uppercase` handler), measured from the workers' start to the last success; then
//! the latency of single tasks to the same workers, idle.

use std::time::{Duration, Instant};

use common::{SubmitTask, TaskState};
use leasehold_client::MasterClient;
use serde_json::json;

use crate::load::{QUEUE, fill, until};
use crate::procs::{Master, Proc, Store, cpu_secs, free_port, machine_ticks, spawn, wait_ready};

/// Single tasks timed once the queue is drained.
const LATENCY_SAMPLES: usize = 300;

/// Tasks per second; master and workers CPU per task (µs); how busy the machine was (%); and
/// p50 and p99 of submit → succeeded (ms) with the workers idle.
pub(crate) async fn e2e(store: &Store, tasks: u64, workers: u32, concurrency: u32) -> Vec<f64> {
    let master = Master::start(store, &[]).await;
    fill(&master.client, QUEUE, tasks, 5_000, 4, &json!("task data")).await;
    let master_before = cpu_secs(master.proc.pid());
    let machine = machine_ticks();
    let started = Instant::now();
    let procs = start_workers(&master.url, workers, concurrency).await;
    until(Duration::from_secs(600), async || {
        let queue = master.client.queue(QUEUE).await.expect("queue");
        queue.counts.succeeded >= tasks
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let (busy, total) = machine_ticks();
    let per_task_us = |cpu: f64| cpu / tasks as f64 * 1e6;
    let master_cpu = cpu_secs(master.proc.pid()) - master_before;
    let workers_cpu: f64 = procs.iter().map(|p| cpu_secs(p.pid())).sum();
    let mut row = vec![
        tasks as f64 / secs,
        per_task_us(master_cpu),
        per_task_us(workers_cpu),
        (busy - machine.0) / (total - machine.1) * 100.0,
    ];
    row.extend(latency(&master.client).await);
    row
}

/// `workers` pulling workers of `concurrency` slots each, each with its own port, all ready.
async fn start_workers(master: &str, workers: u32, concurrency: u32) -> Vec<Proc> {
    let mut procs = Vec::new();
    for n in 0..workers {
        let listen = format!("127.0.0.1:{}", free_port());
        let args: Vec<String> = [
            "--master",
            master,
            "--handler",
            "uppercase",
            "--id",
            &format!("e2e-{n}"),
            "--queues",
            QUEUE,
            "--concurrency",
            &concurrency.to_string(),
            "--listen",
            &listen,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        procs.push(spawn("worker-svc", &args));
        wait_ready(&format!("http://{listen}")).await;
    }
    procs
}

/// p50 and p99 (ms) of submit → succeeded for single tasks, one at a time, each waited for with
/// `GET /tasks/{id}?wait_secs=` (read back in a loop, the reads' own load on the master and the
/// database inflated the figure): an upper bound of submit → handler start.
async fn latency(client: &MasterClient) -> [f64; 2] {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let task = SubmitTask {
            queue: Some(QUEUE.to_owned()),
            ..SubmitTask::new(json!("task data"))
        };
        let submitted = Instant::now();
        let id = client.submit(&task).await.expect("submitted").id;
        let done = client.wait_for(id, 10).await.expect("waited for");
        assert_eq!(
            done.state,
            TaskState::Succeeded,
            "task {id} not done in 10 s"
        );
        samples.push(submitted.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.99)]
}
