//! `GET /audit`: the operator actions the master recorded, newest first. What is recorded, and
//! when, is the access middleware's (`access::record`).

use axum::Json;
use axum::extract::State;
use common::openapi::{Forbidden, InvalidRequest, Unauthorized, Unavailable};
use common::{AuditEntry, AuditOutcome, AuditPage, ListAudit};

use super::AppState;
use super::access::require_all_queues;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::access::Caller;

/// List the audit log
///
/// Operator actions (cancel, retry, seal, unseal, pause, resume, limit changes, worker removal),
/// each with its time, the token's name, the action, its target and its outcome, newest first;
/// pass `next_cursor` as `cursor` for older ones. Kept for `--audit-retention-secs`. A token
/// limited to some queues may not read it: it spans every queue.
#[utoipa::path(
    get, path = "/audit", operation_id = "listAudit", tag = "access",
    security(("apiToken" = [])),
    params(ListAudit),
    responses(
        (status = 200, description = "A page of the audit log, newest first.", body = AuditPage,
            example = json!(AuditPage { entries: vec![AuditEntry {
                id: 120, at: time::OffsetDateTime::from_unix_timestamp(1_767_607_200).unwrap(),
                actor: "ops-alice".into(), action: "cancel".into(),
                target: "DELETE /tasks/42".into(), outcome: AuditOutcome::Succeeded,
                status: 200 }], next_cursor: Some("120".into()) })),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListAudit>,
) -> Result<Json<AuditPage>, ApiError> {
    require_all_queues(&caller, "the audit log of every queue")?;
    Ok(Json(state.engine.audit_page(query).await?))
}
