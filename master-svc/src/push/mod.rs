//! Push mode: the master hands tasks to workers' `POST /do-task` instead of waiting to be asked.
//!
//! A pushed task is a lease the master holds on the worker's behalf: for each push worker a
//! feeder long-polls the engine exactly as a pulling worker would (so submissions wake it), a
//! little ahead of the worker's free slots, then POSTs each task to the worker, renews the lease
//! while the worker runs it, and records the reply through the same fenced path as
//! `POST /tasks/{id}/result`. A worker that dies mid-task
//! loses nothing: the request fails (or the lease expires) and the task goes elsewhere.
//!
//! Workers are known three ways ([`discovery`]): a static list, self-registration renewed by
//! heartbeat, and a DNS name (a Kubernetes headless Service) re-resolved periodically.

pub mod discovery;
mod feeder;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{RegisterWorker, WorkerInfo, WorkerSource};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, validate};
use feeder::{Feeder, Health};

/// Largest in-flight limit a worker may announce.
const MAX_CAPACITY: u32 = 1_024;

/// How the dispatcher treats its workers.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Queues served by push; a registered worker's own list is narrowed to these when set.
    pub queues: Option<Vec<String>>,
    /// Time a worker gets to answer `/do-task` before the task is taken back.
    pub timeout: Duration,
    /// Pause between health checks of a worker out of rotation.
    pub health_interval: Duration,
    /// How long a registration lasts without renewal.
    pub registration_ttl: Duration,
    /// Bearer token sent to workers.
    pub worker_token: Option<String>,
}

/// A worker to push to.
#[derive(Debug, Clone, PartialEq)]
pub struct PushWorker {
    pub id: String,
    pub url: String,
    pub capacity: u32,
    pub queues: Vec<String>,
    pub source: WorkerSource,
}

struct Entry {
    worker: PushWorker,
    health: Arc<Health>,
    stop: CancellationToken,
    /// For registered workers: when the registration lapses.
    expires_at: Option<Instant>,
}

/// The known push workers, each with its feeder running.
pub struct Dispatcher {
    engine: Arc<Engine>,
    config: PushConfig,
    http: reqwest::Client,
    // A std mutex: held only to look up or change the map, never across an await.
    workers: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish()
    }
}

impl Dispatcher {
    pub fn new(engine: Arc<Engine>, config: PushConfig) -> Arc<Dispatcher> {
        let http = worker_svc::client::http_client_builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a client with a preconfigured TLS backend always builds");
        Arc::new(Dispatcher {
            engine,
            config,
            http,
            workers: Mutex::new(HashMap::new()),
        })
    }

    /// Adds or updates a worker. An unchanged worker keeps its feeder (a registration renewal);
    /// a changed one gets a new feeder. Fails for a URL the master cannot push to: one that does
    /// not parse, or that is neither `http://` nor `https://`.
    pub fn upsert(self: &Arc<Self>, mut worker: PushWorker) -> Result<WorkerInfo, String> {
        if let Some(allowed) = &self.config.queues {
            worker.queues.retain(|queue| allowed.contains(queue));
        }
        let expires_at = (worker.source == WorkerSource::Registered)
            .then(|| Instant::now() + self.config.registration_ttl);
        let mut workers = self.lock();
        if let Some(entry) = workers.get_mut(&worker.id).filter(|e| e.worker == worker) {
            entry.expires_at = expires_at;
            return Ok(self.info(entry));
        }
        // Parsed once here rather than for every task pushed.
        let do_task = reqwest::Url::parse(&format!("{}/do-task", worker.url.trim_end_matches('/')))
            .map_err(|e| format!("`{}` is not a URL: {e}", worker.url))?;
        if !matches!(do_task.scheme(), "http" | "https") {
            return Err(format!(
                "`{}` is not an http:// or https:// URL",
                worker.url
            ));
        }
        if let Some(old) = workers.remove(&worker.id) {
            old.stop.cancel();
        }
        let entry = self.start(worker, do_task, expires_at);
        let info = self.info(&entry);
        workers.insert(info.id.clone(), entry);
        Ok(info)
    }

    fn start(
        self: &Arc<Self>,
        worker: PushWorker,
        do_task: reqwest::Url,
        expires_at: Option<Instant>,
    ) -> Entry {
        tracing::info!(id = %worker.id, url = %worker.url, capacity = worker.capacity, "push worker added");
        let health = Arc::new(Health::default());
        let stop = self.engine.shutdown_token().child_token();
        let feeder = Feeder {
            engine: self.engine.clone(),
            http: self.http.clone(),
            config: self.config.clone(),
            worker: worker.clone(),
            do_task,
            health: health.clone(),
        };
        tokio::spawn(feeder.run(stop.clone()));
        Entry {
            worker,
            health,
            stop,
            expires_at,
        }
    }

    /// `POST /workers`: checks a registration and adds (or renews) the worker.
    pub fn register(self: &Arc<Self>, registration: RegisterWorker) -> Result<WorkerInfo, String> {
        validate::name("id", &registration.id)?;
        validate::worker_url(&registration.url)?;
        let url = registration.url.trim_end_matches('/');
        let capacity = validate::in_range(
            "capacity",
            registration.capacity.unwrap_or(1),
            1,
            MAX_CAPACITY,
        )?;
        let queues = validate::lease_queues(registration.queues.as_deref())?;
        // Its feeder would lease from no queue at all: refuse rather than accept a worker that can
        // never be given a task.
        if let Some(pushed) = &self.config.queues
            && !queues.iter().any(|queue| pushed.contains(queue))
        {
            return Err(format!(
                "none of `queues` is served by push mode here (--push-queues: {})",
                pushed.join(", ")
            ));
        }
        self.upsert(PushWorker {
            id: registration.id,
            url: url.to_owned(),
            capacity,
            queues,
            source: WorkerSource::Registered,
        })
    }

    /// Removes a worker; its feeder stops taking tasks (those in flight finish).
    pub fn remove(&self, id: &str) -> bool {
        match self.lock().remove(id) {
            Some(entry) => {
                tracing::info!(id, "push worker removed");
                entry.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Keeps only the workers of `source` whose ids are in `keep`.
    pub fn retain(&self, source: WorkerSource, keep: &[String]) {
        let gone: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.worker.source == source && !keep.contains(&e.worker.id))
            .map(|e| e.worker.id.clone())
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Drops registrations that were not renewed in time.
    pub fn expire_registrations(&self) {
        let now = Instant::now();
        let lapsed: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.expires_at.is_some_and(|at| at <= now))
            .map(|e| e.worker.id.clone())
            .collect();
        for id in lapsed {
            tracing::warn!(id, "push worker registration lapsed");
            self.remove(&id);
        }
    }

    pub fn list(&self) -> Vec<WorkerInfo> {
        let workers = self.lock();
        let mut list: Vec<WorkerInfo> = workers.values().map(|e| self.info(e)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn info(&self, entry: &Entry) -> WorkerInfo {
        let worker = &entry.worker;
        WorkerInfo {
            id: worker.id.clone(),
            url: worker.url.clone(),
            capacity: worker.capacity,
            queues: worker.queues.clone(),
            source: worker.source,
            healthy: entry.health.is_healthy(),
            in_flight: entry.health.in_flight(),
            ttl_secs: entry
                .expires_at
                .map(|_| self.config.registration_ttl.as_secs()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.workers.lock().expect("push workers lock poisoned")
    }
}
