//! A lease group's gates: read once per group ([`gates`]), kept in memory while the group deals
//! its jobs one after the other, then confirmed, locked, once the group's leases are written,
//! and written with them.
//!
//! Dealing by gates read without a lock lets groups of one queue, on one master or several,
//! read and write at once; only the confirmation is one group at a time, each holding its
//! queues' rows from that lock to its commit (a few round trips, not the whole group). Locked
//! from the start instead, groups of a queue with settings ran one after the other, and drained
//! it at 73 % of the rate of a queue without, against 91–96 % now (`bench limits`,
//! BENCHMARKS.md). A lease the gate refuses when confirmed (a limit that binds, with another
//! group's leases confirmed since the read) is put back as it was: the task stays queued, its
//! attempt uncounted.
//!
//! A group writes nothing until it has dealt every job (one `UPDATE` for all its leases), so the
//! table cannot tell a job what the jobs before it in the same group took. The gates in memory
//! do: each job's leases are added to its queue's in-flight count and to its keys' counts, and
//! the bucket and the cursor go on from where the job before left them. The group's results,
//! decided before its leases and also unwritten, are taken off the same counts ([`Freed`]): a
//! worker that reports and leases in one request finds the slot its result frees, as it would
//! with its result committed first.
//!
//! [`gates`]: super::gates

use std::collections::{HashMap, HashSet};

use common::{TaskId, TaskState};
use sqlx::PgConnection;

use super::gates::{self, Written};
use super::lanes::{self, Walk};
use super::lease::{LeaseJob, rank, ready_tasks};
use super::look::Needed;
use crate::model::{Admission, Gate, Lane, LaneTasks, Millis, TaskRecord};
use crate::store::{Deal, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// Tasks the group's changes take out of `leased`, by queue and by key: slots its leases may
/// fill, since both are in the same commit.
#[derive(Debug, Default)]
pub(super) struct Freed {
    queues: HashMap<String, u32>,
    keys: HashMap<String, HashMap<String, i64>>,
}

impl Freed {
    /// Counts `after`, as the group's changes leave it, if it was leased in the table before.
    pub(super) fn count(&mut self, before: &TaskRecord, after: &TaskRecord) {
        if before.state != TaskState::Leased || after.state == TaskState::Leased {
            return;
        }
        *self.queues.entry(before.queue.clone()).or_default() += 1;
        if let Some(key) = &before.concurrency_key {
            let keys = self.keys.entry(before.queue.clone()).or_default();
            *keys.entry(key.clone()).or_default() -= 1;
        }
    }
}

/// One queue that needs its gate, as the group leaves it.
#[derive(Debug)]
struct Open {
    /// As the group's deals so far leave it.
    gate: Gate,
    /// Whether the queue had settings when the group first looked: its tasks without a key are
    /// then admitted here, not read with the queues that have none. (A setting committed between
    /// that look and the lock gates its keyed tasks at once, its others from the next group.)
    gated: bool,
    /// Whether it has ready tasks with a concurrency key, dealt by the key rotation.
    keyed: bool,
    /// Tasks leased (positive) or freed (negative) per key by the group, not yet written.
    pending: HashMap<String, i64>,
}

/// What one job was offered by one gated queue: each task with where it came from, best first.
#[derive(Debug)]
pub(super) struct Offer {
    queue: String,
    pub candidates: Vec<(Lane, TaskRecord)>,
}

impl Offer {
    pub(super) fn tasks(&self) -> impl Iterator<Item = &TaskRecord> {
        self.candidates.iter().map(|(_, task)| task)
    }

    /// The tasks `chosen`, best first; the others go back to the front of the set's `offers`,
    /// in their order.
    pub(super) fn give_back(self, chosen: &HashSet<i64>, offers: &mut Offers) -> Vec<TaskRecord> {
        let (taken, left): (Vec<_>, Vec<_>) = self
            .candidates
            .into_iter()
            .partition(|(_, task)| chosen.contains(&task.id.0));
        if let Some(rest) = offers.get_mut(&self.queue) {
            rest.splice(0..0, left);
        }
        taken.into_iter().map(|(_, task)| task).collect()
    }
}

/// What each gated queue of a set offers the set's members, best first: what they have not
/// taken yet.
pub(super) type Offers = HashMap<String, Vec<(Lane, TaskRecord)>>;

/// One read through a gate: at what time, the engine's key rotation, how many tasks, and none
/// of which.
struct Read<'a> {
    now: Millis,
    deal: Deal,
    wanted: u32,
    taken: &'a [i64],
}

/// The gates of a group's queues that have settings or keyed tasks.
#[derive(Debug, Default)]
pub(super) struct Gates {
    open: HashMap<String, Open>,
    /// What the group's jobs took through the gates, in the order dealt.
    took: Vec<Took>,
}

/// A task a job of the group took through its queue's gate.
#[derive(Debug)]
struct Took {
    /// The job's place in the group.
    job: usize,
    queue: String,
    lane: Lane,
    id: i64,
}

/// What the gates, locked, confirm of the group's leases: the gates to write, the leases they
/// refuse (to put back as they were), and for each job refused some, when its queue reopens.
#[derive(Debug, Default)]
pub(super) struct Confirmed {
    pub written: Vec<Written>,
    pub refused: HashSet<i64>,
    pub reopens: Vec<(usize, String, Millis)>,
}

impl Gates {
    /// Reads the gates of the queues that need them, without a lock, counting the tasks in
    /// flight of those with a cap: what the group deals by, until [`confirm`](Gates::confirm)
    /// checks it against the gates locked. Without any, reads nothing.
    pub(super) async fn open(
        conn: &mut PgConnection,
        mut needed: Vec<Needed>,
        freed: Freed,
    ) -> Result<Gates> {
        if needed.is_empty() {
            return Ok(Gates::default());
        }
        needed.sort_unstable();
        let names: Vec<String> = needed.iter().map(|need| need.queue.clone()).collect();
        let (stored, in_flight) = gates::read(conn, &names).await?;
        Ok(Gates::from_parts(needed, stored, &in_flight, freed))
    }

    fn from_parts(
        needed: Vec<Needed>,
        mut stored: HashMap<String, gates::Stored>,
        in_flight: &HashMap<String, u32>,
        mut freed: Freed,
    ) -> Gates {
        let mut open = HashMap::new();
        for need in needed {
            let queue = need.queue;
            let (settings, bucket, cursor) = stored.remove(&queue).unwrap_or_default();
            let freed_here = freed.queues.get(&queue).copied().unwrap_or(0);
            let gate = Gate {
                in_flight: in_flight
                    .get(&queue)
                    .map_or(0, |n| n.saturating_sub(freed_here)),
                queue: queue.clone(),
                settings,
                bucket,
                cursor,
            };
            let state = Open {
                gated: need.gated,
                keyed: need.keyed,
                pending: freed.keys.remove(&queue).unwrap_or_default(),
                gate,
            };
            open.insert(queue, state);
        }
        Gates {
            open,
            took: Vec::new(),
        }
    }

    /// Whether no queue of the group needs its gate.
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Whether `queue`'s tasks without a key are read with the queues without settings.
    pub(super) fn reads_plain(&self, queue: &str) -> bool {
        self.open.get(queue).is_none_or(|open| !open.gated)
    }

    /// What the gated queues of a set of queues offer its members (`jobs`, in their order)
    /// together: for each, as many of its best tasks as its gate admits them all, none of
    /// `taken`, read once for the whole set. A gate admits the set no more than it admits its
    /// first member, since each member's leases take their number off the cap and the bucket;
    /// [`offer`](Gates::offer) then gives each member its share, as its gate admits it then.
    pub(super) async fn offer_set(
        &self,
        conn: &mut PgConnection,
        jobs: &[&LeaseJob],
        taken: &[i64],
    ) -> Result<Offers> {
        let mut offers = Offers::new();
        let Some(first) = jobs.first() else {
            return Ok(offers);
        };
        let now = jobs.iter().map(|job| job.now).max().unwrap_or_default();
        let wanted = jobs
            .iter()
            .map(|job| job.query.max_tasks)
            .fold(0, u32::saturating_add);
        for queue in &first.query.queues {
            let Some(open) = self.open.get(queue) else {
                continue;
            };
            let admission = (first.rules.admit)(&open.gate, now);
            let wanted = admission.tasks.min(wanted);
            if wanted > 0 {
                let read = Read {
                    now,
                    deal: first.rules.deal,
                    wanted,
                    taken,
                };
                let candidates = open.candidates(conn, &admission, read).await?;
                offers.insert(queue.clone(), candidates);
            }
        }
        Ok(offers)
    }

    /// What each gated queue of `job` offers it of the set's `offers`: as many of the best tasks
    /// left as its gate admits now, taken out of them (what the job does not take goes back,
    /// [`Offer::give_back`]). Each admission that says when the gate reopens is added to
    /// `reopens`.
    pub(super) fn offer(
        &self,
        job: &LeaseJob,
        offers: &mut Offers,
        reopens: &mut Vec<(String, Millis)>,
    ) -> Vec<Offer> {
        let mut offered = Vec::new();
        for queue in &job.query.queues {
            let Some(open) = self.open.get(queue) else {
                continue;
            };
            let admission = (job.rules.admit)(&open.gate, job.now);
            if let Some(at) = admission.reopens_at {
                reopens.push((queue.clone(), at));
            }
            let wanted = admission.tasks.min(job.query.max_tasks) as usize;
            let candidates = match offers.get_mut(queue) {
                Some(left) => left.drain(..wanted.min(left.len())).collect(),
                None => Vec::new(),
            };
            offered.push(Offer {
                queue: queue.clone(),
                candidates,
            });
        }
        offered
    }

    /// Moves each gate of `offers` on by what `job` took of it (`chosen`): its in-flight and
    /// key counts, and its bucket and cursor as the engine's `settle` leaves them.
    pub(super) fn settle(
        &mut self,
        (job_no, job): (usize, &LeaseJob),
        offers: &[Offer],
        chosen: &HashSet<i64>,
        reopens: &mut Vec<(String, Millis)>,
    ) {
        for offer in offers {
            let open = self
                .open
                .get_mut(&offer.queue)
                .expect("an offer of an open gate");
            let mut taken: Vec<Lane> = Vec::new();
            for (lane, task) in &offer.candidates {
                if chosen.contains(&task.id.0) {
                    taken.push(lane.clone());
                    self.took.push(Took {
                        job: job_no,
                        queue: offer.queue.clone(),
                        lane: lane.clone(),
                        id: task.id.0,
                    });
                }
            }
            let after = (job.rules.settle)(&open.gate, job.now, &taken);
            if let Some(at) = after.reopens_at {
                reopens.push((offer.queue.clone(), at));
            }
            open.gate.in_flight = open.gate.in_flight.saturating_add(taken.len() as u32);
            for lane in taken {
                if let Lane::Key(key) = lane {
                    *open.pending.entry(key).or_default() += 1;
                }
            }
            open.gate.bucket = after.bucket;
            open.gate.cursor = after.cursor;
        }
    }

    /// Whether `queue`'s tasks are leased through its gate.
    pub(super) fn is_open(&self, queue: &str) -> bool {
        self.open.contains_key(queue)
    }

    /// Confirms the group's leases, written, against the gates of their queues locked now (in
    /// name order, in one statement): each job in turn keeps of what it took what the gate, as
    /// everyone's confirmed leases leave it, admits it, best first; the rest is refused. The
    /// gates are then what the kept leases leave them, to be written.
    ///
    /// So a group reads and writes without holding any queue's row, and holds the rows of the
    /// queues it took from only to count, confirm and commit: two groups of one queue overlap
    /// all but that. Exact on every master: a group confirms after every group that confirmed
    /// before it committed (the lock is held to the commit), and its counts, read after the
    /// lock, see those leases and its own.
    pub(super) async fn confirm(
        &self,
        conn: &mut PgConnection,
        jobs: &[LeaseJob],
    ) -> Result<Confirmed> {
        let mut confirmed = Confirmed::default();
        let mut names: Vec<String> = self.took.iter().map(|t| t.queue.clone()).collect();
        if names.is_empty() {
            return Ok(confirmed);
        }
        names.sort_unstable();
        names.dedup();
        let mut stored = gates::lock(conn, &names).await?;
        let capped: Vec<String> = stored
            .iter()
            .filter(|(_, (settings, ..))| settings.counts_leases())
            .map(|(queue, _)| queue.clone())
            .collect();
        let in_flight = match capped.is_empty() {
            true => HashMap::new(),
            false => gates::in_flight(conn, &capped).await?,
        };
        for queue in names {
            let (settings, bucket, cursor) = stored.remove(&queue).unwrap_or_default();
            let took: Vec<&Took> = self.took.iter().filter(|t| t.queue == queue).collect();
            // The counts hold the group's leases, written: the gate starts without them.
            let leased = in_flight.get(&queue).copied().unwrap_or(0);
            // Under a key limit above the queue's leases (the group's own counted), no key has
            // reached it: the keys are counted only when one may have.
            let mut keys = match settings.key_limit {
                Some(limit) if leased >= limit => others_by_key(conn, &queue, &took).await?,
                _ => HashMap::new(),
            };
            let mut gate = Gate {
                in_flight: leased.saturating_sub(took.len() as u32),
                queue: queue.clone(),
                settings,
                bucket,
                cursor,
            };
            let read = (gate.bucket, gate.cursor.clone());
            for same_job in took.chunk_by(|a, b| a.job == b.job) {
                let job = &jobs[same_job[0].job];
                let admission = (job.rules.admit)(&gate, job.now);
                let mut kept: Vec<Lane> = Vec::new();
                for took in same_job {
                    let key_room = match &took.lane {
                        Lane::Key(key) => admission.room(keys.get(key).copied().unwrap_or(0)),
                        Lane::Unkeyed => admission.tasks,
                    };
                    if kept.len() < admission.tasks as usize && key_room > 0 {
                        if let Lane::Key(key) = &took.lane {
                            *keys.entry(key.clone()).or_default() += 1;
                        }
                        kept.push(took.lane.clone());
                    } else {
                        confirmed.refused.insert(took.id);
                    }
                }
                let after = (job.rules.settle)(&gate, job.now, &kept);
                if kept.len() < same_job.len() {
                    // Told when the gate as locked reopens, beside what the dealing told.
                    for at in admission.reopens_at.into_iter().chain(after.reopens_at) {
                        confirmed.reopens.push((same_job[0].job, queue.clone(), at));
                    }
                }
                gate.in_flight = gate.in_flight.saturating_add(kept.len() as u32);
                gate.bucket = after.bucket;
                gate.cursor = after.cursor;
            }
            if (gate.bucket, gate.cursor.clone()) != read {
                confirmed.written.push(Written {
                    queue,
                    bucket: gate.bucket,
                    cursor: gate.cursor,
                });
            }
        }
        Ok(confirmed)
    }
}

/// Tasks of `queue` leased now per key the group took (`took`), but for the group's own.
async fn others_by_key(
    conn: &mut PgConnection,
    queue: &str,
    took: &[&Took],
) -> Result<HashMap<String, u32>> {
    let mut ours: HashMap<String, u32> = HashMap::new();
    for took in took {
        if let Lane::Key(key) = &took.lane {
            *ours.entry(key.clone()).or_default() += 1;
        }
    }
    if ours.is_empty() {
        return Ok(ours);
    }
    let keys: Vec<String> = ours.keys().cloned().collect();
    let mut leased = gates::keys_leased(conn, queue, &keys).await?;
    for (key, n) in &mut leased {
        *n = n.saturating_sub(ours.get(key).copied().unwrap_or(0));
    }
    Ok(leased)
}

impl Open {
    /// The best `wanted` ready tasks the gate admits: without a key by priority (when the queue
    /// has settings; otherwise they are read with the queues that have none), with one as the
    /// key rotation deals them.
    async fn candidates(
        &self,
        conn: &mut PgConnection,
        admission: &Admission,
        read: Read<'_>,
    ) -> Result<Vec<(Lane, TaskRecord)>> {
        let Read {
            now,
            deal,
            wanted,
            taken,
        } = read;
        let queue = std::slice::from_ref(&self.gate.queue);
        let mut candidates: Vec<(Lane, TaskRecord)> = match self.gated {
            true => ready_tasks(conn, queue, now, i64::from(wanted), taken).await?,
            false => Vec::new(),
        }
        .into_iter()
        .map(|task| (Lane::Unkeyed, task))
        .collect();
        if !self.keyed {
            return Ok(candidates);
        }
        let lanes = self.lanes(conn, admission, wanted, taken).await?;
        if lanes.is_empty() {
            return Ok(candidates);
        }
        let mut records: HashMap<TaskId, TaskRecord> = HashMap::new();
        let lanes = lanes
            .into_iter()
            .map(|lane| LaneTasks {
                key: lane.key,
                tasks: lane
                    .tasks
                    .into_iter()
                    .map(|task| {
                        let id = task.id;
                        records.insert(id, task);
                        id
                    })
                    .collect(),
            })
            .collect();
        for (lane, id) in deal(lanes, wanted) {
            candidates.extend(records.remove(&id).map(|task| (lane, task)));
        }
        // The best of both, as the embedded store takes them. (The rotation dealt at most one
        // task per key per round, so which of its tasks go when there are too many does not
        // favour a key.)
        candidates.sort_by_key(|(_, task)| rank(task));
        candidates.truncate(wanted as usize);
        Ok(candidates)
    }

    /// The concurrency keys with ready tasks and room, in rotation order from the cursor, each
    /// with its best tasks (no more than its room), until they are `wanted` keys or the round
    /// is done.
    async fn lanes(
        &self,
        conn: &mut PgConnection,
        admission: &Admission,
        wanted: u32,
        taken: &[i64],
    ) -> Result<Vec<LaneTasks<TaskRecord>>> {
        // A key holds no more leases than its queue: under a key limit above the queue's leases
        // and all this read can add, no key reaches it, and none is counted.
        let reach = self.gate.in_flight.saturating_add(wanted);
        let walk = Walk {
            queue: &self.gate.queue,
            cursor: self.gate.cursor.as_deref(),
            per_key: admission.per_key.filter(|limit| reach >= *limit),
            pending: &self.pending,
            wanted,
        };
        let rooms: Vec<(String, u32)> = lanes::keys(conn, &walk)
            .await?
            .into_iter()
            .map(|(key, leased)| (key, admission.room(leased).min(wanted)))
            .filter(|(_, room)| *room > 0)
            .take(wanted as usize)
            .collect();
        lanes::read(conn, &self.gate.queue, rooms, wanted, taken).await
    }
}
