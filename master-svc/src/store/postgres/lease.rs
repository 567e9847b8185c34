//! Leasing for a whole group of lease requests in one read per set of queues, however many
//! requests.
//!
//! Requests that ask for the same queues share one read of the ready tasks: their best tasks,
//! as many as they want together, locked, skipping rows another master is leasing at this very
//! moment rather than waiting for it (no task goes to two leasers, no master waits on another's
//! choice). Each queue is read separately so that every read is a short walk of the
//! `tasks_ready` index. The tasks are then dealt to the requests in arrival order and leased by
//! the engine's rule; the group writes them with its changes, in one `UPDATE` ([`writer`]).
//!
//! The first set's read also looks at every queue of the group ([`look`]). A queue with
//! settings, or with ready tasks that have a concurrency key, is then read through its gate
//! instead ([`admission`]): read once for the set, as much as the gate admits all its requests,
//! then each request in turn gets what the gate admits it, merged with what the shared read
//! offers it by priority. A group of queues with neither costs the statements it cost before
//! flow control.
//!
//! [`writer`]: super::writer
//! [`admission`]: super::admission
//! [`look`]: super::look

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, Row};

use super::admission::{Freed, Gates, Offer, Offers};
use super::gates;
use super::look::{self, FirstRead};
use super::rows::{columns, task_from_row, write_all};
use crate::model::{LeaseQuery, Millis, QueueBacklog, TaskRecord};
use crate::store::{LeaseRules, Leased, StoreError, db};

type Result<T> = std::result::Result<T, StoreError>;

/// One lease request of a group: what is asked, at what time, and the engine's rule.
#[derive(Debug)]
pub(super) struct LeaseJob {
    pub query: LeaseQuery,
    pub now: Millis,
    pub rules: LeaseRules,
}

/// What a group's leases chose, to be written and then answered.
#[derive(Debug, Default)]
pub(super) struct Chosen {
    /// Each job's tasks, leased by its rule, in the jobs' order.
    pub dealt: Vec<Vec<TaskRecord>>,
    /// Each job's queues whose gates reopen by themselves, and when.
    pub reopens: Vec<Vec<(String, Millis)>>,
    /// The gates the leases went through, to confirm once written.
    pub gates: Gates,
    /// Each task leased through a gate, as it was before: what a refused lease is put back as.
    pub before: HashMap<i64, TaskRecord>,
}

/// What ranks ready tasks: highest priority, then oldest `run_at`, then lowest id.
pub(super) fn rank(task: &TaskRecord) -> (std::cmp::Reverse<i32>, Millis, i64) {
    (std::cmp::Reverse(task.priority), task.run_at, task.id.0)
}

/// Chooses ready tasks for every job, none of `held`, and leases each by its job's rule; the
/// gates of the jobs' queues admit them, counting the slots the group's changes free
/// (`freed`), as read without a lock. Nothing of the tasks is written: the caller writes the
/// leases ([`write_all`]), [`confirm`]s them, then [`answer`]s. Calls `gates_held` once the
/// gates are read (or known to be none), before reading through them.
pub(super) async fn choose(
    conn: &mut PgConnection,
    jobs: &[LeaseJob],
    held: Vec<i64>,
    freed: Freed,
    gates_held: impl FnOnce(),
) -> Result<Chosen> {
    let mut by_queues: HashMap<&[String], Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        by_queues.entry(&job.query.queues).or_default().push(i);
    }
    let mut sets = by_queues.into_iter();
    let mut chosen = Chosen {
        dealt: vec![Vec::new(); jobs.len()],
        reopens: vec![Vec::new(); jobs.len()],
        gates: Gates::default(),
        before: HashMap::new(),
    };
    let Some((queues, members)) = sets.next() else {
        return Ok(chosen);
    };
    // Rows this transaction locked for one set of queues are not skipped by the read for another
    // set that shares a queue (the lock is its own), so they are excluded by id, as are the
    // caller's.
    let mut taken = held;
    let looked = look::look_and_read(conn, first_read(jobs, queues, &members, &taken)).await?;
    let mut gates = Gates::open(conn, looked.needed, freed).await?;
    gates_held();
    let mut turn = Turn {
        conn,
        jobs,
        gates: &mut gates,
        taken: &mut taken,
        chosen: &mut chosen,
    };
    turn.deal_set(&members, looked.pool).await?;
    for (queues, members) in sets {
        let pool = shared_read(&mut turn, queues, &members).await?;
        turn.deal_set(&members, pool).await?;
    }
    chosen.gates = gates;
    Ok(chosen)
}

/// The first read's question: every queue of the group (sorted, so that its gates are locked
/// in name order), the first set's, and as many of its tasks as its members want together.
fn first_read<'a>(
    jobs: &[LeaseJob],
    set: &'a [String],
    members: &[usize],
    taken: &'a [i64],
) -> FirstRead<'a> {
    let mut all: Vec<String> = jobs.iter().flat_map(|j| j.query.queues.clone()).collect();
    all.sort_unstable();
    all.dedup();
    FirstRead {
        all,
        set,
        wanted: wanted(jobs, members),
        now: jobs.iter().map(|job| job.now).max().unwrap_or_default(),
        taken,
    }
}

fn wanted(jobs: &[LeaseJob], members: &[usize]) -> i64 {
    members
        .iter()
        .map(|&i| i64::from(jobs[i].query.max_tasks))
        .sum()
}

/// The group as it deals: its transaction, its jobs, its gates, the tasks it took, and what
/// it chose for each job.
struct Turn<'a> {
    conn: &'a mut PgConnection,
    jobs: &'a [LeaseJob],
    gates: &'a mut Gates,
    taken: &'a mut Vec<i64>,
    chosen: &'a mut Chosen,
}

impl Turn<'_> {
    /// Deals to each member of a set in turn, from the set's shared read and its gates.
    async fn deal_set(&mut self, members: &[usize], mut pool: Vec<TaskRecord>) -> Result<()> {
        let mut offers = match self.gates.is_empty() {
            true => Offers::new(),
            false => {
                let jobs: Vec<&LeaseJob> = members.iter().map(|&i| &self.jobs[i]).collect();
                self.gates.offer_set(self.conn, &jobs, self.taken).await?
            }
        };
        for &i in members {
            let job = &self.jobs[i];
            let reopens = &mut self.chosen.reopens[i];
            let dealt = deal((i, job), &mut pool, &mut offers, self.gates, reopens);
            let tasks = dealt
                .into_iter()
                .map(|task| {
                    if self.gates.is_open(&task.queue) {
                        self.chosen.before.insert(task.id.0, task.clone());
                    }
                    (job.rules.grant)(task, &job.query, job.now)
                })
                .collect::<Vec<_>>();
            self.taken.extend(tasks.iter().map(|task| task.id.0));
            self.chosen.dealt[i] = tasks;
        }
        Ok(())
    }
}

/// The best ready tasks of the set's queues read without a gate, as many as its members want
/// together.
async fn shared_read(
    turn: &mut Turn<'_>,
    queues: &[String],
    members: &[usize],
) -> Result<Vec<TaskRecord>> {
    let gates = &turn.gates;
    let plain: Cow<'_, [String]> = match gates.is_empty() {
        true => Cow::Borrowed(queues),
        false => queues
            .iter()
            .filter(|q| gates.reads_plain(q))
            .cloned()
            .collect(),
    };
    if plain.is_empty() {
        return Ok(Vec::new());
    }
    let now = members
        .iter()
        .map(|&i| turn.jobs[i].now)
        .max()
        .unwrap_or_default();
    let wanted = wanted(turn.jobs, members);
    ready_tasks(turn.conn, &plain, now, wanted, turn.taken).await
}

/// One job's tasks, to lease: the best of what the shared read left (`pool`) and what its gated
/// queues offer it of the set's `offers`, `max_tasks` at most, best first. What it takes leaves
/// the pool and the offers.
fn deal(
    (job_no, job): (usize, &LeaseJob),
    pool: &mut Vec<TaskRecord>,
    offers: &mut Offers,
    gates: &mut Gates,
    reopens: &mut Vec<(String, Millis)>,
) -> Vec<TaskRecord> {
    let offered = match gates.is_empty() {
        true => Vec::new(),
        false => gates.offer(job, offers, reopens),
    };
    let tasks: Vec<TaskRecord> = match offered.is_empty() {
        true => pool
            .drain(..pool.len().min(job.query.max_tasks as usize))
            .collect(),
        false => merge((job_no, job), pool, (offered, offers), gates, reopens),
    };
    tasks
}

/// The best `max_tasks` of `pool` and what the gates `offered` together, taken out of the pool,
/// best first; each offering gate moved on by what it gave, and what it offered and was not
/// taken given back to the set's `offers`.
fn merge(
    (job_no, job): (usize, &LeaseJob),
    pool: &mut Vec<TaskRecord>,
    (offered, offers): (Vec<Offer>, &mut Offers),
    gates: &mut Gates,
    reopens: &mut Vec<(String, Millis)>,
) -> Vec<TaskRecord> {
    let max = job.query.max_tasks as usize;
    let mut best: Vec<&TaskRecord> = pool.iter().take(max).collect();
    best.extend(offered.iter().flat_map(Offer::tasks));
    best.sort_by_key(|task| rank(task));
    best.truncate(max);
    let chosen: HashSet<i64> = best.iter().map(|task| task.id.0).collect();
    gates.settle((job_no, job), &offered, &chosen, reopens);
    let mut tasks: Vec<TaskRecord> = pool.extract_if(.., |t| chosen.contains(&t.id.0)).collect();
    for offer in offered {
        tasks.extend(offer.give_back(&chosen, offers));
    }
    tasks.sort_by_key(rank);
    tasks
}

/// Answers every job with what it was dealt, once written; a job dealt nothing also gets its
/// queues' backlog, read after the group's writes.
pub(super) async fn answer(
    conn: &mut PgConnection,
    jobs: &[LeaseJob],
    chosen: Chosen,
) -> Result<Vec<Leased>> {
    let mut backlogs: HashMap<&[String], Vec<QueueBacklog>> = HashMap::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for ((job, tasks), reopens) in jobs.iter().zip(chosen.dealt).zip(chosen.reopens) {
        let queues = job.query.queues.as_slice();
        let backlog = match (tasks.is_empty(), backlogs.get(queues)) {
            (false, _) => Vec::new(),
            (true, Some(known)) => known.clone(),
            (true, None) => {
                let known = backlog(conn, queues).await?;
                backlogs.entry(queues).or_insert(known).clone()
            }
        };
        answers.push(Leased {
            tasks,
            backlog,
            reopens,
        });
    }
    Ok(answers)
}

/// Confirms the group's leases, written, through their gates locked now
/// ([`Gates::confirm`]): a lease a gate refuses is put back as it was and leaves its job's
/// answer. Then writes the gates.
pub(super) async fn confirm(
    conn: &mut PgConnection,
    jobs: &[LeaseJob],
    chosen: &mut Chosen,
) -> Result<()> {
    let confirmed = chosen.gates.confirm(conn, jobs).await?;
    if !confirmed.refused.is_empty() {
        let back: Vec<&TaskRecord> = confirmed
            .refused
            .iter()
            .map(|id| &chosen.before[id])
            .collect();
        write_all(conn, &back).await.map_err(db)?;
        for tasks in &mut chosen.dealt {
            tasks.retain(|task| !confirmed.refused.contains(&task.id.0));
        }
    }
    for (job, queue, at) in confirmed.reopens {
        let reopens = &mut chosen.reopens[job];
        if !reopens
            .iter()
            .any(|known| known.0 == queue && known.1 == at)
        {
            reopens.push((queue, at));
        }
    }
    gates::write(conn, &confirmed.written).await
}

/// Leases for every job, alone in a transaction: choose, write, confirm, answer.
#[cfg(test)]
pub(super) async fn lease_all(conn: &mut PgConnection, jobs: &[LeaseJob]) -> Result<Vec<Leased>> {
    let mut chosen = choose(conn, jobs, Vec::new(), Freed::default(), || ()).await?;
    let granted: Vec<&TaskRecord> = chosen.dealt.iter().flatten().collect();
    write_all(conn, &granted).await.map_err(db)?;
    confirm(conn, jobs, &mut chosen).await?;
    answer(conn, jobs, chosen).await
}

/// The best `$3` ready tasks without a concurrency key of the queues `$1` at `$2`, none of
/// `$4`, locked: a walk of `tasks_ready` per queue, its condition stated in the words of the
/// index's (PostgreSQL uses a partial index only for a query that implies its condition).
pub(super) const READY: &str = concat!(
    "SELECT r.* FROM unnest($1::text[]) AS q (name) CROSS JOIN LATERAL (SELECT ",
    columns!(),
    " FROM tasks WHERE queue = q.name AND state = 'queued' AND NOT delayed \
     AND concurrency_key IS NULL AND run_at <= $2 AND id <> ALL($4) \
     ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS r \
     ORDER BY r.priority DESC, r.run_at, r.id LIMIT $3",
);

/// Up to `limit` ready tasks without a concurrency key of `queues`, best first, locked; none of
/// `taken`. (Due delayed tasks were promoted by the group's first read,
/// [`look`](super::look).)
pub(super) async fn ready_tasks(
    conn: &mut PgConnection,
    queues: &[String],
    now: Millis,
    limit: i64,
    taken: &[i64],
) -> Result<Vec<TaskRecord>> {
    let rows = sqlx::query(READY)
        .bind(queues)
        .bind(now)
        .bind(limit)
        .bind(taken)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    rows.iter()
        .map(task_from_row)
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}

/// Whether queue `q.name` has tasks in `$state`, from the counts (`queue_counts` plus the
/// deltas not yet folded in, this transaction's own included): exact, and one look-up whatever
/// the table holds. (An `EXISTS` on `tasks` read past every dead row a drain left behind, or the
/// whole table when the statistics were stale: 20 ms per empty lease after a 100,000-task drain,
/// in the transaction that also commits the results the lease carried.)
macro_rules! any_in {
    ($state:literal) => {
        concat!(
            "COALESCE((SELECT SUM(n) FROM (SELECT n FROM queue_counts \
             WHERE queue = q.name AND state = '",
            $state,
            "' UNION ALL \
             SELECT delta FROM queue_count_changes \
             WHERE queue = q.name AND state = '",
            $state,
            "') AS c), 0) > 0"
        )
    };
}

/// What the engine needs of each of `queues` to tell whether it is drained, in one statement.
pub(super) async fn backlog(
    conn: &mut PgConnection,
    queues: &[String],
) -> Result<Vec<QueueBacklog>> {
    let rows = sqlx::query(concat!(
        "SELECT COALESCE(s.sealed, false), ",
        any_in!("queued"),
        ", ",
        any_in!("leased"),
        " FROM unnest($1::text[]) WITH ORDINALITY AS q (name, n) \
         LEFT JOIN queues AS s ON s.name = q.name ORDER BY q.n",
    ))
    .bind(queues)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(QueueBacklog {
                sealed: row.try_get(0)?,
                queued: row.try_get(1)?,
                leased: row.try_get(2)?,
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(db)
}
