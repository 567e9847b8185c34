//! One queue's ring of the last hour's 10-second steps, each with its transition counts and its
//! sampled backlog, and the vocabulary of a step.

use common::{HISTORY_STEP_SECS, MAX_HISTORY_WINDOW_SECS};

use crate::model::Millis;

/// Milliseconds per step.
pub(super) const STEP_MS: Millis = HISTORY_STEP_SECS as Millis * 1000;
/// Steps a series keeps: the longest window.
pub(super) const SLOTS: usize = (MAX_HISTORY_WINDOW_SECS / HISTORY_STEP_SECS) as usize;

/// The number of the step `at` falls in (steps are aligned to multiples of [`STEP_MS`] since
/// the Unix epoch).
pub(super) fn step_of(at: Millis) -> i64 {
    at.div_euclid(STEP_MS)
}

/// What a step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Submitted,
    Leased,
    Succeeded,
    Failed,
    Retried,
    Expired,
}

/// How many kinds of [`Transition`] there are.
const TRANSITIONS: usize = 6;

/// A queue's backlog as the store counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub queued: u64,
    pub in_flight: u64,
}

impl Backlog {
    pub(super) fn is_empty(self) -> bool {
        self == Backlog::default()
    }
}

/// One step of a series, as a history shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    pub step: i64,
    pub counts: [u64; TRANSITIONS],
    pub backlog: Backlog,
}

impl Step {
    pub fn count(&self, transition: Transition) -> u64 {
        self.counts[transition as usize]
    }
}

/// One slot of a ring: the step it holds now, and what that step recorded.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Slot {
    pub(super) step: i64,
    pub(super) counts: [u64; TRANSITIONS],
    /// The last sample taken during the step, if any was.
    pub(super) backlog: Option<Backlog>,
}

/// One queue's ring of [`SLOTS`] steps: step `n` lives in slot `n % SLOTS`, so a slot holding
/// an older step holds nothing of the last hour and is reset when reused.
#[derive(Debug)]
pub(super) struct Series {
    slots: Box<[Slot]>,
    /// The last step that counted a transition or sampled a backlog other than none.
    pub(super) last_active: i64,
}

impl Series {
    pub(super) fn new(step: i64) -> Series {
        Series {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            last_active: step,
        }
    }

    /// The slot of `step`, reset if it held an older one; `None` if it holds a later step
    /// (`step` is more than an hour older than the newest).
    pub(super) fn slot_mut(&mut self, step: i64) -> Option<&mut Slot> {
        let slot = &mut self.slots[step.rem_euclid(SLOTS as i64) as usize];
        if slot.step > step {
            return None;
        }
        if slot.step < step {
            *slot = Slot {
                step,
                ..Slot::default()
            };
        }
        Some(slot)
    }

    /// The slot of `step`, if it holds that step.
    pub(super) fn slot(&self, step: i64) -> Option<&Slot> {
        let slot = &self.slots[step.rem_euclid(SLOTS as i64) as usize];
        (slot.step == step).then_some(slot)
    }

    pub(super) fn count(&mut self, step: i64, transition: Transition, n: u64) {
        if let Some(slot) = self.slot_mut(step) {
            slot.counts[transition as usize] += n;
            self.last_active = self.last_active.max(step);
        }
    }

    pub(super) fn sample(&mut self, step: i64, backlog: Backlog) {
        if let Some(slot) = self.slot_mut(step) {
            slot.backlog = Some(backlog);
            if !backlog.is_empty() {
                self.last_active = self.last_active.max(step);
            }
        }
    }

    /// The latest sample taken before `step`, within the ring.
    pub(super) fn backlog_before(&self, step: i64) -> Option<Backlog> {
        self.slots
            .iter()
            .filter(|slot| slot.step < step)
            .filter_map(|slot| slot.backlog.map(|backlog| (slot.step, backlog)))
            .max_by_key(|(step, _)| *step)
            .map(|(_, backlog)| backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reused_for_a_later_step_starts_empty_and_refuses_the_earlier_one() {
        let mut series = Series::new(0);
        series.count(7, Transition::Leased, 2);
        series.sample(
            7,
            Backlog {
                queued: 1,
                in_flight: 2,
            },
        );
        let later = 7 + SLOTS as i64;
        series.count(later, Transition::Leased, 1);
        assert!(series.slot(7).is_none());
        let slot = series.slot(later).expect("the later step");
        assert_eq!(
            (slot.counts[Transition::Leased as usize], slot.backlog),
            (1, None)
        );
        series.count(7, Transition::Leased, 5);
        assert_eq!(
            series.slot(later).unwrap().counts[Transition::Leased as usize],
            1
        );
    }

    #[test]
    fn only_a_backlog_keeps_a_series_active() {
        let mut series = Series::new(0);
        series.sample(5, Backlog::default());
        assert_eq!(series.last_active, 0);
        series.sample(
            6,
            Backlog {
                queued: 1,
                in_flight: 0,
            },
        );
        assert_eq!(series.last_active, 6);
    }
}
