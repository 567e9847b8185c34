//! The measurements: each runs `runs` times and prints its median as a table row.

use std::time::{Duration, Instant};

use axum::{Json, Router, routing::post};
use clap::ValueEnum;
use common::{LeaseRequest, RegisterWorker, TaskResult};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::e2e::e2e;
use crate::load::{QUEUE, drain, fill, no_op, until};
use crate::procs::{
    Master, Proc, Store, cpu_secs, free_port, machine_ticks, rss_mib, spawn, wait_ready,
};
use crate::{Bench, Report};

pub(crate) fn all() -> Vec<Bench> {
    vec![
        Bench::Drain {
            tasks: 100_000,
            loops: 64,
            batch: 32,
            report: Report::WithLease,
        },
        Bench::Drain {
            tasks: 100_000,
            loops: 64,
            batch: 32,
            report: Report::Batch,
        },
        Bench::Drain {
            tasks: 100_000,
            loops: 64,
            batch: 32,
            report: Report::Single,
        },
        Bench::Drain {
            tasks: 100_000,
            loops: 64,
            batch: 1,
            report: Report::WithLease,
        },
        Bench::Drain {
            tasks: 100_000,
            loops: 64,
            batch: 1,
            report: Report::Single,
        },
        Bench::Submit {
            tasks: 100_000,
            batch: 1,
            loops: 64,
        },
        Bench::Submit {
            tasks: 100_000,
            batch: 1_000,
            loops: 16,
        },
        Bench::Latency {
            samples: 2_000,
            waiters: 64,
        },
        Bench::Idle {
            waiters: 10_000,
            secs: 10,
        },
        Bench::Backlog {
            large: 1_000_000,
            small: 10_000,
        },
        Bench::Ceiling {
            requests: 200_000,
            loops: 64,
        },
        Bench::Push {
            tasks: 50_000,
            workers: 2,
            capacity: 32,
        },
        Bench::Push {
            tasks: 50_000,
            workers: 2,
            capacity: 128,
        },
        Bench::E2e {
            tasks: 100_000,
            workers: 1,
            concurrency: 64,
        },
        Bench::E2e {
            tasks: 100_000,
            workers: 2,
            concurrency: 32,
        },
        Bench::E2e {
            tasks: 100_000,
            workers: 4,
            concurrency: 16,
        },
    ]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) async fn run(bench: &Bench, runs: usize, store: &Store) {
    let mut samples: Vec<Vec<f64>> = Vec::new();
    for run in 1..=runs {
        let values = once(bench, store).await;
        eprintln!("{bench:?} run {run}: {values:?}");
        samples.push(values);
    }
    let columns = samples[0].len();
    let medians: Vec<f64> = (0..columns)
        .map(|c| median(samples.iter().map(|s| s[c]).collect()))
        .collect();
    let (what, value) = describe(bench, &medians);
    println!("| {what} | {value} | `bench {}` |", command(bench));
}

/// Tasks/s and the master's CPU per task (µs) of a drain of `tasks` queued no-op tasks.
pub(crate) async fn drain_run(
    store: &Store,
    tasks: u64,
    loops: u64,
    batch: u32,
    report: Report,
) -> Vec<f64> {
    let master = Master::start(store, &[]).await;
    fill(&master.client, QUEUE, tasks, 5_000, 4, &Value::Null).await;
    let cpu_before = cpu_secs(master.proc.pid());
    let rate = drain(&master.client, QUEUE, loops, batch, report, tasks).await;
    let cpu = cpu_secs(master.proc.pid()) - cpu_before;
    vec![rate, cpu / tasks as f64 * 1e6]
}

async fn once(bench: &Bench, store: &Store) -> Vec<f64> {
    match *bench {
        Bench::Drain {
            tasks,
            loops,
            batch,
            report,
        } => drain_run(store, tasks, loops, batch, report).await,
        Bench::Submit {
            tasks,
            batch,
            loops,
        } => vec![submit(store, tasks, batch, loops).await],
        Bench::Latency { samples, waiters } => latency(store, samples, waiters).await,
        Bench::Idle { waiters, secs } => idle(store, waiters, secs).await,
        Bench::Backlog { large, small } => {
            let sample = small;
            let mut rates = Vec::new();
            for backlog in [small, large] {
                let master = Master::start(store, &[]).await;
                fill(&master.client, QUEUE, backlog, 5_000, 4, &Value::Null).await;
                rates.push(drain(&master.client, QUEUE, 64, 32, Report::WithLease, sample).await);
            }
            vec![rates[0], rates[1], rates[1] / rates[0] * 100.0]
        }
        Bench::Ceiling { requests, loops } => vec![ceiling(requests, loops).await],
        Bench::Push {
            tasks,
            workers,
            capacity,
        } => push(store, tasks, workers, capacity).await,
        Bench::E2e {
            tasks,
            workers,
            concurrency,
        } => e2e(store, tasks, workers, concurrency).await,
        Bench::All | Bench::Targets { .. } | Bench::Limits { .. } | Bench::EchoServer { .. } => {
            unreachable!("not a single measurement")
        }
    }
}

fn describe(bench: &Bench, m: &[f64]) -> (String, String) {
    match bench {
        Bench::Drain {
            tasks,
            loops,
            batch,
            report,
        } => (
            format!(
                "drain {tasks} no-op tasks, {loops} lease loops, lease batch {batch}, {}",
                match report {
                    Report::WithLease => "results in the next lease request",
                    Report::Batch => "a batch's results in one request",
                    Report::Single => "a result request per task",
                }
            ),
            format!("{:.0} tasks/s (master CPU {:.0} µs per task)", m[0], m[1]),
        ),
        Bench::Submit {
            batch: 1, loops, ..
        } => (
            format!("submit, `POST /tasks`, {loops} clients"),
            format!("{:.0} tasks/s", m[0]),
        ),
        Bench::Submit { batch, loops, .. } => (
            format!("submit, `POST /tasks/batch` of {batch}, {loops} clients"),
            format!("{:.0} tasks/s", m[0]),
        ),
        Bench::Latency { waiters, .. } => (
            format!("submit → lease latency, {waiters} idle long-polls"),
            format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", m[0], m[1], m[2]),
        ),
        Bench::Idle { waiters, secs } => (
            format!("{waiters} idle long-polls held {secs} s"),
            format!("master RSS {:.0} MiB, CPU {:.1} %", m[0], m[1]),
        ),
        Bench::Backlog { large, small } => (
            format!("drain rate at {large} queued vs at {small} (64 loops, batch 32)"),
            format!("{:.0} vs {:.0} tasks/s ({:.0} %)", m[1], m[0], m[2]),
        ),
        Bench::Ceiling { loops, .. } => (
            format!("ceiling: same client, trivial JSON echo, {loops} loops"),
            format!("{:.0} requests/s", m[0]),
        ),
        Bench::Push {
            workers, capacity, ..
        } => (
            format!("push drain, {workers} workers × {capacity} in flight"),
            format!(
                "{:.0} tasks/s (CPU: master {:.2} cores, workers {:.2}, machine {:.0} % busy)",
                m[0], m[1], m[2], m[3]
            ),
        ),
        Bench::E2e {
            tasks,
            workers,
            concurrency,
        } => (
            format!(
                "end to end, {tasks} tasks, {workers} `worker-svc` × {concurrency} (uppercase)"
            ),
            format!(
                "{:.0} tasks/s (CPU per task: master {:.0} µs, workers {:.0} µs; machine {:.0} % \
                 busy); idle submit → succeeded p50 {:.2} ms, p99 {:.2} ms",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        ),
        Bench::All | Bench::Targets { .. } | Bench::Limits { .. } | Bench::EchoServer { .. } => {
            unreachable!()
        }
    }
}

fn command(bench: &Bench) -> String {
    match bench {
        Bench::Drain {
            tasks,
            loops,
            batch,
            report,
        } => format!(
            "drain --tasks {tasks} --loops {loops} --batch {batch} --report {}",
            report
                .to_possible_value()
                .expect("every report mode has a name")
                .get_name()
        ),
        Bench::Submit {
            tasks,
            batch,
            loops,
        } => format!("submit --tasks {tasks} --batch {batch} --loops {loops}"),
        Bench::Latency { samples, waiters } => {
            format!("latency --samples {samples} --waiters {waiters}")
        }
        Bench::Idle { waiters, secs } => format!("idle --waiters {waiters} --secs {secs}"),
        Bench::Backlog { large, small } => format!("backlog --large {large} --small {small}"),
        Bench::Ceiling { requests, loops } => {
            format!("ceiling --requests {requests} --loops {loops}")
        }
        Bench::Push {
            tasks,
            workers,
            capacity,
        } => format!("push --tasks {tasks} --workers {workers} --capacity {capacity}"),
        Bench::E2e {
            tasks,
            workers,
            concurrency,
        } => format!("e2e --tasks {tasks} --workers {workers} --concurrency {concurrency}"),
        Bench::All | Bench::Targets { .. } | Bench::Limits { .. } | Bench::EchoServer { .. } => {
            unreachable!()
        }
    }
}

async fn submit(store: &Store, tasks: u64, batch: u64, loops: u64) -> f64 {
    let master = Master::start(store, &[]).await;
    let started = Instant::now();
    if batch <= 1 {
        let per_loop = tasks / loops;
        let handles: Vec<_> = (0..loops)
            .map(|_| {
                let client = master.client.clone();
                tokio::spawn(async move {
                    for _ in 0..per_loop {
                        client.submit(&no_op(QUEUE)).await.expect("submitted");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("submit loop");
        }
        return (per_loop * loops) as f64 / started.elapsed().as_secs_f64();
    }
    fill(&master.client, QUEUE, tasks, batch, loops, &Value::Null).await;
    tasks as f64 / started.elapsed().as_secs_f64()
}

/// Milliseconds from sending a submission to an idle long-polling worker holding its lease.
pub(crate) async fn latency(store: &Store, samples: usize, waiters: usize) -> Vec<f64> {
    let master = Master::start(store, &[]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for n in 0..waiters {
        let (client, tx) = (master.client.clone(), tx.clone());
        tokio::spawn(async move {
            let request = LeaseRequest {
                queues: Some(vec![QUEUE.to_owned()]),
                wait_secs: Some(30),
                ..LeaseRequest::new(format!("waiter-{n}"))
            };
            while let Ok(leased) = client.lease(&request).await {
                for task in leased.tasks {
                    let _ = tx.send(Instant::now());
                    let done =
                        TaskResult::succeeded(task.lease_id, format!("waiter-{n}"), json!(null));
                    let _ = client.result(task.task_id, &done).await;
                }
            }
        });
    }
    wait_for_waiters(&master, waiters).await;
    let mut millis = Vec::with_capacity(samples);
    for _ in 0..samples {
        let sent = Instant::now();
        master
            .client
            .submit(&no_op(QUEUE))
            .await
            .expect("submitted");
        let leased = rx.recv().await.expect("a waiter got it");
        millis.push(leased.duration_since(sent).as_secs_f64() * 1000.0);
        // Let the waiter report and go back to waiting.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| millis[((millis.len() - 1) as f64 * q) as usize];
    vec![at(0.5), at(0.99), at(1.0)]
}

async fn wait_for_waiters(master: &Master, waiters: usize) {
    let http = leasehold_client::http_client();
    let metrics = format!("{}/metrics", master.url);
    until(Duration::from_secs(120), async || {
        let text = http
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("leasehold_long_polls_waiting "))
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|n| n as usize >= waiters)
    })
    .await;
}

/// The master's RSS (MiB) and CPU (% of one core) while `waiters` long-polls wait.
async fn idle(store: &Store, waiters: usize, secs: u64) -> Vec<f64> {
    let master = Master::start(store, &[]).await;
    let stop = tokio_util::sync::CancellationToken::new();
    for n in 0..waiters {
        let (client, stop) = (master.client.clone(), stop.clone());
        tokio::spawn(async move {
            let request = LeaseRequest {
                queues: Some(vec![QUEUE.to_owned()]),
                wait_secs: Some(60),
                ..LeaseRequest::new(format!("idle-{n}"))
            };
            while !stop.is_cancelled() {
                if client.lease(&request).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    wait_for_waiters(&master, waiters).await;
    let pid = master.proc.pid();
    let cpu_before = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = (cpu_secs(pid) - cpu_before) / secs as f64 * 100.0;
    let rss = rss_mib(pid);
    stop.cancel();
    vec![rss, cpu]
}

/// Requests per second of the same client against a trivial JSON echo in its own process.
async fn ceiling(requests: u64, loops: u64) -> f64 {
    let port = free_port();
    let _server: Proc = spawn(
        "bench",
        &["echo-server".into(), "--port".into(), port.to_string()],
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url).await;
    let client = leasehold_client::http_client();
    let body = json!({ "lease_id": "0123456789abcdef", "worker_id": "bench-1", "outcome": "succeeded", "result": null });
    let per_loop = requests / loops;
    let started = Instant::now();
    let handles: Vec<_> = (0..loops)
        .map(|_| {
            let (client, url, body) = (client.clone(), format!("{url}/echo"), body.clone());
            tokio::spawn(async move {
                for _ in 0..per_loop {
                    let reply: Value = client
                        .post(&url)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert_eq!(reply, body);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("echo loop");
    }
    (per_loop * loops) as f64 / started.elapsed().as_secs_f64()
}

pub(crate) async fn echo_server(port: u16) {
    let app = Router::new()
        .route(
            "/echo",
            post(|Json(body): Json<Value>| async move { Json(body) }),
        )
        .route("/readyz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}

/// Tasks per second pushed to `workers` workers and completed, from their registration; and
/// where the CPU went meanwhile: cores used by the master and by the workers, and how busy the
/// whole machine was (%).
async fn push(store: &Store, tasks: u64, workers: u32, capacity: u32) -> Vec<f64> {
    let master = Master::start(store, &[]).await;
    fill(&master.client, QUEUE, tasks, 5_000, 4, &Value::Null).await;
    let mut procs = Vec::new();
    let mut registrations = Vec::new();
    for n in 0..workers {
        let port = free_port();
        let args: Vec<String> = [
            "--master",
            &master.url,
            "--no-pull",
            "--handler",
            "process",
            "--id",
            &format!("push-{n}"),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--concurrency",
            &capacity.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        procs.push(spawn("worker-svc", &args));
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url).await;
        registrations.push(RegisterWorker {
            id: format!("push-{n}"),
            url,
            capacity: Some(capacity),
            queues: Some(vec![QUEUE.to_owned()]),
        });
    }
    let register = async || {
        for registration in &registrations {
            master
                .client
                .register_worker(registration)
                .await
                .expect("registered");
        }
        Instant::now()
    };
    let workers_cpu = || procs.iter().map(|p| cpu_secs(p.pid())).sum::<f64>();
    let (master_before, workers_before) = (cpu_secs(master.proc.pid()), workers_cpu());
    let machine = machine_ticks();
    let started = Instant::now();
    // Renewed well within the master's registration TTL, or a long run would lose its workers.
    let mut registered = register().await;
    until(Duration::from_secs(600), async || {
        if registered.elapsed() > Duration::from_secs(10) {
            registered = register().await;
        }
        let queue = master.client.queue(QUEUE).await.expect("queue");
        queue.counts.succeeded >= tasks
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let (busy, total) = machine_ticks();
    vec![
        tasks as f64 / secs,
        (cpu_secs(master.proc.pid()) - master_before) / secs,
        (workers_cpu() - workers_before) / secs,
        (busy - machine.0) / (total - machine.1) * 100.0,
    ]
}
