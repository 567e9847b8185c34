//! Queue scopes: a token with queue prefixes acts only on queues whose names start with one of
//! them, and `GET /whoami` says who a token is.

use common::{LeaseRequest, QueueList, Role, TaskState, WhoAmI};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::roles::spawn_with_tokens;

const OUT_OF_SCOPE: &str = "forbidden-by-queue-scope";

/// Scoped tokens of each role on `billing-`, and an unscoped admin.
async fn spawn_scoped() -> (TestApp, TempDir) {
    let scoped = |role: &str| {
        json!({ "name": format!("billing-{role}"), "token": format!("b-{role}"),
                "role": role, "queues": ["billing-"] })
    };
    let tokens = json!([
        scoped("producer"),
        scoped("worker"),
        scoped("operator"),
        scoped("read-only"),
        { "name": "root", "token": "root", "role": "admin" },
    ]);
    spawn_with_tokens(tokens, |_| {}).await
}

/// Submits one task to `queue` as the admin.
async fn submitted(app: &mut TestApp, queue: &str) -> i64 {
    app.token = Some("root".into());
    let task = app.submit(&json!({ "queue": queue, "payload": 1 })).await;
    assert_eq!(task.status(), StatusCode::CREATED);
    task.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_scoped_producer_submits_and_reads_only_in_its_queues() {
    let (mut app, _tokens) = spawn_scoped().await;
    let theirs = submitted(&mut app, "reports").await;
    app.token = Some("b-producer".into());

    let ours = app
        .submit(&json!({ "queue": "billing-eu", "payload": 1 }))
        .await;
    assert_eq!(ours.status(), StatusCode::CREATED);
    let problem = assert_problem(
        app.submit(&json!({ "queue": "reports", "payload": 1 }))
            .await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert!(problem.detail.unwrap().contains("`billing-`"));
    // The default queue is a queue like any other.
    assert_problem(
        app.submit(&json!({ "payload": 1 })).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    let batch = [
        json!({ "queue": "billing-eu", "payload": 1 }),
        json!({ "queue": "reports", "payload": 2 }),
    ];
    assert_problem(
        app.submit_batch(&batch).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.get_task(theirs).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;

    app.token = Some("root".into());
    assert_eq!(
        app.all_tasks().await.len(),
        2,
        "nothing of the refused requests was kept"
    );
}

#[tokio::test]
async fn a_scoped_token_lists_tasks_of_one_of_its_queues_at_a_time() {
    let (mut app, _tokens) = spawn_scoped().await;
    submitted(&mut app, "billing-eu").await;
    submitted(&mut app, "reports").await;
    app.token = Some("b-read-only".into());

    assert_problem(
        app.list_tasks("").await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.list_tasks("?queue=reports").await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    let page: Value = app
        .list_tasks("?queue=billing-eu")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn get_queues_shows_a_scoped_token_only_its_queues() {
    let (mut app, _tokens) = spawn_scoped().await;
    submitted(&mut app, "billing-eu").await;
    submitted(&mut app, "reports").await;
    app.token = Some("b-read-only".into());

    let listed: QueueList = app.queues().await.json().await.unwrap();
    let names: Vec<_> = listed.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["billing-eu"]);
    assert_problem(
        app.queue("reports").await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
}

#[tokio::test]
async fn a_scoped_worker_leases_and_reports_only_in_its_queues() {
    let (mut app, _tokens) = spawn_scoped().await;
    let theirs = submitted(&mut app, "reports").await;
    submitted(&mut app, "billing-eu").await;
    app.token = Some("root".into());
    let leased_theirs = app
        .lease_with(LeaseRequest {
            queues: Some(vec!["reports".into()]),
            ..LeaseRequest::new("w1")
        })
        .await;
    app.token = Some("b-worker".into());

    let mixed = LeaseRequest {
        queues: Some(vec!["billing-eu".into(), "reports".into()]),
        ..LeaseRequest::new("w2")
    };
    assert_problem(
        app.lease(&json!(mixed)).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.lease(&json!(LeaseRequest::new("w2"))).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    let ours = LeaseRequest {
        queues: Some(vec!["billing-eu".into()]),
        ..LeaseRequest::new("w2")
    };
    let leased = app.lease_with(ours).await;
    assert_eq!(leased.tasks.len(), 1);
    assert_eq!(
        app.succeed(&leased.tasks[0], "w2", json!("ok"))
            .await
            .status(),
        200
    );

    let lease_id = &leased_theirs.tasks[0].lease_id;
    let beat = json!({ "lease_id": lease_id });
    assert_problem(
        app.heartbeat(theirs, &beat).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.release(theirs, &beat).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.succeed(&leased_theirs.tasks[0], "w1", json!("x")).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    app.token = Some("root".into());
    assert_eq!(app.task(theirs).await.state, TaskState::Leased);
}

#[tokio::test]
async fn a_scoped_operator_acts_only_on_its_queues() {
    let (mut app, _tokens) = spawn_scoped().await;
    let theirs = submitted(&mut app, "reports").await;
    let ours = submitted(&mut app, "billing-eu").await;
    app.token = Some("b-operator".into());

    assert_problem(
        app.cancel(theirs).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.seal("reports").await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.post("/queues/reports/pause", &json!({})).await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(
        app.patch_queue("reports", &json!({ "max_in_flight": 1 }))
            .await,
        StatusCode::FORBIDDEN,
        OUT_OF_SCOPE,
    )
    .await;
    assert_problem(app.audit("").await, StatusCode::FORBIDDEN, OUT_OF_SCOPE).await;
    assert_eq!(app.cancel(ours).await.status(), 200);
    assert_eq!(app.seal("billing-eu").await.status(), 200);

    app.token = Some("root".into());
    assert_eq!(app.task(theirs).await.state, TaskState::Queued);
    assert!(!app.queue_info("reports").await.sealed);
}

#[tokio::test]
async fn whoami_answers_the_name_role_and_scope_of_the_token() {
    let (mut app, _tokens) = spawn_scoped().await;
    app.token = Some("b-producer".into());
    let me: WhoAmI = app.whoami().await.json().await.unwrap();
    assert_eq!(
        me,
        WhoAmI {
            name: "billing-producer".into(),
            role: Role::Producer,
            queues: Some(vec!["billing-".into()])
        }
    );
    app.token = Some("root".into());
    let me: WhoAmI = app.whoami().await.json().await.unwrap();
    assert_eq!(
        (me.name.as_str(), me.role, me.queues),
        ("root", Role::Admin, None)
    );
}

#[tokio::test]
async fn the_legacy_tokens_are_an_admin_and_a_worker_and_an_open_master_is_anonymous() {
    let mut app = spawn_app_with(|config| {
        config.api_token = Some("op".into());
        config.worker_token = Some("wk".into());
    })
    .await;
    app.token = Some("op".into());
    let me: WhoAmI = app.whoami().await.json().await.unwrap();
    assert_eq!((me.name.as_str(), me.role), ("api-token", Role::Admin));
    app.token = Some("wk".into());
    let me: WhoAmI = app.whoami().await.json().await.unwrap();
    assert_eq!((me.name.as_str(), me.role), ("worker-token", Role::Worker));

    let open = crate::helpers::spawn_app().await;
    let me: WhoAmI = open.whoami().await.json().await.unwrap();
    assert_eq!((me.name.as_str(), me.role), ("anonymous", Role::Admin));
}

#[tokio::test]
async fn a_tokens_file_and_the_legacy_tokens_work_side_by_side() {
    let tokens = json!([{ "name": "ci", "token": "ci-secret", "role": "producer" }]);
    let (mut app, _tokens) =
        spawn_with_tokens(tokens, |config| config.api_token = Some("op".into())).await;
    app.token = Some("ci-secret".into());
    assert_eq!(
        app.submit(&json!({ "payload": 1 })).await.status(),
        StatusCode::CREATED
    );
    app.token = Some("op".into());
    assert_eq!(app.seal("default").await.status(), StatusCode::OK);
}
