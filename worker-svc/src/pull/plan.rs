//! When the pull loop leases, and how much: a worker keeps a small buffer of leased tasks, sized
//! by its pace, and refills it a batch at a time, so that the master sees few requests, each
//! carrying many results and leases.

use common::MAX_LEASE_BATCH;

/// Most tasks one refill waits for before it goes: past this, a bigger batch saves the master
/// little and holds results longer.
pub(super) const REFILL_BATCH: usize = 64;

/// What the pull loop knows when it decides whether to lease.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Plan {
    /// Slots in all.
    pub(super) concurrency: usize,
    /// Slots taken (by pulled and pushed tasks).
    pub(super) busy: usize,
    /// Leased tasks waiting for a slot.
    pub(super) buffered: usize,
    /// How many leased tasks may wait: `--prefetch`, or fewer when the worker's slots would not
    /// start that many within the buffer's horizon.
    pub(super) target: usize,
    /// Tasks asked for by the lease requests in flight.
    pub(super) asked: usize,
    /// Lease requests in flight.
    pub(super) leases: usize,
    /// One of them is a long-poll: nothing more goes until it is answered.
    pub(super) long_polling: bool,
    /// The last answer had fewer tasks than asked for: the queues are empty, or nearly.
    pub(super) dry: bool,
    /// The master could not be reached: nothing goes until the back-off ends.
    pub(super) retrying: bool,
}

/// The pull loop's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing to ask for now.
    Wait,
    /// Ask for up to `max_tasks`, waiting for them on the master when `long_poll`.
    Lease { max_tasks: u32, long_poll: bool },
}

impl Plan {
    /// A slot with nothing to start is waiting for work: lease now (a long-poll, so that an
    /// empty queue is waited on by the master, not by polling). Otherwise refill the buffer once
    /// a batch's worth of room has freed up — unless the last answer found the queues dry.
    pub(super) fn next(&self) -> Next {
        let room = self.room();
        if self.long_polling || self.retrying || room == 0 {
            return Next::Wait;
        }
        let max_tasks = room.min(MAX_LEASE_BATCH as usize) as u32;
        if self.idle() && self.leases == 0 {
            return Next::Lease {
                max_tasks,
                long_poll: true,
            };
        }
        if !self.dry && room >= self.batch() {
            return Next::Lease {
                max_tasks,
                long_poll: false,
            };
        }
        Next::Wait
    }

    /// Tasks the worker can take on: free slots plus the buffer's free places, less what the
    /// leases in flight asked for.
    fn room(&self) -> usize {
        (self.concurrency + self.target).saturating_sub(self.busy + self.buffered + self.asked)
    }

    /// A free slot and nothing buffered to start in it.
    fn idle(&self) -> bool {
        self.buffered == 0 && self.busy < self.concurrency
    }

    /// Room that makes a refill worth a request: half the buffer (so that the other half covers
    /// the refill's round trip), at most [`REFILL_BATCH`], at least one.
    fn batch(&self) -> usize {
        self.target.div_ceil(2).clamp(1, REFILL_BATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(max_tasks: u32, long_poll: bool) -> Next {
        Next::Lease {
            max_tasks,
            long_poll,
        }
    }

    #[test]
    fn an_idle_worker_long_polls_for_every_slot_and_its_buffer() {
        let plan = Plan {
            concurrency: 4,
            target: 8,
            ..Plan::default()
        };
        assert_eq!(plan.next(), lease(12, true));
    }

    #[test]
    fn a_busy_worker_refills_only_once_half_its_buffer_has_gone() {
        let busy = Plan {
            concurrency: 64,
            busy: 64,
            target: 64,
            buffered: 40,
            ..Plan::default()
        };
        assert_eq!(busy.next(), Next::Wait, "24 places free, a batch is 32");
        let half_gone = Plan {
            buffered: 32,
            ..busy
        };
        assert_eq!(half_gone.next(), lease(32, false));
    }

    #[test]
    fn what_leases_in_flight_asked_for_is_not_asked_again() {
        let plan = Plan {
            concurrency: 64,
            busy: 64,
            target: 64,
            asked: 32,
            leases: 1,
            ..Plan::default()
        };
        assert_eq!(plan.next(), lease(32, false));
        let both = Plan { asked: 64, ..plan };
        assert_eq!(both.next(), Next::Wait);
    }

    #[test]
    fn slow_tasks_get_no_buffer_a_slot_is_filled_when_it_frees() {
        let running = Plan {
            concurrency: 1,
            busy: 1,
            target: 0,
            ..Plan::default()
        };
        assert_eq!(running.next(), Next::Wait);
        assert_eq!(Plan { busy: 0, ..running }.next(), lease(1, true));
    }

    #[test]
    fn dry_queues_are_long_polled_only_once_the_worker_is_idle() {
        let plan = Plan {
            concurrency: 8,
            busy: 8,
            buffered: 1,
            target: 16,
            dry: true,
            ..Plan::default()
        };
        assert_eq!(plan.next(), Next::Wait);
        let idle = Plan {
            busy: 7,
            buffered: 0,
            ..plan
        };
        assert_eq!(idle.next(), lease(17, true));
    }

    #[test]
    fn nothing_goes_while_a_long_poll_waits() {
        let plan = Plan {
            concurrency: 8,
            target: 8,
            asked: 16,
            leases: 1,
            long_polling: true,
            ..Plan::default()
        };
        assert_eq!(Plan { asked: 0, ..plan }.next(), Next::Wait);
    }

    #[test]
    fn a_lease_asks_for_no_more_than_the_master_grants_at_once() {
        let plan = Plan {
            concurrency: 1024,
            target: 1024,
            ..Plan::default()
        };
        assert_eq!(plan.next(), lease(MAX_LEASE_BATCH, true));
    }
}
