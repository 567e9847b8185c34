//! The masters sharing the store (`GET /masters`). Each writes a heartbeat row into the store
//! every [`MASTER_BEAT`] ([`Engine::run_heartbeat`]) and deletes it when it stops. Who is listed
//! is decided here, not in the store: a master whose row was written within [`FRESH_BEATS`]
//! beats, and always the master answering (it is evidently up, even before its first beat or
//! while the store refuses its writes). Rows are written and read on the engine's clock, the
//! database's on PostgreSQL, so masters whose hosts' clocks disagree still agree on who is fresh.
//!
//! A SQLite file has one master; it beats into the same table, so that there is one path.
//!
//! A master announces its changes to the others only while it has company ([`Company`]): each
//! announcement costs PostgreSQL a statement and every listening master a wake-up, for nobody
//! when a master is alone, which is how most run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MasterInfo, MasterList};

use super::{Engine, Result, view};
use crate::model::{MasterRecord, Millis};

/// How often a master writes its heartbeat row.
pub const MASTER_BEAT: Duration = Duration::from_secs(10);
/// Beats a master may miss and still be listed: a slow write or a paused process is not a
/// departure, and a master listed a few seconds after a crash does no harm.
const FRESH_BEATS: u32 = 3;
/// How long the row of a master that stopped without deleting it (killed, crashed) is kept
/// before the next master to beat deletes it. Unlisted long before; deleted so that the table
/// does not grow with every crash.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Whether other masters share the store, so that this master's changes are worth announcing.
///
/// Known from two sources. The heartbeat reads the masters listed (a master that stopped drops
/// out of the list at once, one that crashed after [`FRESH_BEATS`] beats). But a master that
/// starts would miss announcements until the others' next beat, and its waiters would wait up to
/// a reaper tick for a lease, or to the end of their wait for a finished task: so a master
/// announces that it joined as it opens the store, before it serves, and any announcement heard
/// from another master counts as company for as long as a listed master's row stays fresh (its
/// first row may be written after another's beat read the list).
///
/// Until its first beat a master assumes company: announcing for nobody costs little.
#[derive(Debug)]
pub(super) struct Company {
    /// Read at every change.
    present: AtomicBool,
    // A std mutex: held only to update `present` with what it is derived from, so that a beat
    // and an announcement heard at once cannot undo each other; never across an await.
    heard_at: Mutex<Option<Instant>>,
}

impl Default for Company {
    fn default() -> Self {
        Company {
            present: AtomicBool::new(true),
            heard_at: Mutex::new(None),
        }
    }
}

impl Company {
    pub(super) fn present(&self) -> bool {
        self.present.load(Ordering::Relaxed)
    }

    /// Another master announced something.
    pub(super) fn heard(&self) {
        let mut heard_at = self.heard_at.lock().expect("company");
        *heard_at = Some(Instant::now());
        self.set(true);
    }

    /// The heartbeat found other masters listed, or none.
    fn listed(&self, others: bool) {
        let heard_at = self.heard_at.lock().expect("company");
        let fresh = MASTER_BEAT * FRESH_BEATS;
        self.set(others || heard_at.is_some_and(|at| at.elapsed() < fresh));
    }

    fn set(&self, present: bool) {
        if self.present.swap(present, Ordering::Relaxed) != present {
            match present {
                true => tracing::debug!("another master shares the store: announcing changes"),
                false => tracing::debug!("no other master shares the store: not announcing"),
            }
        }
    }
}

/// This master: its instance id and when it started.
#[derive(Debug)]
pub(super) struct Instance {
    pub(super) id: String,
    started_at: Millis,
}

impl Instance {
    /// This process, started at `now`: its host name and process id (what an operator finds it
    /// by), and a random part, as a container restarted under the same name has the same pid.
    pub(super) fn new(now: Millis) -> Instance {
        let host = gethostname::gethostname()
            .into_string()
            .unwrap_or_else(|_| "master".into());
        Instance {
            id: format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            started_at: now,
        }
    }

    fn record(&self, seen_at: Millis) -> MasterRecord {
        MasterRecord {
            id: self.id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            seen_at,
        }
    }
}

impl Engine {
    /// This master's instance id: its heartbeat row's, its start-up line's, and the holder's
    /// name of the bulk operations it runs.
    pub fn master_id(&self) -> &str {
        &self.instance.id
    }

    /// Runs until shutdown, writing this master's heartbeat row at once and then every
    /// [`MASTER_BEAT`]; then deletes the row, so that the other masters stop listing this one at
    /// once rather than after [`FRESH_BEATS`] beats.
    pub async fn run_heartbeat(self: Arc<Self>) {
        let mut beats = tokio::time::interval(MASTER_BEAT);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = beats.tick() => {}
                () = self.shutdown.cancelled() => break,
            }
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %crate::chain::Chain(&e), "heartbeat not written; retrying next beat");
            }
        }
        if let Err(e) = self.store.forget_master(self.instance.id.clone()).await {
            tracing::warn!(error = %crate::chain::Chain(&e), "heartbeat row not deleted; it ages out");
        }
    }

    /// Writes this master's row, deletes those of masters gone for [`FORGET_AFTER`], and
    /// learns from the others listed whether it has [`Company`].
    pub async fn beat(&self) -> Result<()> {
        let now = self.clock.now_ms();
        self.store.beat_master(self.instance.record(now)).await?;
        self.store.purge_masters(now - millis(FORGET_AFTER)).await?;
        let masters = listed(self.store.masters().await?, &self.instance, now);
        self.company.listed(masters.iter().any(|m| !m.this));
        Ok(())
    }

    /// Whether this master announces its changes to others: while it has [`Company`].
    pub fn announcing(&self) -> bool {
        self.company.present()
    }

    /// `GET /masters`: the store, and the masters seen lately.
    pub async fn masters(&self) -> Result<MasterList> {
        let records = self.store.masters().await?;
        Ok(MasterList {
            store: self.store.kind(),
            masters: listed(records, &self.instance, self.clock.now_ms()),
        })
    }
}

fn millis(duration: Duration) -> Millis {
    duration.as_millis() as Millis
}

/// The masters to list at `now`: those whose row is fresh, and `this` (as its row says, or as
/// it is if it has none yet); newest start first, then by id.
fn listed(records: Vec<MasterRecord>, this: &Instance, now: Millis) -> Vec<MasterInfo> {
    let fresh_since = now - millis(MASTER_BEAT) * Millis::from(FRESH_BEATS);
    let mut masters: Vec<MasterRecord> = records
        .into_iter()
        .filter(|m| m.id == this.id || m.seen_at >= fresh_since)
        .collect();
    if !masters.iter().any(|m| m.id == this.id) {
        masters.push(this.record(now));
    }
    masters.sort_by(|a, b| (b.started_at, &a.id).cmp(&(a.started_at, &b.id)));
    let info = |m: MasterRecord| MasterInfo {
        this: m.id == this.id,
        uptime_secs: (now - m.started_at).max(0) as u64 / 1000,
        id: m.id,
        version: m.version,
        started_at: view::timestamp(m.started_at),
        seen_at: view::timestamp(m.seen_at),
    };
    masters.into_iter().map(info).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000_000_000;

    fn row(id: &str, started_at: Millis, seen_at: Millis) -> MasterRecord {
        MasterRecord {
            id: id.into(),
            version: "0.1.0".into(),
            started_at,
            seen_at,
        }
    }

    fn this() -> Instance {
        Instance {
            id: "here".into(),
            started_at: NOW - 5_000,
        }
    }

    fn ids(masters: &[MasterInfo]) -> Vec<&str> {
        masters.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn a_master_is_listed_until_it_misses_three_beats() {
        let three_beats = 3 * millis(MASTER_BEAT);
        let rows = vec![
            row("here", NOW - 5_000, NOW - 1_000),
            row("late", NOW - 9_000, NOW - three_beats),
            row("gone", NOW - 9_000, NOW - three_beats - 1),
        ];
        assert_eq!(ids(&listed(rows, &this(), NOW)), ["here", "late"]);
    }

    #[test]
    fn the_answering_master_is_listed_before_its_first_beat_and_when_its_row_is_stale() {
        let listed_alone = listed(vec![], &this(), NOW);
        assert_eq!(ids(&listed_alone), ["here"]);
        assert!(listed_alone[0].this);
        assert_eq!(listed_alone[0].uptime_secs, 5);
        let stale = listed(
            vec![row("here", NOW - 5_000, NOW - 3_600_000)],
            &this(),
            NOW,
        );
        assert_eq!(ids(&stale), ["here"]);
    }

    #[test]
    fn masters_are_listed_newest_start_first_then_by_id() {
        let rows = vec![
            row("b", NOW - 60_000, NOW),
            row("a", NOW - 60_000, NOW),
            row("here", NOW - 5_000, NOW),
            row("old", NOW - 600_000, NOW),
        ];
        let masters = listed(rows, &this(), NOW);
        assert_eq!(ids(&masters), ["here", "a", "b", "old"]);
        let this_one: Vec<bool> = masters.iter().map(|m| m.this).collect();
        assert_eq!(this_one, [true, false, false, false]);
    }
}
