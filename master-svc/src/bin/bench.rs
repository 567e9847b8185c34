//! Drain benchmark: starts a real `master-svc` (the binary next to this one) on a temporary
//! database, queues tasks in batches, then drains them with concurrent lease loops over HTTP
//! and reports tasks per second from the first lease to the last accepted result.
//!
//! `cargo run --release -p master-svc --bin bench -- --tasks 100000 --loops 64 --batch 32`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{LeaseRequest, LeaseResponse, SubmitBatch, SubmitTask, TaskResult};
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// Tasks to queue and drain.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Concurrent lease loops.
    #[arg(long, default_value_t = 64)]
    loops: u64,
    /// Tasks asked for per lease request.
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// `full` or `normal`.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
}

struct Master(Child);

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let rate = drain_once(&args).await;
        println!("run {run}: {rate:.0} tasks/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "drain | tasks {} | loops {} | batch {} | synchronous {} | median {:.0} tasks/s",
        args.tasks,
        args.loops,
        args.batch,
        args.sqlite_synchronous,
        rates[rates.len() / 2]
    );
}

async fn drain_once(args: &Args) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let binary = std::env::current_exe()
        .expect("own path")
        .with_file_name("master-svc");
    let _master = Master(
        Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--database-url")
            .arg(format!("sqlite:{}", dir.path().join("bench.db").display()))
            .args(["--sqlite-synchronous", &args.sqlite_synchronous])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("master-svc next to bench (build it with --release first)"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &url).await;
    fill(&client, &url, args.tasks).await;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..args.loops)
        .map(|n| {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            tokio::spawn(lease_loop(
                client,
                url,
                format!("bench-{n}"),
                args.batch,
                done,
            ))
        })
        .collect();
    for handle in loops {
        handle.await.expect("lease loop");
    }
    let elapsed = started.elapsed();
    assert_eq!(
        done.load(Ordering::SeqCst),
        args.tasks,
        "every task drained once"
    );
    args.tasks as f64 / elapsed.as_secs_f64()
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("master did not start");
}

async fn fill(client: &reqwest::Client, url: &str, tasks: u64) {
    let mut left = tasks;
    while left > 0 {
        let n = left.min(5_000);
        let tasks = (0..n).map(|_| SubmitTask::new(json!(null))).collect();
        let response = client
            .post(format!("{url}/tasks/batch"))
            .json(&SubmitBatch { tasks })
            .send()
            .await
            .expect("submit");
        assert!(response.status().is_success(), "{}", response.status());
        left -= n;
    }
}

async fn lease_loop(
    client: reqwest::Client,
    url: String,
    worker_id: String,
    batch: u32,
    done: Arc<AtomicU64>,
) {
    let request = LeaseRequest {
        max_tasks: Some(batch),
        ..LeaseRequest::new(&worker_id)
    };
    loop {
        let leased: LeaseResponse = client
            .post(format!("{url}/tasks/lease"))
            .json(&request)
            .send()
            .await
            .expect("lease")
            .json()
            .await
            .expect("lease body");
        if leased.tasks.is_empty() {
            return;
        }
        for task in leased.tasks {
            let body = TaskResult::succeeded(task.lease_id, &worker_id, json!(null));
            let response = client
                .post(format!("{url}/tasks/{}/result", task.task_id))
                .json(&body)
                .send()
                .await
                .expect("result");
            assert_eq!(response.status(), 200);
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}
