//! Bearer tokens: the operator token opens everything, the worker token only the lease
//! endpoints, and probes and metrics stay open.

use common::{Heartbeat, LeaseRequest, LeasedTask, Release, TaskState};
use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

const API_TOKEN: &str = "operator-secret";
const WORKER_TOKEN: &str = "worker-secret";

async fn spawn_secured_app() -> TestApp {
    spawn_app_with(|config| {
        config.api_token = Some(API_TOKEN.into());
        config.worker_token = Some(WORKER_TOKEN.into());
    })
    .await
}

/// Submits and leases one task with the operator token; leaves `token` set on the app.
async fn leased_task(app: &mut TestApp, token: Option<&str>) -> LeasedTask {
    app.token = Some(API_TOKEN.into());
    app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;
    app.token = token.map(str::to_owned);
    leased
}

async fn assert_unauthorized(response: Response) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

/// One request to every non-probe endpoint, in an order that keeps each meaningful.
async fn every_endpoint(app: &TestApp, leased: &LeasedTask) -> Vec<(&'static str, Response)> {
    let id = leased.task_id.0;
    let beat = json!(Heartbeat {
        lease_id: leased.lease_id.clone(),
        lease_secs: None
    });
    vec![
        ("submit", app.submit(&json!({ "payload": 2 })).await),
        ("batch", app.submit_batch(&[json!({ "payload": 3 })]).await),
        ("list", app.list_tasks("").await),
        ("get", app.get_task(id).await),
        ("queues", app.queues().await),
        ("queue", app.queue("default").await),
        ("seal", app.seal("other").await),
        ("unseal", app.unseal("other").await),
        ("lease", app.lease(&json!(LeaseRequest::new("w02"))).await),
        ("heartbeat", app.heartbeat(id, &beat).await),
        ("cancel", app.cancel(id).await),
        (
            "release",
            app.release(id, &json!({ "lease_id": leased.lease_id }))
                .await,
        ),
        ("retry", app.retry(id).await),
    ]
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_with_401_and_a_challenge() {
    let mut app = spawn_secured_app().await;
    let leased = leased_task(&mut app, None).await;

    for (name, response) in every_endpoint(&app, &leased).await {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_unauthorized(response).await;
    }
    app.token = Some(API_TOKEN.into());
    assert_eq!(app.all_tasks().await.len(), 1, "nothing was submitted");
    assert_eq!(app.task(leased.task_id.0).await.state, TaskState::Leased);
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_401() {
    let mut app = spawn_secured_app().await;
    let leased = leased_task(&mut app, Some("guess")).await;

    for (name, response) in every_endpoint(&app, &leased).await {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_unauthorized(response).await;
    }
}

#[tokio::test]
async fn a_token_without_the_bearer_scheme_is_refused_with_401() {
    let app = spawn_secured_app().await;
    let response = app
        .client
        .get(app.url("/tasks"))
        .header("authorization", API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_unauthorized(response).await;
}

#[tokio::test]
async fn the_worker_token_on_operator_endpoints_is_refused_with_403() {
    let mut app = spawn_secured_app().await;
    let leased = leased_task(&mut app, Some(WORKER_TOKEN)).await;
    let id = leased.task_id.0;

    for response in [
        app.submit(&json!({ "payload": 2 })).await,
        app.submit_batch(&[json!({ "payload": 3 })]).await,
        app.list_tasks("").await,
        app.get_task(id).await,
        app.cancel(id).await,
        app.retry(id).await,
        app.queues().await,
        app.queue("default").await,
        app.seal("default").await,
        app.unseal("default").await,
    ] {
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden-by-role").await;
    }
    app.token = Some(API_TOKEN.into());
    assert_eq!(app.all_tasks().await.len(), 1);
    let task = app.task(id).await;
    assert!(!task.cancel_requested);
    assert!(!app.queue_info("default").await.sealed);
}

#[tokio::test]
async fn the_worker_token_can_lease_heartbeat_report_and_release() {
    let mut app = spawn_secured_app().await;
    app.token = Some(API_TOKEN.into());
    for i in 0..2 {
        app.submit_payload(json!(i)).await;
    }
    app.token = Some(WORKER_TOKEN.into());

    let leased = app.lease_as("w01", 2).await.tasks;
    assert_eq!(leased.len(), 2);
    let beat = Heartbeat {
        lease_id: leased[0].lease_id.clone(),
        lease_secs: None,
    };
    assert_eq!(
        app.heartbeat(leased[0].task_id.0, &json!(beat))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.succeed(&leased[0], "w01", json!("ok")).await.status(),
        200
    );
    let release = Release {
        lease_id: leased[1].lease_id.clone(),
        delay_secs: None,
    };
    assert_eq!(
        app.release(leased[1].task_id.0, &json!(release))
            .await
            .status(),
        200
    );

    app.token = Some(API_TOKEN.into());
    assert_eq!(
        app.task(leased[0].task_id.0).await.state,
        TaskState::Succeeded
    );
    assert_eq!(app.task(leased[1].task_id.0).await.state, TaskState::Queued);
}

#[tokio::test]
async fn the_operator_token_opens_every_endpoint() {
    let mut app = spawn_secured_app().await;
    let leased = leased_task(&mut app, Some(API_TOKEN)).await;

    for (name, response) in every_endpoint(&app, &leased).await {
        assert!(
            response.status().is_success(),
            "{name}: {}",
            response.status()
        );
    }
    assert_eq!(app.task(leased.task_id.0).await.state, TaskState::Queued);
}

#[tokio::test]
async fn probes_and_metrics_stay_open() {
    let app = spawn_secured_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn with_only_an_operator_token_workers_need_it_too() {
    let mut app = spawn_app_with(|config| config.api_token = Some(API_TOKEN.into())).await;
    let leased = leased_task(&mut app, None).await;

    assert_unauthorized(app.lease(&json!(LeaseRequest::new("w02"))).await).await;
    assert_unauthorized(app.succeed(&leased, "w01", json!("ok")).await).await;
    app.token = Some(API_TOKEN.into());
    assert_eq!(app.succeed(&leased, "w01", json!("ok")).await.status(), 200);
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_without_regard_to_case() {
    let app = spawn_secured_app().await;
    let response = app
        .client
        .get(app.url("/queues"))
        .header("authorization", format!("bearer {API_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
