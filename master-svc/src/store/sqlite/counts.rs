//! Tasks per queue and state, kept in memory beside the database.
//!
//! Counting with `GROUP BY` reads every task of a queue, and the counts are read often: every
//! `GET /queues`, every `/metrics` scrape, every autoscaler poll. The embedded store has one
//! writer, which knows each change it commits, so it keeps the counts up to date itself: loaded
//! once when the database is opened, then moved by each committed change. (Kept in the database
//! by triggers instead, they cost a fifth of the drain rate.)

use std::collections::HashMap;
use std::sync::Mutex;

use common::{StateCounts, TaskState};
use rusqlite::Connection;

/// Counts by queue, indexed by the position of the state in [`TaskState::ALL`].
#[derive(Debug, Default)]
pub(super) struct Counts(Mutex<HashMap<String, [i64; 5]>>);

impl Counts {
    /// Counts the tasks in the database.
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Counts> {
        let counts = Counts::default();
        let mut statement =
            conn.prepare("SELECT queue, state, COUNT(*) FROM tasks GROUP BY queue, state")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let queue: String = row.get(0)?;
            if let Ok(state) = row.get_ref(1)?.as_str()?.parse::<TaskState>() {
                counts.add(&queue, state, row.get(2)?);
            }
        }
        Ok(counts)
    }

    /// Adds `n` (which may be negative) tasks in `state` to `queue`.
    pub(super) fn add(&self, queue: &str, state: TaskState, n: i64) {
        let mut counts = self.0.lock().expect("counts poisoned");
        let slots = match counts.get_mut(queue) {
            Some(slots) => slots,
            None => counts.entry(queue.to_owned()).or_default(),
        };
        slots[index(state)] += n;
    }

    /// One task of `queue` went from `from` to `to`.
    pub(super) fn moved(&self, queue: &str, from: TaskState, to: TaskState) {
        if from != to {
            self.add(queue, from, -1);
            self.add(queue, to, 1);
        }
    }

    /// Drops `queue` if it has no tasks (a forgotten queue).
    pub(super) fn forget(&self, queue: &str) {
        let mut counts = self.0.lock().expect("counts poisoned");
        if counts
            .get(queue)
            .is_some_and(|slots| slots.iter().all(|n| *n == 0))
        {
            counts.remove(queue);
        }
    }

    /// Tasks of `queue` (every queue if `None`) in `state` (any if `None`).
    pub(super) fn of(&self, queue: Option<&str>, state: Option<TaskState>) -> i64 {
        let counts = self.0.lock().expect("counts poisoned");
        let in_state = |slots: &[i64; 5]| match state {
            Some(state) => slots[index(state)],
            None => slots.iter().sum(),
        };
        match queue {
            Some(queue) => counts.get(queue).map_or(0, in_state),
            None => counts.values().map(in_state).sum(),
        }
    }

    /// The counts of every queue that has or had tasks.
    pub(super) fn all(&self) -> HashMap<String, StateCounts> {
        let counts = self.0.lock().expect("counts poisoned");
        counts
            .iter()
            .map(|(queue, slots)| {
                let mut counts = StateCounts::default();
                for (state, n) in TaskState::ALL.into_iter().zip(slots) {
                    // Changes are counted once committed, from the task that made them, so
                    // two may land in either order for an instant; never show that as negative.
                    counts.set(state, (*n).max(0) as u64);
                }
                (queue.clone(), counts)
            })
            .collect()
    }
}

fn index(state: TaskState) -> usize {
    TaskState::ALL
        .iter()
        .position(|s| *s == state)
        .expect("every state is in ALL")
}
