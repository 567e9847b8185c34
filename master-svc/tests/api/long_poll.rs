//! Long-polling leases: they wait for work, wake as soon as it exists, and learn when a sealed
//! queue is drained. These are the only tests that measure real time; every wait is short.

use std::sync::Arc;
use std::time::Duration;

use common::{LeaseRequest, LeaseResponse, SubmitTask};
use futures_util::future::select_all;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::helpers::{TestApp, spawn_app};

/// How quickly a woken long-poll must answer; far below its `wait_secs`.
const PROMPT: Duration = Duration::from_secs(1);

/// A master the test's long-polls share. Its reaper stays idle unless the test calls `advance`
/// (as every test master's does), so a missing wake-up is not hidden by a regular pass.
async fn spawn_shared_app() -> Arc<TestApp> {
    Arc::new(spawn_app().await)
}

/// Starts a lease request in the background; it resolves to the reply and when it came.
fn long_poll(
    app: &Arc<TestApp>,
    queue: &str,
    wait_secs: u64,
) -> JoinHandle<(LeaseResponse, Instant)> {
    let app = app.clone();
    let request = LeaseRequest {
        queues: Some(vec![queue.to_owned()]),
        wait_secs: Some(wait_secs),
        ..LeaseRequest::new("w01")
    };
    tokio::spawn(async move {
        let reply = app.lease_with(request).await;
        (reply, Instant::now())
    })
}

/// Awaits `poll` and asserts it answered within [`PROMPT`] of `since`.
async fn answered_promptly(
    poll: JoinHandle<(LeaseResponse, Instant)>,
    since: Instant,
) -> LeaseResponse {
    let (reply, at) = poll.await.expect("long-poll task");
    assert!(
        at - since < PROMPT,
        "answered {:?} after the event",
        at - since
    );
    reply
}

#[tokio::test]
async fn a_waiting_lease_returns_as_soon_as_a_task_is_submitted() {
    let app = spawn_shared_app().await;
    let poll = long_poll(&app, "default", 5);
    app.wait_for_long_polls(1).await;

    let submitted_at = Instant::now();
    let task = app.submit_payload(json!("task data 1")).await;

    let reply = answered_promptly(poll, submitted_at).await;
    assert_eq!(reply.tasks.len(), 1);
    assert_eq!(reply.tasks[0].task_id, task.id);
    assert_eq!(app.engine.waiting(), 0);
}

#[tokio::test]
async fn a_waiting_lease_with_nothing_to_lease_returns_empty_after_wait_secs() {
    let app = spawn_shared_app().await;
    let started = Instant::now();

    let (reply, at) = long_poll(&app, "default", 1).await.unwrap();

    let waited = at - started;
    assert!(reply.tasks.is_empty());
    assert!(!reply.no_more_tasks);
    assert!(
        waited >= Duration::from_millis(950),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "returned after {waited:?}");
}

#[tokio::test]
async fn a_lease_with_a_ready_task_does_not_wait() {
    let app = spawn_shared_app().await;
    app.submit_payload(json!(1)).await;
    let started = Instant::now();
    let reply = answered_promptly(long_poll(&app, "default", 30), started).await;
    assert_eq!(reply.tasks.len(), 1);
}

#[tokio::test]
async fn one_submitted_task_wakes_one_waiter_and_the_next_wakes_the_other() {
    let app = spawn_shared_app().await;
    let mut polls = [long_poll(&app, "default", 5), long_poll(&app, "default", 5)];
    app.wait_for_long_polls(2).await;

    let submitted_at = Instant::now();
    app.submit_payload(json!(1)).await;
    let (winner, index, _) = select_all(polls.iter_mut()).await;
    let (reply, at) = winner.unwrap();
    let loser = polls.into_iter().nth(1 - index).unwrap();
    assert!(at - submitted_at < PROMPT);
    assert_eq!(reply.tasks.len(), 1);
    assert_eq!(app.engine.waiting(), 1, "the other lease keeps waiting");

    let submitted_at = Instant::now();
    app.submit_payload(json!(2)).await;
    assert_eq!(
        answered_promptly(loser, submitted_at).await.tasks[0].payload,
        json!(2)
    );
}

#[tokio::test]
async fn a_waiting_lease_only_wakes_for_its_own_queues() {
    let app = spawn_shared_app().await;
    let poll = long_poll(&app, "emails", 1);
    app.wait_for_long_polls(1).await;

    app.submit_payload(json!("for default")).await;

    let (reply, _) = poll.await.unwrap();
    assert!(reply.tasks.is_empty());
    assert_eq!(app.queue_info("default").await.counts.queued, 1);
}

#[tokio::test]
async fn a_waiting_lease_gets_a_delayed_task_when_the_clock_reaches_it() {
    let app = spawn_shared_app().await;
    app.submit_task(SubmitTask {
        delay_secs: Some(10),
        ..SubmitTask::new(json!("later"))
    })
    .await;
    let poll = long_poll(&app, "default", 5);
    app.wait_for_long_polls(1).await;

    let ready_at = Instant::now();
    app.advance(Duration::from_secs(10)).await;

    assert_eq!(answered_promptly(poll, ready_at).await.tasks.len(), 1);
}

#[tokio::test]
async fn every_waiting_lease_gets_one_of_the_delayed_tasks_that_became_ready_together() {
    let app = spawn_shared_app().await;
    for i in 0..3 {
        app.submit_task(SubmitTask {
            delay_secs: Some(10),
            ..SubmitTask::new(json!(i))
        })
        .await;
    }
    let polls: Vec<_> = (0..3).map(|_| long_poll(&app, "default", 5)).collect();
    app.wait_for_long_polls(3).await;

    let ready_at = Instant::now();
    app.advance(Duration::from_secs(10)).await;

    for poll in polls {
        assert_eq!(answered_promptly(poll, ready_at).await.tasks.len(), 1);
    }
}

#[tokio::test]
async fn a_waiting_lease_gets_a_task_whose_lease_expired() {
    let app = spawn_shared_app().await;
    let task = app.submit_payload(json!(1)).await;
    app.lease_one("w00").await;
    let poll = long_poll(&app, "default", 5);
    app.wait_for_long_polls(1).await;

    let expired_at = Instant::now();
    app.advance(Duration::from_secs(31)).await;

    let reply = answered_promptly(poll, expired_at).await;
    assert_eq!(
        (reply.tasks[0].task_id, reply.tasks[0].attempt),
        (task.id, 2)
    );
}

#[tokio::test]
async fn a_waiting_lease_on_a_drained_sealed_queue_returns_at_once() {
    let app = spawn_shared_app().await;
    app.seal("batch").await;
    let started = Instant::now();
    let reply = answered_promptly(long_poll(&app, "batch", 30), started).await;
    assert!(reply.no_more_tasks);
}

#[tokio::test]
async fn sealing_an_empty_queue_wakes_its_waiters_with_no_more_tasks() {
    let app = spawn_shared_app().await;
    let polls = [long_poll(&app, "batch", 5), long_poll(&app, "batch", 5)];
    app.wait_for_long_polls(2).await;

    let sealed_at = Instant::now();
    assert_eq!(app.seal("batch").await.status(), 200);

    for poll in polls {
        let reply = answered_promptly(poll, sealed_at).await;
        assert!(reply.tasks.is_empty());
        assert!(reply.no_more_tasks);
    }
}

#[tokio::test]
async fn the_last_result_in_a_sealed_queue_wakes_its_waiters_with_no_more_tasks() {
    let app = spawn_shared_app().await;
    app.submit_task(SubmitTask {
        queue: Some("batch".into()),
        ..SubmitTask::new(json!(1))
    })
    .await;
    let request = LeaseRequest {
        queues: Some(vec!["batch".into()]),
        ..LeaseRequest::new("w00")
    };
    let leased = app.lease_with(request).await.tasks.remove(0);
    app.seal("batch").await;
    let poll = long_poll(&app, "batch", 5);
    app.wait_for_long_polls(1).await;

    let finished_at = Instant::now();
    app.succeed(&leased, "w00", json!("done")).await;

    assert!(answered_promptly(poll, finished_at).await.no_more_tasks);
}

/// Aborted around the moment its lease is granted, a long-poll's caller either got its task or
/// the task is back in the queue at once, its attempt not counted: never leased to nobody until
/// the lease expires. (Without the detached lease, an abort while the lease is being committed
/// lost it; the rounds abort at varied instants to land there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_whose_caller_vanishes_as_it_is_answered_hands_its_task_back() {
    let app = spawn_app().await;
    let mut handed_back = 0;
    for round in 0..30 {
        let engine = app.engine.clone();
        let caller = tokio::spawn(async move {
            let request = LeaseRequest {
                wait_secs: Some(5),
                ..LeaseRequest::new("vanishing")
            };
            engine.lease_detached(request).await
        });
        app.wait_for_long_polls(1).await;
        let task = app.submit_payload(json!(round)).await;
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..500))).await;
        caller.abort();
        match caller.await {
            Ok(answered) => {
                let leased = answered.expect("a lease").tasks;
                assert_eq!(leased[0].task_id, task.id, "round {round}");
                continue; // answered before the abort: the task is the caller's
            }
            Err(aborted) => assert!(aborted.is_cancelled()),
        }
        let deadline = Instant::now() + PROMPT;
        loop {
            let now = app.task(task.id.0).await;
            if now.state == common::TaskState::Queued {
                assert_eq!(now.attempts, 0, "round {round}: the attempt was counted");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {now:?} left leased"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handed_back += 1;
        // Out of the way of the next round's long-poll.
        app.engine.cancel(task.id).await.unwrap();
    }
    eprintln!("{handed_back} of 30 callers vanished before their answer");
}
