//! Every queue's [`Series`], behind `GET /queues/{name}/history`: counts added as the engine
//! commits transitions, backlogs recorded as it samples them, and the steps a history shows.
//! Pure bookkeeping on times the caller passes in; what counts as a transition, and when, is the
//! engine's.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use super::ring::{Backlog, SLOTS, STEP_MS, Series, Step, Transition, step_of};
use crate::model::Millis;

/// Every queue's series, since `first_step` (the master's start).
#[derive(Debug)]
pub struct Activity {
    first_step: i64,
    // std locks, not Tokio's: each is held for a few instructions, never across an await. The
    // map's lock is taken for reading on every count (an uncontended atomic), and for writing
    // only when a queue is first seen and once per sample.
    series: RwLock<HashMap<String, Mutex<Series>>>,
}

impl Activity {
    /// Series that start at `now` (no step before its step is shown).
    pub fn new(now: Millis) -> Activity {
        Activity {
            first_step: step_of(now),
            series: RwLock::default(),
        }
    }

    /// Adds `n` of `transition` to `queue`'s step of `at`.
    pub fn count(&self, queue: &str, transition: Transition, n: u64, at: Millis) {
        let step = step_of(at);
        {
            let series = self.series.read().expect("activity poisoned");
            if let Some(one) = series.get(queue) {
                one.lock()
                    .expect("activity poisoned")
                    .count(step, transition, n);
                return;
            }
        }
        let mut series = self.series.write().expect("activity poisoned");
        let one = series
            .entry(queue.to_owned())
            .or_insert_with(|| Mutex::new(Series::new(step)));
        one.get_mut()
            .expect("activity poisoned")
            .count(step, transition, n);
    }

    /// Adds one `transition` per queue named, at `at`: a run of the same queue (a batch's usual
    /// shape) is one count.
    pub fn count_each<'q>(
        &self,
        queues: impl IntoIterator<Item = &'q str>,
        transition: Transition,
        at: Millis,
    ) {
        let mut run: Option<(&str, u64)> = None;
        for queue in queues {
            match &mut run {
                Some((current, n)) if *current == queue => *n += 1,
                _ => {
                    if let Some((current, n)) = run.replace((queue, 1)) {
                        self.count(current, transition, n, at);
                    }
                }
            }
        }
        if let Some((queue, n)) = run {
            self.count(queue, transition, n, at);
        }
    }

    /// Records the backlogs the store counted at `at`: for each queue with a series (none for a
    /// queue the store no longer lists) and each with a backlog; then drops the series idle for
    /// a whole ring (every step of the last hour empty).
    pub fn sampled(&self, backlogs: &HashMap<String, Backlog>, at: Millis) {
        let step = step_of(at);
        let mut series = self.series.write().expect("activity poisoned");
        let busy = backlogs.iter().filter(|(_, backlog)| !backlog.is_empty());
        for (queue, _) in busy {
            if !series.contains_key(queue) {
                series.insert(queue.clone(), Mutex::new(Series::new(step)));
            }
        }
        for (queue, one) in series.iter_mut() {
            let backlog = backlogs.get(queue).copied().unwrap_or_default();
            one.get_mut()
                .expect("activity poisoned")
                .sample(step, backlog);
        }
        series.retain(|_, one| {
            let last_active = one.get_mut().expect("activity poisoned").last_active;
            step - last_active < SLOTS as i64
        });
    }

    /// `queue`'s steps of the last `window_ms`, rounded up to whole steps, since the start,
    /// oldest first, ending with `at`'s step, whose backlog is `now` (the current one). A step
    /// not sampled (the store did not answer) shows the sample before it.
    pub fn steps(&self, queue: &str, window_ms: Millis, at: Millis, now: Backlog) -> Vec<Step> {
        let current = step_of(at);
        // Never after the current step, so that there is always one point, even should the
        // clock step back across the start.
        let start = self.first_step.min(current);
        let first = (current - (window_ms + STEP_MS - 1) / STEP_MS + 1).max(start);
        let series = self.series.read().expect("activity poisoned");
        let one = series
            .get(queue)
            .map(|one| one.lock().expect("activity poisoned"));
        let mut carried = one
            .as_ref()
            .and_then(|one| one.backlog_before(first))
            .unwrap_or_default();
        let mut steps = Vec::with_capacity((current - first + 1).max(0) as usize);
        for step in first..=current {
            let slot = one.as_ref().and_then(|one| one.slot(step));
            let backlog = if step == current {
                now
            } else {
                slot.and_then(|slot| slot.backlog).unwrap_or(carried)
            };
            carried = backlog;
            let counts = slot.map(|slot| slot.counts).unwrap_or_default();
            steps.push(Step {
                step,
                counts,
                backlog,
            });
        }
        steps
    }

    /// How many queues have a series.
    #[cfg(test)]
    fn queues(&self) -> usize {
        self.series.read().expect("activity poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T09:00:00Z, a step's start.
    const T0: Millis = 1_796_115_600_000;
    const HOUR_MS: Millis = 3_600_000;

    fn backlog(queued: u64, in_flight: u64) -> Backlog {
        Backlog { queued, in_flight }
    }

    fn counted(steps: &[Step], transition: Transition) -> Vec<u64> {
        steps.iter().map(|s| s.count(transition)).collect()
    }

    #[test]
    fn a_step_is_a_multiple_of_ten_seconds_of_the_clock() {
        assert_eq!(T0 % STEP_MS, 0);
        assert_eq!(step_of(T0), step_of(T0 + 9_999));
        assert_eq!(step_of(T0) + 1, step_of(T0 + 10_000));
        assert_eq!(step_of(-1), -1);
    }

    #[test]
    fn counts_land_in_the_step_of_their_time() {
        let activity = Activity::new(T0);
        activity.count("q", Transition::Submitted, 3, T0 + 1_000);
        activity.count("q", Transition::Submitted, 1, T0 + 12_000);
        activity.count("q", Transition::Leased, 2, T0 + 19_999);
        let steps = activity.steps("q", 60_000, T0 + 25_000, Backlog::default());
        assert_eq!(steps.len(), 3, "from the start to the current step");
        assert_eq!(counted(&steps, Transition::Submitted), [3, 1, 0]);
        assert_eq!(counted(&steps, Transition::Leased), [0, 2, 0]);
        assert_eq!(steps[0].step, step_of(T0));
    }

    #[test]
    fn a_window_is_rounded_up_to_whole_steps_ending_with_the_current_one() {
        let activity = Activity::new(T0);
        let at = T0 + 2 * HOUR_MS + 5_000;
        assert_eq!(activity.steps("q", 10_000, at, Backlog::default()).len(), 1);
        assert_eq!(activity.steps("q", 15_000, at, Backlog::default()).len(), 2);
        let hour = activity.steps("q", HOUR_MS, at, Backlog::default());
        assert_eq!(hour.len(), SLOTS);
        assert_eq!(hour.last().unwrap().step, step_of(at));
    }

    #[test]
    fn no_step_is_older_than_the_start() {
        let activity = Activity::new(T0 + 5_000);
        let steps = activity.steps("q", HOUR_MS, T0 + 31_000, Backlog::default());
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0].step, step_of(T0));
    }

    #[test]
    fn a_clock_stepping_back_past_the_start_still_shows_the_current_step() {
        let activity = Activity::new(T0 + 20_000);
        let steps = activity.steps("q", HOUR_MS, T0, Backlog::default());
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].step, step_of(T0));
    }

    #[test]
    fn the_ring_forgets_steps_older_than_an_hour() {
        let activity = Activity::new(T0);
        activity.count("q", Transition::Succeeded, 7, T0);
        let later = T0 + HOUR_MS;
        activity.count("q", Transition::Succeeded, 1, later);
        let steps = activity.steps("q", HOUR_MS, later, Backlog::default());
        assert_eq!(
            steps
                .iter()
                .map(|s| s.count(Transition::Succeeded))
                .sum::<u64>(),
            1
        );
        assert_eq!(steps[0].step, step_of(T0) + 1);
        // A count for a step the ring has moved past is dropped, not added to its slot's step.
        activity.count("q", Transition::Succeeded, 5, T0);
        let again = activity.steps("q", HOUR_MS, later, Backlog::default());
        assert_eq!(again, steps);
    }

    #[test]
    fn a_run_of_one_queue_is_counted_at_once_and_each_queue_apart() {
        let activity = Activity::new(T0);
        activity.count_each(["a", "a", "b", "a"], Transition::Expired, T0);
        let at = |queue| activity.steps(queue, 10_000, T0, Backlog::default())[0];
        assert_eq!(at("a").count(Transition::Expired), 3);
        assert_eq!(at("b").count(Transition::Expired), 1);
    }

    #[test]
    fn closed_steps_show_their_sample_and_the_current_step_the_backlog_now() {
        let activity = Activity::new(T0);
        let sample = |queued, in_flight, at| {
            let backlogs = HashMap::from([("q".to_owned(), backlog(queued, in_flight))]);
            activity.sampled(&backlogs, at);
        };
        sample(5, 1, T0 + 9_500);
        // The step at T0 + 10 s went unsampled (the store did not answer): it shows the last.
        sample(2, 3, T0 + 29_500);
        let steps = activity.steps("q", 60_000, T0 + 31_000, backlog(9, 9));
        let backlogs: Vec<_> = steps.iter().map(|s| s.backlog).collect();
        assert_eq!(
            backlogs,
            [backlog(5, 1), backlog(5, 1), backlog(2, 3), backlog(9, 9)]
        );
    }

    #[test]
    fn a_window_starting_at_an_unsampled_step_carries_the_sample_before_it() {
        let activity = Activity::new(T0);
        let backlogs = HashMap::from([("q".to_owned(), backlog(4, 0))]);
        activity.sampled(&backlogs, T0);
        let steps = activity.steps("q", 20_000, T0 + 40_000, Backlog::default());
        assert_eq!(steps[0].backlog, backlog(4, 0));
    }

    #[test]
    fn a_queue_the_store_no_longer_lists_is_sampled_empty() {
        let activity = Activity::new(T0);
        activity.sampled(&HashMap::from([("q".to_owned(), backlog(1, 0))]), T0);
        activity.sampled(&HashMap::new(), T0 + 10_000);
        let steps = activity.steps("q", 60_000, T0 + 20_000, Backlog::default());
        assert_eq!(steps[1].backlog, Backlog::default());
    }

    #[test]
    fn an_empty_queue_gets_no_series_from_sampling() {
        let activity = Activity::new(T0);
        activity.sampled(&HashMap::from([("q".to_owned(), Backlog::default())]), T0);
        assert_eq!(activity.queues(), 0);
    }

    #[test]
    fn a_queue_idle_for_an_hour_drops_out() {
        let activity = Activity::new(T0);
        activity.count("idle", Transition::Submitted, 1, T0);
        activity.count("busy", Transition::Submitted, 1, T0);
        let backlogs = HashMap::from([("busy".to_owned(), backlog(1, 0))]);
        activity.sampled(&backlogs, T0 + HOUR_MS - STEP_MS);
        assert_eq!(activity.queues(), 2, "idle for less than an hour: kept");
        activity.sampled(&backlogs, T0 + HOUR_MS);
        assert_eq!(activity.queues(), 1, "a backlog keeps a queue active");
        let steps = activity.steps("idle", 20_000, T0 + HOUR_MS, Backlog::default());
        assert!(steps.iter().all(|s| *s
            == Step {
                step: s.step,
                ..Step::default()
            }));
    }
}
