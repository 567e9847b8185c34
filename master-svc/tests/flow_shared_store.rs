//! Flow control holds across masters sharing one PostgreSQL database: an in-flight cap, a rate
//! limit and a key limit are each one limit for the whole fleet, not one per master, and a slot
//! freed on one master wakes a long-poll waiting on another. Each test starts two masters
//! in-process on a fresh database of a throwaway PostgreSQL server, and drives them over HTTP
//! with leasers that stop by themselves at a deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{LeaseRequest, LeasedTask, SubmitTask, TaskResult};
use leasehold_client::MasterClient;
use leasehold_testkit::postgres;
use master_svc::engine::Engine;
use master_svc::{Application, Config};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How quickly a woken long-poll must answer; far below its `wait_secs`.
const PROMPT: Duration = Duration::from_secs(2);
/// How long a leaser holds a task before it reports, so that leases overlap.
const HOLD: Duration = Duration::from_millis(5);

struct Master {
    client: MasterClient,
    engine: Arc<Engine>,
    address: String,
}

/// Starts a master on `database_url`. Its reaper never runs on its own, so only an announcement
/// from the other master can wake its long-polls.
async fn start_master(database_url: &str) -> Master {
    let mut config = Config::for_sqlite("127.0.0.1:0".parse().unwrap(), "unused".as_ref());
    config.database_url = database_url.to_owned();
    config.database_max_connections = 16;
    config.tick_ms = 3_600_000;
    let app = Application::build(config).await.expect("master starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let master = Master {
        client: MasterClient::new(&address, None),
        engine: app.engine(),
        address,
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    master
}

async fn two_masters() -> (Master, Master) {
    let url = postgres::fresh_database_url();
    (start_master(&url).await, start_master(&url).await)
}

/// `PATCH /queues/{queue}` with `patch`, a merge patch of its settings.
async fn patch_queue(master: &Master, queue: &str, patch: Value) {
    let response = leasehold_client::http_client()
        .patch(format!("{}/queues/{queue}", master.address))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/merge-patch+json",
        )
        .body(patch.to_string())
        .send()
        .await
        .expect("PATCH answered");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Submits `n` tasks to `queue`, each with `key` as its concurrency key (and in its payload, so
/// that a leaser can tell it).
async fn submit(master: &Master, queue: &str, n: usize, key: Option<&str>) {
    let tasks: Vec<SubmitTask> = (0..n)
        .map(|_| SubmitTask {
            queue: Some(queue.to_owned()),
            concurrency_key: key.map(str::to_owned),
            ..SubmitTask::new(json!({ "key": key }))
        })
        .collect();
    for batch in tasks.chunks(1_000) {
        master
            .client
            .submit_batch(batch.to_vec())
            .await
            .expect("batch");
    }
}

/// Live leases as the leasers see them, per concurrency key (`""` for none), with the most seen
/// at once. A leaser counts a lease once it has it and stops counting it before it reports, so
/// the count is never above what the database holds leased.
#[derive(Default)]
struct Live(Mutex<HashMap<String, (u32, u32)>>);

impl Live {
    fn enter(&self, key: &str) {
        let mut live = self.0.lock().unwrap();
        let (now, most) = live.entry(key.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }

    fn leave(&self, key: &str) {
        self.0.lock().unwrap().get_mut(key).expect("entered").0 -= 1;
    }

    /// The most leases live at once of each key.
    fn most(&self) -> HashMap<String, u32> {
        let live = self.0.lock().unwrap();
        live.iter()
            .map(|(key, (_, most))| (key.clone(), *most))
            .collect()
    }
}

/// What one leaser does until `deadline`: leases one task at a time from `queue` (waiting up to
/// a second), holds it for [`HOLD`] and reports it. Returns when each lease it got arrived.
async fn leaser(
    master: MasterClient,
    queue: &'static str,
    worker: String,
    deadline: Instant,
    live: Arc<Live>,
) -> Vec<Instant> {
    let mut arrivals = Vec::new();
    while Instant::now() < deadline {
        let request = LeaseRequest {
            queues: Some(vec![queue.to_owned()]),
            max_tasks: Some(1),
            wait_secs: Some(1),
            ..LeaseRequest::new(&worker)
        };
        let leased = master.lease(&request).await.expect("lease");
        for task in leased.tasks {
            arrivals.push(Instant::now());
            hold_and_report(&master, &worker, &task, &live).await;
        }
    }
    arrivals
}

async fn hold_and_report(master: &MasterClient, worker: &str, task: &LeasedTask, live: &Live) {
    let key = task.payload["key"].as_str().unwrap_or_default();
    live.enter(key);
    tokio::time::sleep(HOLD).await;
    live.leave(key);
    let result = TaskResult::succeeded(task.lease_id.clone(), worker, json!(null));
    master
        .result(task.task_id, &result)
        .await
        .expect("result accepted");
}

/// Runs `per_master` leasers on each master until `deadline`; every lease's arrival time.
async fn lease_on_both(
    masters: (&Master, &Master),
    queue: &'static str,
    per_master: usize,
    deadline: Instant,
    live: &Arc<Live>,
) -> Vec<Instant> {
    let mut leasers = Vec::new();
    for n in 0..2 * per_master {
        let master = if n % 2 == 0 { masters.0 } else { masters.1 };
        let worker = format!("w{n:02}");
        let run = leaser(master.client.clone(), queue, worker, deadline, live.clone());
        leasers.push(tokio::spawn(run));
    }
    let mut arrivals = Vec::new();
    for leaser in leasers {
        arrivals.extend(leaser.await.expect("leaser"));
    }
    arrivals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_holds_across_two_masters_under_sixteen_leasers() {
    let (a, b) = two_masters().await;
    patch_queue(&a, "capped", json!({ "max_in_flight": 3 })).await;
    submit(&a, "capped", 20_000, None).await;
    let live = Arc::new(Live::default());
    let deadline = Instant::now() + Duration::from_secs(10);

    // The store's own count, read while the leasers run, on either master.
    let sampler = {
        let clients = [a.client.clone(), b.client.clone()];
        tokio::spawn(async move {
            let mut most = 0;
            for turn in 0.. {
                if Instant::now() >= deadline {
                    break;
                }
                let queue = clients[turn % 2].queue("capped").await.expect("queue");
                most = most.max(queue.in_flight);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        })
    };
    let leased = lease_on_both((&a, &b), "capped", 8, deadline, &live).await;

    assert!(!leased.is_empty(), "nothing was leased");
    let most = live.most().get("").copied().unwrap_or_default();
    assert!(most <= 3, "{most} leases live at once under a cap of 3");
    let sampled = sampler.await.unwrap();
    assert!(sampled <= 3, "the queue showed {sampled} in flight");
    eprintln!("{} leases in 10 s, at most {most} live", leased.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_grants_its_rate_across_two_masters_not_twice_it() {
    let (a, b) = two_masters().await;
    patch_queue(
        &b,
        "metered",
        json!({ "rate_limit": { "per_sec": 50, "burst": 5 } }),
    )
    .await;
    submit(&a, "metered", 1_500, None).await;
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);

    let arrivals = lease_on_both((&a, &b), "metered", 4, deadline, &live).await;

    // A full bucket of 5, then 50 a second for 10 seconds.
    let granted = arrivals.iter().filter(|&&at| at <= deadline).count();
    assert!(
        (450..=550).contains(&granted),
        "{granted} leases in 10 s at 50 a second"
    );
    eprintln!("{granted} leases in 10 s at 50 a second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_limit_holds_across_two_masters() {
    let (a, b) = two_masters().await;
    patch_queue(&a, "keyed", json!({ "key_limit": 1 })).await;
    for key in ["red", "green", "blue"] {
        submit(&b, "keyed", 2_000, Some(key)).await;
    }
    let live = Arc::new(Live::default());
    let deadline = Instant::now() + Duration::from_secs(6);

    let leased = lease_on_both((&a, &b), "keyed", 8, deadline, &live).await;

    assert!(!leased.is_empty(), "nothing was leased");
    let most = live.most();
    for key in ["red", "green", "blue"] {
        let most = most.get(key).copied().unwrap_or_default();
        assert_eq!(most, 1, "at most {most} leases of key {key} live at once");
    }
    eprintln!("{} leases of 3 keys in 6 s", leased.len());
}

async fn wait_for_long_polls(master: &Master, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while master.engine.waiting() < n {
        assert!(Instant::now() < deadline, "{n} long-polls never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_freed_on_one_master_wakes_a_long_poll_on_the_other() {
    let (a, b) = two_masters().await;
    patch_queue(&a, "single", json!({ "max_in_flight": 1 })).await;
    submit(&a, "single", 2, None).await;
    let first = LeaseRequest {
        queues: Some(vec!["single".into()]),
        ..LeaseRequest::new("w01")
    };
    let held = a.client.lease(&first).await.unwrap().tasks.remove(0);
    let client = b.client.clone();
    let poll = tokio::spawn(async move {
        let request = LeaseRequest {
            queues: Some(vec!["single".into()]),
            wait_secs: Some(20),
            ..LeaseRequest::new("w02")
        };
        client.lease(&request).await
    });
    wait_for_long_polls(&b, 1).await;
    // Past its first look, which found the one slot taken: now it waits.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let freed_at = Instant::now();
    let result = TaskResult::succeeded(held.lease_id, "w01", json!(null));
    a.client.result(held.task_id, &result).await.unwrap();
    let leased = poll.await.unwrap().expect("lease answered");

    assert!(
        freed_at.elapsed() < PROMPT,
        "woken after {:?}",
        freed_at.elapsed()
    );
    assert_eq!(leased.tasks.len(), 1);
    assert_ne!(leased.tasks[0].task_id, held.task_id);
}
