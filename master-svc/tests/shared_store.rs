//! Several masters on one PostgreSQL database behave as one master: a task is leased once
//! whichever master hands it out, and a long-poll on one master wakes for a change on another.
//! Each test starts its masters in-process, on a database of a throwaway PostgreSQL server.

use std::collections::HashSet;
use std::time::Duration;

use common::{LeaseRequest, SubmitTask, TaskResult, TaskState};
use leasehold_client::MasterClient;
use leasehold_testkit::postgres;
use master_svc::engine::Engine;
use master_svc::{Application, Config};
use serde_json::json;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use tokio::time::Instant;

/// How quickly a woken long-poll must answer; far below its `wait_secs`.
const PROMPT: Duration = Duration::from_secs(2);

struct Master {
    client: MasterClient,
    engine: Arc<Engine>,
}

/// Starts a master on `database_url`. Its reaper never runs on its own, so only an announcement
/// from the other master can wake its long-polls.
async fn start_master(database_url: &str) -> Master {
    let mut config = Config::for_sqlite("127.0.0.1:0".parse().unwrap(), "unused".as_ref());
    config.database_url = database_url.to_owned();
    config.database_max_connections = 8;
    config.tick_ms = 3_600_000;
    let app = Application::build(config).await.expect("master starts");
    let master = Master {
        client: MasterClient::new(&format!("http://127.0.0.1:{}", app.port()), None),
        engine: app.engine(),
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    master
}

async fn two_masters() -> (Master, Master) {
    let url = postgres::fresh_database_url();
    (start_master(&url).await, start_master(&url).await)
}

async fn wait_for_long_polls(master: &Master, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while master.engine.waiting() < n {
        assert!(Instant::now() < deadline, "{n} long-polls never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn long_poll(queue: &str) -> LeaseRequest {
    LeaseRequest {
        queues: Some(vec![queue.to_owned()]),
        wait_secs: Some(20),
        ..LeaseRequest::new("w01")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_master_wakes_for_a_task_submitted_on_another() {
    let (a, b) = two_masters().await;
    a_long_poll_wakes_for_a_submission(&b, &a).await;
}

/// A long-poll on `polled` is answered at once with a task submitted on `submitted_to`.
async fn a_long_poll_wakes_for_a_submission(polled: &Master, submitted_to: &Master) {
    let client = polled.client.clone();
    let poll = tokio::spawn(async move { client.lease(&long_poll("default")).await });
    wait_for_long_polls(polled, 1).await;

    let submitted_at = Instant::now();
    let task = submitted_to
        .client
        .submit(&SubmitTask::new(json!("hello world")))
        .await
        .unwrap();
    let leased = poll.await.unwrap().expect("lease answered");

    assert!(
        submitted_at.elapsed() < PROMPT,
        "woken after {:?}",
        submitted_at.elapsed()
    );
    assert_eq!(leased.tasks.len(), 1);
    assert_eq!(leased.tasks[0].task_id, task.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_a_queue_on_one_master_tells_long_polls_on_another_it_is_drained() {
    let (a, b) = two_masters().await;
    let client = b.client.clone();
    let poll = tokio::spawn(async move { client.lease(&long_poll("nightly")).await });
    wait_for_long_polls(&b, 1).await;

    let sealed_at = Instant::now();
    a.client.seal("nightly").await.unwrap();
    let leased = poll.await.unwrap().expect("lease answered");

    assert!(
        sealed_at.elapsed() < PROMPT,
        "woken after {:?}",
        sealed_at.elapsed()
    );
    assert!(leased.tasks.is_empty());
    assert!(leased.no_more_tasks);
}

/// Starts a master on `database_url` and writes its first heartbeat, after which it knows it is
/// alone: it announces nothing.
async fn lone_master(database_url: &str) -> Master {
    let master = start_master(database_url).await;
    master.engine.beat().await.expect("heartbeat written");
    assert!(!master.engine.announcing(), "a lone master announces");
    master
}

/// Waits until `master` knows another one shares its store, well before its next heartbeat.
async fn until_announcing(master: &Master) {
    let deadline = Instant::now() + PROMPT;
    while !master.engine.announcing() {
        assert!(
            Instant::now() < deadline,
            "the master never heard another join"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Submits a task on `master` and completes it there.
async fn submit_and_complete(master: &Master) {
    let task = master
        .client
        .submit(&SubmitTask::new(json!("hello")))
        .await
        .unwrap();
    let leased = master
        .client
        .lease(&LeaseRequest::new("w01"))
        .await
        .unwrap();
    let done = TaskResult::succeeded(leased.tasks[0].lease_id.clone(), "w01", json!("HELLO"));
    master.client.result(task.id, &done).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_alone_announces_nothing_until_another_joins() {
    let url = postgres::fresh_database_url();
    let a = lone_master(&url).await;
    let mut channel = PgListener::connect(&url).await.unwrap();
    channel.listen("leasehold_ready").await.unwrap();

    submit_and_complete(&a).await;
    let heard = tokio::time::timeout(Duration::from_millis(500), channel.recv()).await;
    assert!(heard.is_err(), "a lone master announced: {heard:?}");

    let _b = start_master(&url).await;
    let joined = tokio::time::timeout(PROMPT, channel.recv()).await;
    let joined = joined.expect("a joining master announces it").unwrap();
    assert!(joined.payload().ends_with(" joined"), "{joined:?}");
    until_announcing(&a).await;
    submit_and_complete(&a).await;
    let heard = tokio::time::timeout(PROMPT, channel.recv()).await;
    let heard = heard
        .expect("the master announces once another joined")
        .unwrap();
    assert!(heard.payload().ends_with(" 1 default"), "{heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_a_master_that_joins_wakes_for_a_task_submitted_on_one_that_was_alone() {
    let url = postgres::fresh_database_url();
    let a = lone_master(&url).await;
    let b = start_master(&url).await;
    until_announcing(&a).await;
    a_long_poll_wakes_for_a_submission(&b, &a).await;
}

/// Leases batches from `master` until it has nothing left, completing each task through
/// `reporter`; returns the ids it leased.
async fn drain(master: MasterClient, reporter: MasterClient, worker_id: String) -> Vec<i64> {
    let mut leased_ids = Vec::new();
    loop {
        let request = LeaseRequest {
            max_tasks: Some(16),
            ..LeaseRequest::new(&worker_id)
        };
        let leased = master.lease(&request).await.expect("lease");
        if leased.tasks.is_empty() {
            return leased_ids;
        }
        for task in leased.tasks {
            let result = TaskResult::succeeded(task.lease_id, &worker_id, json!(task.task_id.0));
            reporter
                .result(task.task_id, &result)
                .await
                .expect("result accepted");
            leased_ids.push(task.task_id.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasers_on_two_masters_never_get_the_same_task() {
    let (a, b) = two_masters().await;
    let total = 2_000;
    for chunk in 0..total / 500 {
        let tasks = (0..500)
            .map(|i| SubmitTask::new(json!(chunk * 500 + i)))
            .collect();
        a.client.submit_batch(tasks).await.expect("batch");
    }

    // Eight leasers, four on each master, each reporting through the other master.
    let mut leasers = Vec::new();
    for n in 0..8 {
        let (lease_on, report_to) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        leasers.push(tokio::spawn(drain(
            lease_on.client.clone(),
            report_to.client.clone(),
            format!("w{n}"),
        )));
    }
    let mut seen = HashSet::new();
    for leaser in leasers {
        for id in leaser.await.unwrap() {
            assert!(seen.insert(id), "task {id} was leased twice");
        }
    }

    assert_eq!(seen.len(), total);
    let queue = b.client.queue("default").await.unwrap();
    assert_eq!(queue.counts.succeeded, total as u64);
    assert_eq!(queue.counts.queued + queue.counts.leased, 0);
    let sample = a
        .client
        .task(common::TaskId(*seen.iter().next().unwrap()))
        .await
        .unwrap();
    assert_eq!(sample.state, TaskState::Succeeded);
    assert_eq!(sample.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_one_master_is_answered_when_the_result_commits_on_another() {
    let (a, b) = two_masters().await;
    let task = a
        .client
        .submit(&SubmitTask::new(json!("hello")))
        .await
        .unwrap();
    let client = b.client.clone();
    let waiter = tokio::spawn(async move { client.wait_for(task.id, 20).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.engine.finish_waiters() < 1 {
        assert!(Instant::now() < deadline, "the wait never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let leased = a.client.lease(&LeaseRequest::new("w01")).await.unwrap();
    let lease = &leased.tasks[0];
    let finished_at = Instant::now();
    let done = TaskResult::succeeded(lease.lease_id.clone(), "w01", json!("HELLO"));
    a.client.result(task.id, &done).await.unwrap();
    let answered = waiter.await.unwrap().expect("wait answered");

    assert!(
        finished_at.elapsed() < PROMPT,
        "woken after {:?}",
        finished_at.elapsed()
    );
    assert_eq!(answered.state, TaskState::Succeeded);
}
