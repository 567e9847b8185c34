//! The audit log: every operator action is recorded with its time, token name, action, target
//! and outcome, listed newest first by `GET /audit`, and purged after its retention.

use std::time::Duration;

use common::{AuditEntry, AuditOutcome, AuditPage};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::roles::spawn_with_every_role;

async fn audit_page(app: &TestApp, query: &str) -> AuditPage {
    let response = app.audit(query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Every entry, newest first.
async fn entries(app: &TestApp) -> Vec<AuditEntry> {
    audit_page(app, "?limit=1000").await.entries
}

fn summary(entries: &[AuditEntry]) -> Vec<(String, String, String, AuditOutcome)> {
    entries
        .iter()
        .map(|e| {
            (
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                e.outcome,
            )
        })
        .collect()
}

fn row(
    actor: &str,
    action: &str,
    target: &str,
    outcome: AuditOutcome,
) -> (String, String, String, AuditOutcome) {
    (actor.into(), action.into(), target.into(), outcome)
}

#[tokio::test]
async fn every_operator_action_is_recorded_newest_first_with_its_token_and_outcome() {
    let (mut app, _tokens) = spawn_with_every_role().await;
    app.token = Some("tok-operator".into());
    let id = app.submit_payload(json!(1)).await.id.0;

    assert_eq!(app.cancel(id).await.status(), 200);
    assert_eq!(app.retry(id).await.status(), 200);
    assert_eq!(app.seal("default").await.status(), 200);
    assert_eq!(app.unseal("default").await.status(), 200);
    assert_eq!(
        app.post("/queues/default/pause", &json!({})).await.status(),
        200
    );
    assert_eq!(
        app.post("/queues/default/resume", &json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.patch_queue("default", &json!({ "max_in_flight": 3 }))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete("/workers/nobody").await.status(), 404);
    app.token = Some("tok-admin".into());
    assert_eq!(app.cancel(id + 100).await.status(), 404);
    app.token = Some("tok-read-only".into());
    assert_eq!(app.seal("default").await.status(), 403);

    use AuditOutcome::*;
    let mut expected = vec![
        row(
            "operator",
            "cancel",
            &format!("DELETE /tasks/{id}"),
            Succeeded,
        ),
        row(
            "operator",
            "retry",
            &format!("POST /tasks/{id}/retry"),
            Succeeded,
        ),
        row("operator", "seal", "POST /queues/default/seal", Succeeded),
        row(
            "operator",
            "unseal",
            "POST /queues/default/unseal",
            Succeeded,
        ),
        row("operator", "pause", "POST /queues/default/pause", Succeeded),
        row(
            "operator",
            "resume",
            "POST /queues/default/resume",
            Succeeded,
        ),
        row("operator", "set_limits", "PATCH /queues/default", Succeeded),
        row(
            "operator",
            "remove_worker",
            "DELETE /workers/nobody",
            Refused,
        ),
        row(
            "admin",
            "cancel",
            &format!("DELETE /tasks/{}", id + 100),
            Refused,
        ),
        row("read-only", "seal", "POST /queues/default/seal", Refused),
    ];
    expected.reverse();
    let listed = entries(&app).await;
    assert_eq!(summary(&listed), expected);
    assert_eq!(listed[0].status, 403);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at)
    );
}

#[tokio::test]
async fn reads_submissions_and_leases_are_not_audited() {
    let app = spawn_app().await;
    app.submit_payload(json!(1)).await;
    app.lease_one("w1").await;
    app.queues().await;
    app.list_tasks("").await;
    assert!(entries(&app).await.is_empty());
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    for _ in 0..5 {
        app.seal("default").await;
    }
    let first = audit_page(&app, "?limit=2").await;
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = audit_page(&app, &format!("?limit=2&cursor={cursor}")).await;
    let third = audit_page(
        &app,
        &format!("?limit=2&cursor={}", second.next_cursor.clone().unwrap()),
    )
    .await;
    let ids: Vec<i64> = [first, second, third.clone()]
        .iter()
        .flat_map(|page| page.entries.iter().map(|e| e.id))
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(third.next_cursor, None);
    assert_eq!(
        app.audit("?cursor=x").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn actions_on_an_open_master_are_by_anonymous_and_with_the_api_token_by_api_token() {
    let open = spawn_app().await;
    open.seal("default").await;
    assert_eq!(entries(&open).await[0].actor, "anonymous");

    let mut app = spawn_app_with(|config| config.api_token = Some("op".into())).await;
    app.token = Some("op".into());
    app.seal("default").await;
    assert_eq!(entries(&app).await[0].actor, "api-token");
}

#[tokio::test]
async fn audit_entries_are_purged_after_their_retention() {
    let app = spawn_app_with(|config| config.audit_retention_secs = 60).await;
    app.seal("default").await;
    app.advance(Duration::from_secs(30)).await;
    app.unseal("default").await;
    app.advance(Duration::from_secs(31)).await;

    let left = entries(&app).await;
    assert_eq!(
        summary(&left),
        [row(
            "anonymous",
            "unseal",
            "POST /queues/default/unseal",
            AuditOutcome::Succeeded
        )]
    );
}
