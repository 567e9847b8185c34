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
//! heartbeat, and a DNS name (a Kubernetes headless Service) re-resolved periodically. The
//! operator's workers (static and DNS) are out of a registration's reach ([`registration`]), and
//! `--push-allow-cidr` bounds where the master pushes at all ([`allow`]).
//!
//! At shutdown ([`Dispatcher::drain`]) the feeders stop leasing and hand back the tasks they
//! leased ahead, and tasks pushed already get `--push-drain-secs` to have their results
//! recorded; those still running after it are handed back too, so that no task stays leased
//! to a master that is gone.

pub mod allow;
pub mod discovery;
mod feeder;
mod registration;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{WorkerInfo, WorkerSource};
use reqwest::redirect;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::Engine;
use allow::{AllowList, AllowedResolver};
use feeder::{Feeder, Health};
pub use registration::WorkerError;

/// Time the master gives a push worker to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time the releases of tasks still in flight get once the drain time is up.
const HAND_BACK_WITHIN: Duration = Duration::from_secs(5);

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
    /// Registered workers held at once, at most.
    pub max_registered: usize,
    /// Where the master may push (`--push-allow-cidr`); `None`: anywhere.
    pub allow: Option<Arc<AllowList>>,
    /// At shutdown, how long tasks already pushed get to have their results recorded.
    pub drain: Duration,
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
    /// Every feeder and every dispatch, for shutdown to wait for.
    tasks: TaskTracker,
    /// Cancelled when the drain time is up: dispatches still running hand their tasks back.
    abandon: CancellationToken,
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
        Arc::new(Dispatcher {
            engine,
            http: push_client(config.allow.as_ref()),
            config,
            workers: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            abandon: CancellationToken::new(),
        })
    }

    /// Shutdown, once the engine's shutdown token is cancelled (which stops every feeder's
    /// leasing): waits for the feeders to hand back what they leased ahead and for the tasks
    /// pushed already to have their results recorded, up to the drain time; then the dispatches
    /// still waiting for their workers hand their tasks back to their queues at once, rather
    /// than leave them leased until their leases expire.
    pub async fn drain(&self) {
        self.tasks.close();
        if tokio::time::timeout(self.config.drain, self.tasks.wait())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(
            running = self.tasks.len(),
            "push drain time is up; handing back the tasks still pushed"
        );
        self.abandon.cancel();
        if tokio::time::timeout(HAND_BACK_WITHIN, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("tasks not handed back in time; their leases will expire instead");
        }
    }

    /// Adds or updates a worker. An unchanged worker keeps its feeder (a registration renewal);
    /// a changed one gets a new feeder. Fails for a URL the master cannot push to: one that does
    /// not parse, that is neither `http://` nor `https://`, or whose address is outside
    /// `--push-allow-cidr`; and for a registration, as [`registration`] says.
    pub fn upsert(self: &Arc<Self>, mut worker: PushWorker) -> Result<WorkerInfo, WorkerError> {
        if let Some(allowed) = &self.config.queues {
            worker.queues.retain(|queue| allowed.contains(queue));
        }
        let do_task = self.do_task_url(&worker.url)?;
        let expires_at = (worker.source == WorkerSource::Registered)
            .then(|| Instant::now() + self.config.registration_ttl);
        let mut workers = self.lock();
        if worker.source == WorkerSource::Registered {
            self.admit(&workers, &worker.id)?;
        }
        if let Some(entry) = workers.get_mut(&worker.id).filter(|e| e.worker == worker) {
            entry.expires_at = expires_at;
            return Ok(self.info(entry));
        }
        if let Some(old) = workers.remove(&worker.id) {
            old.stop.cancel();
        }
        let entry = self.start(worker, do_task, expires_at);
        let info = self.info(&entry);
        workers.insert(info.id.clone(), entry);
        Ok(info)
    }

    /// The worker's `POST /do-task` URL, parsed once here rather than for every task pushed.
    fn do_task_url(&self, url: &str) -> Result<reqwest::Url, WorkerError> {
        let do_task = reqwest::Url::parse(&format!("{}/do-task", url.trim_end_matches('/')))
            .map_err(|e| WorkerError::Invalid(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(do_task.scheme(), "http" | "https") {
            let detail = format!("`{url}` is not an http:// or https:// URL");
            return Err(WorkerError::Invalid(detail));
        }
        if let Some(allow) = &self.config.allow {
            allow.check_literal(&do_task)?;
        }
        Ok(do_task)
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
            tasks: self.tasks.clone(),
            abandon: self.abandon.clone(),
        };
        self.tasks.spawn(feeder.run(stop.clone()));
        Entry {
            worker,
            health,
            stop,
            expires_at,
        }
    }

    /// Removes a worker; its feeder stops taking tasks (those in flight finish).
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.lock().remove(id);
        removed.map(|entry| stop(id, entry)).is_some()
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

/// Stops a removed worker's feeder.
fn stop(id: &str, entry: Entry) {
    tracing::info!(id, "push worker removed");
    entry.stop.cancel();
}

/// The client that pushes to workers. It follows no redirect: a worker's answer could otherwise
/// send the task to a host of the worker's choosing. With an allow list, names resolve only to
/// the addresses it admits, and no proxy is used (the proxy, not the master, would pick the
/// address connected to).
fn push_client(allow: Option<&Arc<AllowList>>) -> reqwest::Client {
    let mut builder = leasehold_client::http_client_builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(redirect::Policy::none());
    if let Some(allow) = allow {
        builder = builder
            .dns_resolver(AllowedResolver(allow.clone()))
            .no_proxy();
    }
    builder
        .build()
        .expect("a client with a preconfigured TLS backend always builds")
}
