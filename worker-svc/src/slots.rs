//! The worker's slots: how many tasks run at once (pulled and pushed alike), who is told when
//! one frees up, and how fast they free up — the pace that sizes the pull loop's buffer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Weight of the newest gap in the mean gap between two freed slots.
const PACE_WEIGHT: f64 = 1.0 / 8.0;

/// The slots a worker runs tasks in. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    shared: Arc<Shared>,
    size: usize,
}

#[derive(Debug, Default)]
struct Shared {
    /// Wakes the pull loop; a permit is kept if it is not waiting, so no free goes unseen.
    freed: Notify,
    // A std mutex: held for a few arithmetic operations, never across an await.
    pace: Mutex<Pace>,
}

/// One task's slot, freed when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.pace().freed(Instant::now());
        self.shared.freed.notify_one();
    }
}

impl Slots {
    pub fn new(size: usize) -> Slots {
        Slots {
            semaphore: Arc::new(Semaphore::new(size)),
            shared: Arc::default(),
            size,
        }
    }

    /// A free slot, if there is one.
    pub fn try_take(&self) -> Option<Slot> {
        let permit = self.semaphore.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _permit: permit,
            shared: self.shared.clone(),
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots taken now.
    pub fn busy(&self) -> usize {
        self.size - self.semaphore.available_permits()
    }

    /// Resolves once a slot has been freed since the last call returned.
    pub async fn freed(&self) {
        self.shared.freed.notified().await;
    }

    /// How many slots free up within `horizon` at the recent pace: 0 when none freed during the
    /// last `horizon` (the pace is unknown, or no longer holds).
    pub fn freeing_within(&self, horizon: Duration) -> usize {
        self.shared.pace().freeing_within(horizon, Instant::now())
    }
}

impl Shared {
    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().expect("pace poisoned")
    }
}

/// The mean gap between two freed slots, weighted towards the recent ones.
#[derive(Debug, Default)]
struct Pace {
    last: Option<Instant>,
    mean_gap: Option<Duration>,
}

impl Pace {
    fn freed(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now - last;
            self.mean_gap = Some(match self.mean_gap {
                None => gap,
                Some(mean) => mean.mul_f64(1.0 - PACE_WEIGHT) + gap.mul_f64(PACE_WEIGHT),
            });
        }
        self.last = Some(now);
    }

    fn freeing_within(&self, horizon: Duration, now: Instant) -> usize {
        match (self.last, self.mean_gap) {
            (Some(last), Some(gap)) if now - last <= horizon => {
                let gap = gap.as_nanos().max(1);
                usize::try_from(horizon.as_nanos() / gap).unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HORIZON: Duration = Duration::from_millis(50);

    fn pace(gaps_ms: &[u64], start: Instant) -> (Pace, Instant) {
        let mut pace = Pace::default();
        let mut now = start;
        pace.freed(now);
        for gap in gaps_ms {
            now += Duration::from_millis(*gap);
            pace.freed(now);
        }
        (pace, now)
    }

    #[test]
    fn slots_freeing_every_10_ms_mean_5_within_50_ms() {
        let (pace, now) = pace(&[10; 20], Instant::now());
        assert_eq!(pace.freeing_within(HORIZON, now), 5);
    }

    #[test]
    fn one_second_tasks_free_no_slot_within_50_ms() {
        let (pace, now) = pace(&[1_000; 3], Instant::now());
        assert_eq!(pace.freeing_within(HORIZON, now), 0);
    }

    #[test]
    fn a_fast_pace_no_longer_counts_once_no_slot_freed_for_a_horizon() {
        let (pace, now) = pace(&[1; 50], Instant::now());
        assert_eq!(pace.freeing_within(HORIZON, now), 50);
        let later = now + HORIZON + Duration::from_millis(1);
        assert_eq!(pace.freeing_within(HORIZON, later), 0);
    }

    #[test]
    fn before_two_slots_have_freed_the_pace_is_unknown() {
        let now = Instant::now();
        let (pace, _) = pace(&[], now);
        assert_eq!(pace.freeing_within(HORIZON, now), 0);
    }

    #[tokio::test]
    async fn a_dropped_slot_wakes_the_waiter_even_if_it_was_not_yet_waiting() {
        let slots = Slots::new(1);
        let slot = slots.try_take().expect("one free slot");
        assert!(slots.try_take().is_none());
        assert_eq!(slots.busy(), 1);
        drop(slot);
        tokio::time::timeout(Duration::from_secs(1), slots.freed())
            .await
            .expect("the free was kept for the next wait");
        assert_eq!(slots.busy(), 0);
    }
}
