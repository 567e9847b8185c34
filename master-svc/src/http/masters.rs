//! `GET /masters`: the masters sharing this master's store, as their heartbeats in it show them
//! (which are listed, and for how long, is the engine's `masters`).

use axum::Json;
use axum::extract::State;
use common::MasterList;
use common::examples;
use common::openapi::{Forbidden, Unauthorized, Unavailable};

use super::AppState;
use super::error::ApiError;

/// List masters
///
/// The store, and the masters using it: each writes a heartbeat to the store every 10 s, and is
/// listed while its last one is at most 30 s old; the master answering is always listed
/// (`this`). Newest start first. A master that stops cleanly leaves the list at once, one that
/// crashed within 30 s. A SQLite store has one master.
#[utoipa::path(
    get, path = "/masters", operation_id = "listMasters", tag = "masters",
    security(("apiToken" = [])),
    responses(
        (status = 200, description = "The store and its masters.", body = MasterList,
            example = json!(examples::master_list())),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<MasterList>, ApiError> {
    Ok(Json(state.engine.masters().await?))
}
