//! Self-registration (`POST /workers`) and its withdrawal. Anyone holding the worker token may
//! register, so a registration is kept to what it can do harmlessly: create or renew a worker of
//! source `registered`, never replace or withdraw one the operator configured (`--push-worker`)
//! or DNS found; at most `--max-registered-workers` of them; and, with `--push-allow-cidr`, only
//! at an address inside the allowed networks.

use std::collections::HashMap;
use std::sync::Arc;

use common::{RegisterWorker, WorkerInfo, WorkerSource};

use super::allow::Refused;
use super::{Dispatcher, Entry, PushWorker, stop};
use crate::engine::validate;

/// Largest in-flight limit a worker may announce.
const MAX_CAPACITY: u32 = 1_024;

/// Why a worker was not added, or a registration not withdrawn.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A field is malformed or out of range, or the URL's host does not resolve.
    #[error("{0}")]
    Invalid(String),
    /// The id is a static or DNS worker's, which only the operator may change or remove.
    #[error("worker `{0}` {1}; a registration may not replace or withdraw it")]
    Reserved(String, &'static str),
    /// As many workers are registered as `--max-registered-workers` allows.
    #[error(
        "{0} workers are registered, as many as --max-registered-workers allows; \
         try again once one lapses or is withdrawn"
    )]
    TooMany(usize),
    /// The URL's host has an address outside `--push-allow-cidr`.
    #[error("{0}")]
    NotAllowed(String),
    /// No worker has this id.
    #[error("worker `{0}` not found")]
    NotFound(String),
}

impl From<Refused> for WorkerError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::NotAllowed { .. } => WorkerError::NotAllowed(refused.to_string()),
            Refused::Unresolvable { .. } => WorkerError::Invalid(refused.to_string()),
        }
    }
}

/// A registration the engine's checks refuse (their message is the `400`'s detail).
fn invalid(e: crate::engine::EngineError) -> WorkerError {
    WorkerError::Invalid(e.to_string())
}

/// How an operator's worker came to be, for the `Reserved` message.
fn origin(source: WorkerSource) -> &'static str {
    match source {
        WorkerSource::Static => "is configured by the operator (--push-worker)",
        WorkerSource::Dns => "is discovered through --push-dns",
        WorkerSource::Registered => "is registered",
    }
}

impl Dispatcher {
    /// `POST /workers`: checks a registration and adds (or renews) the worker.
    pub async fn register(
        self: &Arc<Self>,
        registration: RegisterWorker,
    ) -> Result<WorkerInfo, WorkerError> {
        let worker = self.registered_worker(registration)?;
        if let Some(allow) = &self.config.allow {
            // Every address the name has now; each connection is checked again (see `allow`).
            allow.check_url(&self.do_task_url(&worker.url)?).await?;
        }
        self.upsert(worker)
    }

    /// Checks a registration's fields; the worker it describes.
    fn registered_worker(&self, registration: RegisterWorker) -> Result<PushWorker, WorkerError> {
        validate::name("id", &registration.id).map_err(invalid)?;
        validate::worker_url(&registration.url).map_err(invalid)?;
        let url = registration.url.trim_end_matches('/');
        let capacity = registration.capacity.unwrap_or(1);
        let capacity =
            validate::in_range("capacity", capacity, 1, MAX_CAPACITY).map_err(invalid)?;
        let queues = validate::lease_queues(registration.queues.as_deref()).map_err(invalid)?;
        // Its feeder would lease from no queue at all: refuse rather than accept a worker that can
        // never be given a task.
        if let Some(pushed) = &self.config.queues
            && !queues.iter().any(|queue| pushed.contains(queue))
        {
            return Err(WorkerError::Invalid(format!(
                "none of `queues` is served by push mode here (--push-queues: {})",
                pushed.join(", ")
            )));
        }
        Ok(PushWorker {
            id: registration.id,
            url: url.to_owned(),
            capacity,
            queues,
            source: WorkerSource::Registered,
        })
    }

    /// Whether a registration under `id` may be added to `workers` (checked under the same lock
    /// as the insertion, so that concurrent registrations cannot pass the cap together).
    pub(super) fn admit(
        &self,
        workers: &HashMap<String, Entry>,
        id: &str,
    ) -> Result<(), WorkerError> {
        match workers.get(id) {
            Some(entry) => reserved(id, entry),
            None => {
                let max = self.config.max_registered;
                let registered = workers
                    .values()
                    .filter(|e| e.worker.source == WorkerSource::Registered)
                    .count();
                if registered >= max {
                    return Err(WorkerError::TooMany(registered));
                }
                Ok(())
            }
        }
    }

    /// `DELETE /workers/{id}/registration`: withdraws a registration, and only a registration.
    pub fn withdraw(&self, id: &str) -> Result<(), WorkerError> {
        let mut workers = self.lock();
        let entry = workers
            .get(id)
            .ok_or_else(|| WorkerError::NotFound(id.to_owned()))?;
        reserved(id, entry)?;
        let entry = workers.remove(id).expect("just found");
        drop(workers);
        stop(id, entry);
        Ok(())
    }
}

/// Refuses to touch `entry` unless it is a registration.
fn reserved(id: &str, entry: &Entry) -> Result<(), WorkerError> {
    match entry.worker.source {
        WorkerSource::Registered => Ok(()),
        source => Err(WorkerError::Reserved(id.to_owned(), origin(source))),
    }
}
