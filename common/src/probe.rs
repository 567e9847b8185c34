//! Probe replies, the same on the master and the worker.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// `GET /healthz`: the process answers.
    Ok,
    /// `GET /readyz`: the service takes work.
    Ready,
}

/// Reply to `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({ "status": "ok" }))]
pub struct Probe {
    /// `ok` or `ready`.
    pub status: ProbeState,
}

impl Probe {
    /// What `GET /healthz` answers.
    pub const OK: Probe = Probe {
        status: ProbeState::Ok,
    };
    /// What `GET /readyz` answers while the store can write.
    pub const READY: Probe = Probe {
        status: ProbeState::Ready,
    };
}
