//! The pulling workers `GET /workers` lists. This master notes each worker it hears from (a
//! lease request; a heartbeat, result or release it accepts): when, by which request, which
//! queues. The notes are kept in memory, bounded ([`MAX_NOTED`]), and listed for
//! `--pull-worker-seen-secs`. What each worker holds is read from the store's leases instead, so
//! that it is right whichever master leased the tasks, and a worker that only another master
//! hears from is listed too, as its leases show it (started, or last renewed, when).
//!
//! Noting costs one short lock per request, not one per task: a lease of 32 tasks, or 32 results
//! in one request, is one note (or one lock for all of them).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use common::{MAX_LEASE_QUEUES, PullWorker, WorkerRequest};

use super::{Engine, Result, view};
use crate::model::{LeasedBy, Millis};
use crate::store::Updated;

/// How long a worker is listed after this master last heard from it, unless
/// [`Engine::with_pull_worker_seen`] says otherwise.
pub const DEFAULT_PULL_WORKER_SEEN: Duration = Duration::from_secs(300);
/// Workers noted at most. Worker ids are the clients' to choose, so a client making up a new
/// one per request must not grow the master's memory without end.
const MAX_NOTED: usize = 10_000;

/// What this master heard from the pulling workers.
#[derive(Debug)]
pub(super) struct HeardWorkers {
    // A std mutex: held for one map update per request and never across an await, it is
    // cheaper than Tokio's.
    noted: Mutex<HashMap<String, Noted>>,
    /// How long a worker is listed after it was last heard from.
    seen_ms: Millis,
}

/// The last time a worker was heard from.
#[derive(Debug, Clone, PartialEq)]
struct Noted {
    at: Millis,
    request: WorkerRequest,
    /// The queues of its last lease request, and those of tasks it renewed, reported or
    /// released since.
    queues: Vec<String>,
}

/// One request heard: its worker, and the queues it concerns (those a lease asks for, or the
/// task's of any other request).
#[derive(Debug, Clone, Copy)]
pub(super) struct Heard<'a> {
    pub(super) worker: &'a str,
    pub(super) request: WorkerRequest,
    pub(super) queues: &'a [String],
}

impl Default for HeardWorkers {
    fn default() -> Self {
        HeardWorkers::new(DEFAULT_PULL_WORKER_SEEN)
    }
}

impl HeardWorkers {
    fn new(seen: Duration) -> HeardWorkers {
        HeardWorkers {
            noted: Mutex::default(),
            seen_ms: seen.as_millis() as Millis,
        }
    }

    /// Notes every request `heard` at `now`, under one lock.
    pub(super) fn note<'a>(&self, now: Millis, heard: impl IntoIterator<Item = Heard<'a>>) {
        let mut noted = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
        for heard in heard {
            match noted.get_mut(heard.worker) {
                Some(entry) => entry.update(heard, now),
                None => {
                    self.make_room(&mut noted, now);
                    let entry = Noted {
                        at: now,
                        request: heard.request,
                        queues: heard.queues.to_vec(),
                    };
                    noted.insert(heard.worker.to_owned(), entry);
                }
            }
        }
    }

    /// At [`MAX_NOTED`] entries, forgets those past the seen time; if that is not enough, the
    /// oldest tenth, so that a full map pays this once per many new workers, not for each.
    fn make_room(&self, noted: &mut HashMap<String, Noted>, now: Millis) {
        if noted.len() < MAX_NOTED {
            return;
        }
        noted.retain(|_, entry| now - entry.at < self.seen_ms);
        if noted.len() >= MAX_NOTED {
            let mut times: Vec<Millis> = noted.values().map(|entry| entry.at).collect();
            let (_, &mut oldest_kept, _) = times.select_nth_unstable(MAX_NOTED / 10);
            noted.retain(|_, entry| entry.at > oldest_kept);
        }
    }

    /// The workers heard from within the seen time of `now`, forgetting the others.
    fn recent(&self, now: Millis) -> Vec<(String, Noted)> {
        let mut noted = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
        noted.retain(|_, entry| now - entry.at < self.seen_ms);
        noted
            .iter()
            .map(|(id, n)| (id.clone(), n.clone()))
            .collect()
    }
}

impl Noted {
    /// A lease request says which queues the worker takes from now; any other request adds its
    /// task's queue (the worker may have leased it through another master).
    fn update(&mut self, heard: Heard<'_>, now: Millis) {
        self.at = now;
        self.request = heard.request;
        if heard.request == WorkerRequest::Lease {
            if self.queues != heard.queues {
                self.queues = heard.queues.to_vec();
            }
            return;
        }
        for queue in heard.queues {
            if !self.queues.contains(queue) && self.queues.len() < MAX_LEASE_QUEUES {
                self.queues.push(queue.clone());
            }
        }
    }
}

impl Engine {
    /// Lists a pulling worker for `seen` after this master last heard from it (and for as long
    /// as it holds a lease).
    pub fn with_pull_worker_seen(mut self, seen: Duration) -> Engine {
        self.heard = HeardWorkers::new(seen);
        self
    }

    /// Notes the worker of each lease that accepted `request`s were fenced by.
    pub(super) fn heard_from<'u>(
        &self,
        request: WorkerRequest,
        updated: impl IntoIterator<Item = &'u Updated>,
    ) {
        let heard = updated.into_iter().filter_map(|updated| {
            let lease = updated.before.lease.as_ref()?;
            Some(Heard {
                worker: &lease.worker_id,
                request,
                queues: std::slice::from_ref(&updated.before.queue),
            })
        });
        self.heard.note(self.clock.now_ms(), heard);
    }

    /// The pulling workers heard from within the seen time or holding leases now, by id. Of each,
    /// only the queues `in_scope` lets through are shown and counted, and a worker with none of
    /// those is left out.
    pub async fn pull_workers(&self, in_scope: impl Fn(&str) -> bool) -> Result<Vec<PullWorker>> {
        let leased = self.store.leased_by().await?;
        let now = self.clock.now_ms();
        let mut sightings: BTreeMap<String, Sighting> = BTreeMap::new();
        for (id, noted) in self.heard.recent(now) {
            sightings.insert(id, Sighting::noted(noted));
        }
        for lease in leased {
            let sighting = sightings.entry(lease.worker_id.clone()).or_default();
            sighting.holds(lease);
        }
        let workers = sightings.into_iter();
        Ok(workers
            .filter_map(|(id, s)| s.view(id, &in_scope))
            .collect())
    }
}

/// What is known of one worker: the last time it was heard from, and its queues with the tasks
/// it holds of each.
#[derive(Debug, Default)]
struct Sighting {
    last: Option<(Millis, WorkerRequest)>,
    queues: Vec<(String, u64)>,
}

impl Sighting {
    fn noted(noted: Noted) -> Sighting {
        Sighting {
            last: Some((noted.at, noted.request)),
            queues: noted.queues.into_iter().map(|queue| (queue, 0)).collect(),
        }
    }

    /// Adds the tasks it holds of one queue; their leases' latest start or heartbeat is when it
    /// was seen, if later than what this master heard.
    fn holds(&mut self, lease: LeasedBy) {
        self.seen(lease.last_leased_at, WorkerRequest::Lease);
        if let Some(beat) = lease.last_beat_at {
            self.seen(beat, WorkerRequest::Heartbeat);
        }
        match self
            .queues
            .iter_mut()
            .find(|(queue, _)| *queue == lease.queue)
        {
            Some((_, tasks)) => *tasks += lease.tasks,
            None => self.queues.push((lease.queue, lease.tasks)),
        }
    }

    fn seen(&mut self, at: Millis, request: WorkerRequest) {
        if self.last.is_none_or(|(last, _)| at > last) {
            self.last = Some((at, request));
        }
    }

    fn view(self, id: String, in_scope: impl Fn(&str) -> bool) -> Option<PullWorker> {
        let (at, request) = self.last?;
        let (queues, tasks): (Vec<String>, Vec<u64>) = self
            .queues
            .into_iter()
            .filter(|(queue, _)| in_scope(queue))
            .unzip();
        (!queues.is_empty()).then(|| PullWorker {
            id,
            queues,
            in_flight: u32::try_from(tasks.iter().sum::<u64>()).unwrap_or(u32::MAX),
            last_seen_at: view::timestamp(at),
            last_seen: request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000_000_000;

    fn queues(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn heard<'a>(worker: &'a str, request: WorkerRequest, queues: &'a [String]) -> Heard<'a> {
        Heard {
            worker,
            request,
            queues,
        }
    }

    #[test]
    fn a_lease_request_sets_the_queues_and_other_requests_add_their_tasks_queue() {
        let heard_workers = HeardWorkers::default();
        let (leased, other) = (queues(&["a", "b"]), queues(&["c"]));
        heard_workers.note(NOW, [heard("w", WorkerRequest::Lease, &leased)]);
        heard_workers.note(NOW + 1, [heard("w", WorkerRequest::Result, &other)]);
        let (_, noted) = heard_workers.recent(NOW + 1).remove(0);
        assert_eq!(noted.queues, ["a", "b", "c"]);
        assert_eq!((noted.at, noted.request), (NOW + 1, WorkerRequest::Result));
        heard_workers.note(NOW + 2, [heard("w", WorkerRequest::Lease, &other)]);
        assert_eq!(heard_workers.recent(NOW + 2)[0].1.queues, ["c"]);
    }

    #[test]
    fn a_worker_is_forgotten_once_the_seen_time_has_passed() {
        let heard_workers = HeardWorkers::new(Duration::from_secs(300));
        let default = queues(&["default"]);
        heard_workers.note(NOW, [heard("w", WorkerRequest::Lease, &default)]);
        assert_eq!(heard_workers.recent(NOW + 299_999).len(), 1);
        assert!(heard_workers.recent(NOW + 300_000).is_empty());
    }

    #[test]
    fn a_full_map_forgets_its_oldest_tenth_to_note_a_new_worker() {
        let heard_workers = HeardWorkers::default();
        let default = queues(&["default"]);
        let ids: Vec<String> = (0..MAX_NOTED).map(|i| format!("w{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let at = NOW + i as Millis;
            heard_workers.note(at, [heard(id, WorkerRequest::Lease, &default)]);
        }
        let later = NOW + MAX_NOTED as Millis;
        heard_workers.note(later, [heard("new", WorkerRequest::Lease, &default)]);
        let recent = heard_workers.recent(later);
        assert_eq!(recent.len(), MAX_NOTED - MAX_NOTED / 10);
        assert!(recent.iter().any(|(id, _)| id == "new"));
        assert!(!recent.iter().any(|(id, _)| id == "w0"));
    }

    fn leased_by(queue: &str, tasks: u64, leased: Millis, beat: Option<Millis>) -> LeasedBy {
        LeasedBy {
            worker_id: "w".into(),
            queue: queue.into(),
            tasks,
            last_leased_at: leased,
            last_beat_at: beat,
        }
    }

    #[test]
    fn a_worker_only_the_store_knows_was_seen_at_its_latest_lease_or_heartbeat() {
        let mut sighting = Sighting::default();
        sighting.holds(leased_by("a", 2, NOW, Some(NOW + 5)));
        sighting.holds(leased_by("b", 1, NOW + 9, None));
        let worker = sighting.view("w".into(), |_| true).unwrap();
        assert_eq!(worker.queues, ["a", "b"]);
        assert_eq!(worker.in_flight, 3);
        assert_eq!(worker.last_seen, WorkerRequest::Lease);
        assert_eq!(worker.last_seen_at, view::timestamp(NOW + 9));
    }

    #[test]
    fn a_scope_shows_and_counts_only_its_queues() {
        let noted = Noted {
            at: NOW + 10,
            request: WorkerRequest::Result,
            queues: queues(&["billing-eu", "reports"]),
        };
        let mut sighting = Sighting::noted(noted);
        sighting.holds(leased_by("reports", 4, NOW, None));
        sighting.holds(leased_by("billing-eu", 1, NOW, None));
        let scoped = |queue: &str| queue.starts_with("billing-");
        let worker = sighting.view("w".into(), scoped).unwrap();
        assert_eq!(
            (worker.queues, worker.in_flight),
            (queues(&["billing-eu"]), 1)
        );
        assert_eq!(worker.last_seen, WorkerRequest::Result);
        let elsewhere = Sighting::noted(Noted {
            at: NOW,
            request: WorkerRequest::Lease,
            queues: queues(&["reports"]),
        });
        assert!(elsewhere.view("w".into(), scoped).is_none());
    }
}
