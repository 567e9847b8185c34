//! Leased tasks waiting for a slot. Their lease clocks run: a task that has waited half its
//! lease is handed back (its attempt not counted) rather than left to expire in the buffer while
//! another worker could run it.

use std::collections::VecDeque;
use std::time::Duration;

use common::LeasedTask;
use time::OffsetDateTime;
use tokio::time::Instant;

/// The pull loop's buffer, oldest lease first.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    tasks: VecDeque<Buffered>,
    /// No task goes stale before this: exact after [`take_stale`](Self::take_stale) looked,
    /// possibly early once the task it was set by has started. Kept so that the loop, which
    /// turns once per task, does not scan the buffer at every turn.
    earliest_stale: Option<Instant>,
}

#[derive(Debug)]
struct Buffered {
    task: LeasedTask,
    /// When it has waited half its lease.
    stale_at: Instant,
}

impl Buffer {
    /// Buffers a task just leased (at `now`).
    pub(super) fn push(&mut self, task: LeasedTask, now: Instant) {
        let lease = (task.expires_at - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO);
        let stale_at = now + lease / 2;
        self.earliest_stale = Some(self.earliest_stale.map_or(stale_at, |at| at.min(stale_at)));
        self.tasks.push_back(Buffered { task, stale_at });
    }

    /// The oldest task, to start.
    pub(super) fn pop(&mut self) -> Option<LeasedTask> {
        let task = self.tasks.pop_front()?.task;
        if self.tasks.is_empty() {
            self.earliest_stale = None;
        }
        Some(task)
    }

    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Takes out the tasks that have waited half their lease by `now`.
    pub(super) fn take_stale(&mut self, now: Instant) -> Vec<LeasedTask> {
        if self.earliest_stale.is_none_or(|at| at > now) {
            return Vec::new();
        }
        let (stale, fresh): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|buffered| buffered.stale_at <= now);
        self.tasks = fresh;
        self.earliest_stale = self.tasks.iter().map(|buffered| buffered.stale_at).min();
        stale.into_iter().map(|buffered| buffered.task).collect()
    }

    /// When the next task may go stale (never later than it does).
    pub(super) fn next_stale(&self) -> Option<Instant> {
        self.earliest_stale
    }

    /// Takes out every task (the worker stops).
    pub(super) fn take_all(&mut self) -> Vec<LeasedTask> {
        self.earliest_stale = None;
        self.tasks.drain(..).map(|buffered| buffered.task).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{LeaseId, TaskId};
    use serde_json::json;

    fn leased(id: i64, lease_secs: i64) -> LeasedTask {
        LeasedTask {
            task_id: TaskId(id),
            lease_id: LeaseId(format!("l{id}")),
            queue: "default".into(),
            attempt: 1,
            payload: json!(null),
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(lease_secs),
        }
    }

    #[test]
    fn a_task_goes_stale_once_it_has_waited_half_its_lease() {
        let now = Instant::now();
        let mut buffer = Buffer::default();
        buffer.push(leased(1, 2), now);
        buffer.push(leased(2, 60), now);
        assert!(
            buffer
                .take_stale(now + Duration::from_millis(900))
                .is_empty()
        );
        let stale = buffer.take_stale(now + Duration::from_millis(1_100));
        assert_eq!(
            stale.iter().map(|t| t.task_id).collect::<Vec<_>>(),
            [TaskId(1)]
        );
        assert_eq!(buffer.len(), 1);
        let next = buffer.next_stale().unwrap() - now;
        assert!(
            next > Duration::from_secs(29) && next <= Duration::from_secs(30),
            "{next:?}"
        );
    }

    #[test]
    fn once_the_soonest_stale_task_has_started_a_look_finds_the_next_one() {
        let now = Instant::now();
        let mut buffer = Buffer::default();
        buffer.push(leased(1, 2), now);
        buffer.push(leased(2, 60), now);
        buffer.pop();
        assert!(
            buffer.next_stale().unwrap() - now <= Duration::from_secs(1),
            "a bound"
        );
        assert!(
            buffer
                .take_stale(now + Duration::from_millis(1_100))
                .is_empty()
        );
        assert!(
            buffer.next_stale().unwrap() - now > Duration::from_secs(29),
            "exact again"
        );
    }

    #[test]
    fn tasks_start_in_the_order_they_were_leased() {
        let now = Instant::now();
        let mut buffer = Buffer::default();
        buffer.push(leased(1, 60), now);
        buffer.push(leased(2, 60), now);
        assert_eq!(buffer.pop().unwrap().task_id, TaskId(1));
        assert_eq!(buffer.take_all().len(), 1);
        assert!(buffer.is_empty());
    }
}
