//! Flow control: pausing a queue, capping its tasks in flight, limiting its lease rate, and
//! limiting and rotating concurrency keys; set with `PATCH /queues/{name}` and held by every
//! lease, whatever ends the leases they count.

use std::collections::HashMap;
use std::time::Duration;

use common::{LeaseRequest, LeasedTask, SubmitTask, TaskResult};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

const QUEUE: &str = "limited";

async fn submit(app: &TestApp, n: usize, key: Option<&str>) {
    let tasks: Vec<Value> = (0..n)
        .map(|i| {
            json!(SubmitTask {
                queue: Some(QUEUE.into()),
                concurrency_key: key.map(str::to_owned),
                ..SubmitTask::new(json!(i))
            })
        })
        .collect();
    let response = app.submit_batch(&tasks).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

fn from_queue(max_tasks: u32) -> LeaseRequest {
    LeaseRequest {
        queues: Some(vec![QUEUE.into()]),
        max_tasks: Some(max_tasks),
        ..LeaseRequest::new("w01")
    }
}

async fn lease(app: &TestApp, max_tasks: u32) -> Vec<LeasedTask> {
    app.lease_with(from_queue(max_tasks)).await.tasks
}

/// A lease of one task that waits up to 20 s for it.
async fn long_poll(app: &TestApp) -> common::LeaseResponse {
    let request = LeaseRequest {
        wait_secs: Some(20),
        ..from_queue(1)
    };
    app.lease_with(request).await
}

async fn succeed(app: &TestApp, task: &LeasedTask) {
    let response = app.succeed(task, "w01", json!("ok")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_queue_can_be_configured_before_it_has_tasks_and_shows_its_settings() {
    let app = spawn_app().await;
    let set = app
        .configure(
            QUEUE,
            json!({"max_in_flight": 3, "rate_limit": {"per_sec": 50, "burst": 5}, "key_limit": 1}),
        )
        .await;
    assert_eq!(set.settings.max_in_flight, Some(3));
    assert_eq!(set.settings.key_limit, Some(1));
    assert_eq!(set.tokens, Some(5.0), "a new bucket is full");
    let listed = app.queue_list().await;
    let queue = listed.iter().find(|q| q.name == QUEUE).expect("listed");
    assert_eq!(queue.settings, set.settings);
}

#[tokio::test]
async fn a_merge_patch_changes_only_what_it_names_and_null_removes_a_setting() {
    let app = spawn_app().await;
    app.configure(
        QUEUE,
        json!({"max_in_flight": 3, "rate_limit": {"per_sec": 50, "burst": 5}}),
    )
    .await;
    let merged = app
        .configure(QUEUE, json!({"rate_limit": {"per_sec": 50, "burst": 9}}))
        .await;
    let rate = merged.settings.rate_limit.expect("a rate limit");
    assert_eq!((rate.per_sec, rate.burst), (50.0, 9));
    assert_eq!(merged.settings.max_in_flight, Some(3));
    let removed = app
        .configure(QUEUE, json!({"max_in_flight": null, "rate_limit": null}))
        .await;
    assert_eq!(removed.settings, common::QueueSettings::default());
}

#[tokio::test]
async fn invalid_settings_are_refused_with_a_problem_and_change_nothing() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"max_in_flight": 3})).await;
    for patch in [
        json!({"max_in_flight": 0}),
        json!({"key_limit": -1}),
        json!({"max_in_flight": 2.5}),
        json!({"rate_limit": {"burst": 5}}),
        json!({"rate_limit": {"per_sec": 5}}),
        json!({"rate_limit": {"per_sec": 0, "burst": 5}}),
        json!({"rate_limit": {"per_sec": 5, "burst": 0}}),
        json!({"paused": "yes"}),
        json!({"max_inflight": 3}),
        json!([1]),
    ] {
        let response = app.patch_queue(QUEUE, &patch).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    let response = app
        .client
        .patch(app.url(&format!("/queues/{QUEUE}")))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let queue = app.queue_info(QUEUE).await;
    assert_eq!(queue.settings.max_in_flight, Some(3));
}

#[tokio::test]
async fn a_paused_queue_leases_nothing_but_takes_tasks_and_results_of_leases_already_out() {
    let app = spawn_app().await;
    submit(&app, 3, None).await;
    let out = lease(&app, 1).await;
    let paused = app
        .post(&format!("/queues/{QUEUE}/pause"), &json!({}))
        .await;
    assert_eq!(paused.status(), StatusCode::OK);
    submit(&app, 1, None).await;
    assert!(lease(&app, 10).await.is_empty());
    let queue = app.queue_info(QUEUE).await;
    assert!(queue.settings.paused);
    assert_eq!(queue.held_back.paused, 3);
    let beat = app
        .heartbeat(out[0].task_id.0, &json!({"lease_id": out[0].lease_id}))
        .await;
    assert_eq!(beat.status(), StatusCode::OK);
    succeed(&app, &out[0]).await;
    let resumed = app
        .post(&format!("/queues/{QUEUE}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(lease(&app, 10).await.len(), 3);
}

#[tokio::test]
async fn a_long_poll_on_a_paused_queue_wakes_within_100_ms_of_resume() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"paused": true})).await;
    submit(&app, 1, None).await;
    let waiting = long_poll(&app);
    let resume = async {
        app.wait_for_long_polls(1).await;
        let resumed_at = tokio::time::Instant::now();
        app.post(&format!("/queues/{QUEUE}/resume"), &json!({}))
            .await;
        resumed_at
    };
    let (leased, resumed_at) = tokio::join!(waiting, resume);
    assert_eq!(leased.tasks.len(), 1);
    assert!(resumed_at.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn the_in_flight_cap_holds_and_a_result_frees_a_slot() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"max_in_flight": 2})).await;
    submit(&app, 5, None).await;
    let first = lease(&app, 5).await;
    assert_eq!(first.len(), 2);
    assert!(lease(&app, 5).await.is_empty());
    let queue = app.queue_info(QUEUE).await;
    assert_eq!((queue.in_flight, queue.held_back.max_in_flight), (2, 3));
    succeed(&app, &first[0]).await;
    assert_eq!(lease(&app, 5).await.len(), 1);
    let after = app.queue_info(QUEUE).await;
    assert_eq!((after.counts.queued, after.counts.leased), (2, 2));
    assert_eq!(after.counts.succeeded, 1);
}

#[tokio::test]
async fn a_long_poll_waiting_on_a_full_queue_wakes_when_a_result_frees_a_slot() {
    // The reaper never runs on its own here (see spawn_app), so only the result can wake it.
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"max_in_flight": 1})).await;
    submit(&app, 2, None).await;
    let out = lease(&app, 1).await;
    let waiting = long_poll(&app);
    let free = async {
        app.wait_for_long_polls(1).await;
        let at = tokio::time::Instant::now();
        succeed(&app, &out[0]).await;
        at
    };
    let (leased, freed_at) = tokio::join!(waiting, free);
    assert_eq!(leased.tasks.len(), 1);
    assert!(freed_at.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_expired_lease_frees_its_slot_and_its_key_slot() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"max_in_flight": 1, "key_limit": 1}))
        .await;
    submit(&app, 2, Some("k")).await;
    let request = LeaseRequest {
        lease_secs: Some(5),
        ..from_queue(2)
    };
    assert_eq!(app.lease_with(request).await.tasks.len(), 1);
    assert!(lease(&app, 2).await.is_empty());
    app.advance(Duration::from_secs(6)).await;
    assert_eq!(lease(&app, 2).await.len(), 1);
}

#[tokio::test]
async fn the_rate_limit_grants_its_burst_then_a_lease_per_token() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"rate_limit": {"per_sec": 10, "burst": 2}}))
        .await;
    submit(&app, 10, None).await;
    assert_eq!(lease(&app, 10).await.len(), 2);
    assert!(lease(&app, 10).await.is_empty());
    let queue = app.queue_info(QUEUE).await;
    assert_eq!(queue.held_back.rate_limit, 8);
    app.advance(Duration::from_millis(100)).await;
    assert_eq!(lease(&app, 10).await.len(), 1);
    app.advance(Duration::from_secs(60)).await;
    assert_eq!(lease(&app, 10).await.len(), 2, "never more than the burst");
}

#[tokio::test]
async fn a_long_poll_held_by_the_rate_limit_wakes_when_the_next_token_is_due() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"rate_limit": {"per_sec": 5, "burst": 1}}))
        .await;
    submit(&app, 2, None).await;
    assert_eq!(lease(&app, 1).await.len(), 1);
    let waiting = long_poll(&app);
    let tick = async {
        app.wait_for_long_polls(1).await;
        // The master's (manual) clock reaches the token; its timer fires 200 ms later.
        app.clock.advance(Duration::from_millis(200));
    };
    let started = tokio::time::Instant::now();
    let (leased, ()) = tokio::join!(waiting, tick);
    assert_eq!(leased.tasks.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_key_limit_leases_one_task_per_key_and_a_result_lets_the_next_go() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"key_limit": 1})).await;
    for key in ["a", "b", "c"] {
        submit(&app, 3, Some(key)).await;
    }
    let first = lease(&app, 10).await;
    let keys: Vec<String> = keys_of(&app, &first).await;
    assert_eq!(keys, ["a", "b", "c"]);
    assert!(lease(&app, 10).await.is_empty());
    assert_eq!(app.queue_info(QUEUE).await.held_back.key_limit, 6);
    succeed(&app, &first[1]).await;
    let next = lease(&app, 10).await;
    assert_eq!(keys_of(&app, &next).await, ["b"]);
}

async fn keys_of(app: &TestApp, tasks: &[LeasedTask]) -> Vec<String> {
    let mut keys = Vec::new();
    for task in tasks {
        let task = app.task(task.task_id.0).await;
        keys.push(task.concurrency_key.expect("a key"));
    }
    keys
}

#[tokio::test]
async fn a_small_key_is_not_starved_by_a_big_one() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"key_limit": 1})).await;
    submit(&app, 1_000, Some("big")).await;
    submit(&app, 10, Some("small")).await;
    let mut done: HashMap<String, usize> = HashMap::new();
    for lease_number in 1..=30 {
        let leased = lease(&app, 1).await;
        let key = keys_of(&app, &leased).await.remove(0);
        *done.entry(key).or_default() += 1;
        succeed(&app, &leased[0]).await;
        if done.get("small") == Some(&10) {
            assert!(lease_number <= 30);
            return;
        }
    }
    panic!("the small key's tasks did not all run in 30 leases: {done:?}");
}

#[tokio::test]
async fn keys_share_a_batch_lease_in_turn() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"key_limit": 100})).await;
    submit(&app, 100, Some("big")).await;
    submit(&app, 3, Some("small")).await;
    let leased = lease(&app, 4).await;
    let mut keys = keys_of(&app, &leased).await;
    keys.sort();
    assert_eq!(keys, ["big", "big", "small", "small"]);
    // Once the small key runs out, the big one fills the batch.
    let leased = lease(&app, 10).await;
    let keys = keys_of(&app, &leased).await;
    assert_eq!(keys.iter().filter(|key| *key == "small").count(), 1);
    assert_eq!(keys.len(), 10);
}

#[tokio::test]
async fn a_failed_result_may_pause_its_queue_for_a_while() {
    let app = spawn_app().await;
    submit(&app, 3, None).await;
    let out = lease(&app, 1).await;
    let failure = TaskResult {
        pause_queue_secs: Some(30),
        ..TaskResult::failed(out[0].lease_id.clone(), "w01", "429 from the API")
    };
    let response = app.result(out[0].task_id.0, &json!(failure)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let queue = app.queue_info(QUEUE).await;
    assert!(queue.paused_until.is_some());
    assert!(!queue.settings.paused, "a pause for a while, not for good");
    assert!(lease(&app, 10).await.is_empty());
    app.advance(Duration::from_secs(31)).await;
    assert_eq!(
        lease(&app, 10).await.len(),
        3,
        "the two left and the failed one's retry"
    );
    assert_eq!(app.queue_info(QUEUE).await.paused_until, None);
}

#[tokio::test]
async fn a_pause_asked_for_is_cut_to_the_masters_maximum() {
    let app = spawn_app_with(|config| config.max_queue_pause_secs = 5).await;
    submit(&app, 2, None).await;
    let out = lease(&app, 1).await;
    let failure = TaskResult {
        pause_queue_secs: Some(3_600),
        ..TaskResult::failed(out[0].lease_id.clone(), "w01", "slow down")
    };
    app.result(out[0].task_id.0, &json!(failure)).await;
    app.advance(Duration::from_secs(6)).await;
    assert_eq!(lease(&app, 10).await.len(), 2);
}

#[tokio::test]
async fn a_task_keeps_its_concurrency_key_and_a_bad_one_is_refused() {
    let app = spawn_app().await;
    let task = app
        .submit_task(SubmitTask {
            concurrency_key: Some("customer-7".into()),
            ..SubmitTask::new(json!(1))
        })
        .await;
    assert_eq!(task.concurrency_key.as_deref(), Some("customer-7"));
    for key in [String::new(), "k".repeat(201)] {
        let response = app
            .submit(&json!({"payload": 1, "concurrency_key": key}))
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
}

#[tokio::test]
async fn settings_survive_a_restart_of_the_master() {
    let db_dir = tempfile::tempdir().unwrap();
    let mut config = master_svc::Config::for_sqlite(
        "127.0.0.1:0".parse().unwrap(),
        &db_dir.path().join("leasehold.db"),
    );
    if crate::helpers::on_postgres() {
        config.database_url = leasehold_testkit::postgres::fresh_database_url();
    }
    let patch = json!({"paused": true, "max_in_flight": 4, "key_limit": 2,
        "rate_limit": {"per_sec": 0.5, "burst": 3}});
    let before: common::QueueInfo = run_once(config.clone(), |base| async move {
        let response = leasehold_client::http_client()
            .patch(format!("{base}/queues/{QUEUE}"))
            .json(&patch)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    })
    .await;
    let after: common::QueueInfo = run_once(config, |base| async move {
        let response = leasehold_client::http_client()
            .get(format!("{base}/queues/{QUEUE}"))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    })
    .await;
    assert_eq!(after.settings, before.settings);
    assert!(after.settings.paused);
}

/// Starts a master on `config`, runs `work` against it, and stops it.
async fn run_once<F, T>(config: master_svc::Config, work: impl FnOnce(String) -> F) -> T
where
    F: Future<Output = T>,
{
    let app = master_svc::Application::build(config)
        .await
        .expect("master starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let output = work(base).await;
    stop.send(()).unwrap();
    running.await.unwrap().expect("master stops cleanly");
    output
}

#[tokio::test]
async fn a_limit_on_one_queue_never_holds_back_another_in_the_same_lease() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"paused": true})).await;
    submit(&app, 2, None).await;
    let other = SubmitTask {
        queue: Some("free".into()),
        ..SubmitTask::new(json!("other"))
    };
    app.submit_task(other.clone()).await;
    app.submit_task(other).await;
    let request = LeaseRequest {
        queues: Some(vec![QUEUE.into(), "free".into()]),
        max_tasks: Some(10),
        ..LeaseRequest::new("w01")
    };
    let leased = app.lease_with(request).await.tasks;
    assert_eq!(leased.len(), 2);
    assert!(leased.iter().all(|task| task.queue == "free"));
}

#[tokio::test]
async fn tasks_without_a_key_are_not_held_by_the_key_limit() {
    let app = spawn_app().await;
    app.configure(QUEUE, json!({"key_limit": 1})).await;
    submit(&app, 3, Some("k")).await;
    submit(&app, 2, None).await;
    let leased = lease(&app, 10).await;
    assert_eq!(leased.len(), 3, "one of the key's, both without a key");
}

#[tokio::test]
async fn a_push_workers_failed_reply_may_pause_the_queue() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let do_task = |axum::Json(_task): axum::Json<LeasedTask>| async move {
        axum::Json(common::DoTaskReply {
            worker_id: "busy-api".into(),
            outcome: common::Outcome::Failed,
            result: None,
            error: Some("429 from the API".into()),
            retry: true,
            pause_queue_secs: Some(60),
        })
    };
    let worker = axum::Router::new().route("/do-task", axum::routing::post(do_task));
    tokio::spawn(async move { axum::serve(listener, worker).await });
    let app = spawn_app_with(|config| config.push_workers = vec![url]).await;
    app.submit_payload(json!("first")).await;
    for _ in 0..100 {
        if app.queue_info("default").await.paused_until.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the queue was never paused");
}
