//! Where push workers come from: the static list, registrations (see `POST /workers`), and a
//! DNS name re-resolved periodically so that new pods (a Kubernetes headless Service behind an
//! HPA) receive work and vanished ones stop receiving it.

use std::sync::Arc;
use std::time::Duration;

use common::WorkerSource;

use super::{Dispatcher, PushWorker};

/// How often lapsed registrations are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The discovery settings.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// `--push-worker` base URLs.
    pub static_urls: Vec<String>,
    /// `--push-dns HOST:PORT`.
    pub dns: Option<String>,
    pub dns_interval: Duration,
    /// In-flight limit of a static or DNS worker.
    pub capacity: u32,
    /// Queues a static or DNS worker serves.
    pub queues: Vec<String>,
}

impl Discovery {
    /// Registers the static workers and runs the DNS and registration-expiry loops until
    /// shutdown.
    pub async fn run(self, dispatcher: Arc<Dispatcher>) {
        for url in &self.static_urls {
            let worker = self.worker(url.clone(), url.clone(), WorkerSource::Static);
            if let Err(e) = dispatcher.upsert(worker) {
                tracing::error!(error = %e, "push worker left out");
            }
        }
        let stop = dispatcher.engine.shutdown_token().clone();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut resolve = tokio::time::interval(self.dns_interval);
        loop {
            tokio::select! {
                _ = sweep.tick() => dispatcher.expire_registrations(),
                _ = resolve.tick(), if self.dns.is_some() => self.resolve(&dispatcher).await,
                () = stop.cancelled() => return,
            }
        }
    }

    async fn resolve(&self, dispatcher: &Arc<Dispatcher>) {
        let Some(name) = &self.dns else { return };
        let addresses = match tokio::net::lookup_host(name.as_str()).await {
            Ok(addresses) => addresses,
            Err(e) => {
                // Keep the workers we know: a DNS hiccup is no reason to stop pushing.
                tracing::warn!(name, error = %e, "cannot resolve push workers");
                return;
            }
        };
        let mut ids = Vec::new();
        for address in addresses {
            let url = format!("http://{address}");
            let id = format!("dns:{address}");
            // An address always makes a URL; it may be outside --push-allow-cidr.
            if let Err(e) = dispatcher.upsert(self.worker(id.clone(), url, WorkerSource::Dns)) {
                tracing::warn!(name, error = %e, "push worker left out");
                continue;
            }
            ids.push(id);
        }
        dispatcher.retain(WorkerSource::Dns, &ids);
    }

    fn worker(&self, id: String, url: String, source: WorkerSource) -> PushWorker {
        PushWorker {
            id,
            url,
            capacity: self.capacity,
            queues: self.queues.clone(),
            source,
        }
    }
}
