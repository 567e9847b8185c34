//! One push worker's feeder: lease for it ahead of its free slots, and start a dispatch
//! ([`dispatch`]) for each task as a slot frees.

mod dispatch;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{LeaseRequest, LeasedTask, MAX_LEASE_BATCH};
use leasehold_client::free_slots;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{PushConfig, PushWorker};
use crate::engine::Engine;

/// Consecutive failures that take a worker out of rotation.
const FAILURES_BEFORE_UNHEALTHY: u32 = 3;
/// Long-poll wait of each lease made for a worker.
const LEASE_WAIT_SECS: u64 = 10;
/// Longest a task leased ahead waits for one of the worker's slots before it is handed back.
const AHEAD_AT_MOST: Duration = Duration::from_secs(1);
/// Pause after a lease for the worker failed (the store is down), before the next try.
const LEASE_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Time a worker out of rotation gets to answer its health check.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A worker's standing: in rotation or not, tasks in flight, pause asked for by `Retry-After`.
#[derive(Debug, Default)]
pub(super) struct Health {
    unhealthy: AtomicBool,
    failures: AtomicU32,
    in_flight: AtomicU32,
    /// Milliseconds to wait before the next lease, set by a `429`/`503`.
    pause_ms: AtomicU32,
}

impl Health {
    pub(super) fn is_healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::SeqCst)
    }

    pub(super) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::SeqCst);
    }

    /// Counts a failure; returns the number in a row.
    fn failed(&self) -> u32 {
        let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if failures >= FAILURES_BEFORE_UNHEALTHY {
            self.unhealthy.store(true, Ordering::SeqCst);
        }
        failures
    }
}

/// Everything one feeder needs.
pub(super) struct Feeder {
    pub engine: Arc<Engine>,
    pub http: reqwest::Client,
    pub config: PushConfig,
    pub worker: PushWorker,
    /// The worker's `POST /do-task` URL.
    pub do_task: reqwest::Url,
    pub health: Arc<Health>,
    /// Where dispatches are started, so that shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Cancelled when the shutdown's drain time is up: dispatches still waiting for their
    /// worker's answer hand their tasks back.
    pub abandon: CancellationToken,
}

/// A task leased ahead of the worker's free slots.
struct Ahead {
    task: LeasedTask,
    /// Handed back if no slot took it by then.
    dispatch_by: Instant,
    /// Its place in the room ahead, freed when it is dispatched or handed back (or, handed
    /// back because no slot took it, when one of the worker's slots next frees).
    room: OwnedSemaphorePermit,
}

/// The tasks leased ahead for a worker: those waiting for a slot, and those on their way from
/// the leaser.
struct AheadQueue {
    waiting: VecDeque<Ahead>,
    arriving: mpsc::UnboundedReceiver<Ahead>,
}

impl AheadQueue {
    /// Takes every task leased ahead, those still arriving included.
    fn take_all(&mut self) -> Vec<Ahead> {
        while let Ok(leased) = self.arriving.try_recv() {
            self.waiting.push_back(leased);
        }
        self.waiting.drain(..).collect()
    }
}

/// Resolves at `deadline`, or never without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Feeder {
    /// Leases and dispatches for this worker until `stop` is cancelled.
    ///
    /// Leasing runs ahead of dispatching ([`lease_ahead`](Self::lease_ahead)): under load, a slot
    /// the worker frees gets its next task at once instead of after a lease is committed (a
    /// store round trip per task). A task leased ahead is handed back unless a slot takes it
    /// soon ([`AHEAD_AT_MOST`], and at most a third of its lease), so a worker busy with slow
    /// tasks does not sit on work other workers could do; and its room ahead stays taken until
    /// one of the worker's slots frees, so that the feeder does not lease the task straight
    /// back before another worker can.
    pub(super) async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        let capacity = this.worker.capacity as usize;
        let slots = Arc::new(Semaphore::new(capacity));
        let room = Arc::new(Semaphore::new(capacity.min(MAX_LEASE_BATCH as usize)));
        let (ahead_tx, arriving) = mpsc::unbounded_channel();
        let leaser = tokio::spawn(this.clone().lease_ahead(room, ahead_tx, stop.clone()));
        let mut ahead = AheadQueue {
            waiting: VecDeque::new(),
            arriving,
        };
        // Room ahead freed by tasks handed back for want of a slot, held until a slot frees.
        let mut held_room = Vec::new();
        while !stop.is_cancelled() {
            if !this.health.is_healthy() && !this.wait_until_healthy(&mut ahead, &stop).await {
                break;
            }
            this.pause(&mut ahead, &stop).await;
            let stale_at = ahead.waiting.front().map(|task| task.dispatch_by);
            let want_slot = !ahead.waiting.is_empty() || !held_room.is_empty();
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = sleep_until_some(stale_at) => {
                    let stale = ahead.waiting.pop_front().expect("not empty");
                    this.give_back(&stale.task, 0).await;
                    held_room.push(stale.room);
                }
                slot = slots.clone().acquire_owned(), if want_slot => {
                    let slot = slot.expect("the slots semaphore is never closed");
                    held_room.clear();
                    if let Some(next) = ahead.waiting.pop_front() {
                        this.tasks.spawn(this.clone().dispatch(next.task, slot));
                    }
                }
                leased = ahead.arriving.recv() => match leased {
                    Some(leased) => ahead.waiting.push_back(leased),
                    None => break,
                },
            }
        }
        // The leaser stops at once; then nothing more arrives and everything can be handed back.
        let _ = leaser.await;
        this.give_back_all(&mut ahead).await;
    }

    /// Leases for the worker as long as there is room ahead of its slots (a lease batch at most).
    async fn lease_ahead(
        self: Arc<Self>,
        room: Arc<Semaphore>,
        ahead: mpsc::UnboundedSender<Ahead>,
        stop: CancellationToken,
    ) {
        loop {
            let room = tokio::select! {
                room = free_slots(&room) => room,
                () = stop.cancelled() => return,
            };
            if !self.health.is_healthy() {
                // Nothing is leased for a worker out of rotation.
                drop(room);
                tokio::select! {
                    () = tokio::time::sleep(self.config.health_interval) => continue,
                    () = stop.cancelled() => return,
                }
            }
            let request = LeaseRequest {
                queues: Some(self.worker.queues.clone()),
                max_tasks: Some(room.len() as u32),
                wait_secs: Some(LEASE_WAIT_SECS),
                ..LeaseRequest::new(&self.worker.id)
            };
            // Not raced against `stop` with a select: dropped between the store's commit and its
            // answer, the lease would be lost, its tasks leased to nobody until they expire.
            let leased = self.engine.lease_until(request, &stop).await;
            if stop.is_cancelled() {
                if let Ok(leased) = leased {
                    self.engine.hand_back_leased(leased.tasks).await;
                }
                return;
            }
            match leased {
                Ok(leased) => {
                    for (task, room) in leased.tasks.into_iter().zip(room) {
                        let lease = self.lease_left(&task);
                        let dispatch_by = Instant::now() + AHEAD_AT_MOST.min(lease / 3);
                        let _ = ahead.send(Ahead {
                            task,
                            dispatch_by,
                            room,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %self.worker.id, error = %crate::chain::Chain(&e), "cannot lease for a push worker");
                    tokio::time::sleep(LEASE_RETRY_AFTER).await;
                }
            }
        }
    }

    /// Hands back every task leased ahead, so that other workers take them at once.
    async fn give_back_all(&self, ahead: &mut AheadQueue) {
        for leased in ahead.take_all() {
            self.give_back(&leased.task, 0).await;
        }
    }

    /// Honours a `Retry-After` the worker gave, handing back what was leased ahead for it.
    async fn pause(&self, ahead: &mut AheadQueue, stop: &CancellationToken) {
        let pause = self.health.pause_ms.swap(0, Ordering::SeqCst);
        if pause > 0 {
            self.give_back_all(ahead).await;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(pause.into())) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// Probes `GET /healthz` until it answers 200; returns false if stopped first.
    /// Meanwhile, hands back whatever was leased ahead for the worker.
    async fn wait_until_healthy(&self, ahead: &mut AheadQueue, stop: &CancellationToken) -> bool {
        tracing::warn!(worker = %self.worker.id, "push worker out of rotation until its health check passes");
        loop {
            self.give_back_all(ahead).await;
            tokio::select! {
                () = tokio::time::sleep(self.config.health_interval) => {}
                () = stop.cancelled() => return false,
            }
            let url = format!("{}/healthz", self.worker.url.trim_end_matches('/'));
            let probe = self
                .http
                .get(url)
                .timeout(HEALTH_CHECK_TIMEOUT)
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                tracing::info!(worker = %self.worker.id, "push worker back in rotation");
                self.health.failures.store(0, Ordering::SeqCst);
                self.health.unhealthy.store(false, Ordering::SeqCst);
                return true;
            }
        }
    }
}
