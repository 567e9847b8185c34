//! What the worker's log says about its tasks: one INFO line as each task ends ([`Activity::ended`],
//! with the task, its attempt and queue, how it ended, how long it ran and, for a failure, the
//! error), and a periodic summary of what ended since the last one ([`summarize`]), written only
//! when something happened, so that an idle worker's log stays quiet.
//!
//! Each line's values are structured fields: with `--log-format json` they are JSON fields.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::TaskId;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How a task ended, as far as this worker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded and the master took the result.
    Succeeded,
    /// The handler failed; the task will be tried again (or, for a pushed task, the master
    /// decides whether it will).
    Failed,
    /// The handler failed and the task will not be tried again: no attempts left, or the
    /// handler said a retry cannot help.
    FailedForGood,
    /// Handed back without counting a failure (the worker is stopping).
    Released,
    /// An operator cancelled the task while it ran; it was handed back.
    Cancelled,
    /// The master no longer counts this run: the lease expired or was superseded, or the
    /// result was refused or could not be delivered.
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::FailedForGood => "failed_for_good",
            Outcome::Released => "released",
            Outcome::Cancelled => "cancelled",
            Outcome::Lost => "lost",
        }
    }
}

/// One task's end, as logged.
#[derive(Debug)]
pub struct TaskEnd<'a> {
    pub task_id: TaskId,
    pub attempt: u32,
    pub queue: &'a str,
    pub outcome: Outcome,
    /// From the start of the run to the handler's end (or the run's, when stopped early).
    pub duration: Duration,
    /// Why it failed or was lost.
    pub error: Option<&'a str>,
}

/// The tasks run since the last summary. Cheap to clone; one lock per task start and end.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    // A std mutex: held to add a count or take the window, never across an await.
    window: Arc<Mutex<Window>>,
}

/// Counts since the last summary (`in_flight` is the current number, never reset).
#[derive(Debug, Clone, Default, PartialEq)]
struct Window {
    started: u64,
    succeeded: u64,
    failed: u64,
    released: u64,
    cancelled: u64,
    lost: u64,
    ran: Duration,
    in_flight: u64,
}

impl Window {
    fn ended(&self) -> u64 {
        self.succeeded + self.failed + self.released + self.cancelled + self.lost
    }

    /// The window to summarize, if anything started or ended in it; a fresh one takes its place.
    fn take(&mut self) -> Option<Window> {
        if self.started == 0 && self.ended() == 0 {
            return None;
        }
        let fresh = Window {
            in_flight: self.in_flight,
            ..Window::default()
        };
        Some(std::mem::replace(self, fresh))
    }
}

/// A task running; counted in flight until dropped.
#[derive(Debug)]
pub struct Running(Activity);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.window().in_flight -= 1;
    }
}

impl Activity {
    /// A task starts; it is in flight until the guard is dropped.
    pub fn start(&self) -> Running {
        let mut window = self.window();
        window.started += 1;
        window.in_flight += 1;
        Running(self.clone())
    }

    /// A task ended: logs its line and counts it for the next summary.
    pub fn ended(&self, end: &TaskEnd<'_>) {
        tracing::info!(
            task_id = %end.task_id,
            attempt = end.attempt,
            queue = end.queue,
            outcome = %end.outcome.as_str(),
            duration_ms = end.duration.as_millis() as u64,
            error = end.error,
            "task ended"
        );
        let mut window = self.window();
        window.ran += end.duration;
        match end.outcome {
            Outcome::Succeeded => window.succeeded += 1,
            Outcome::Failed | Outcome::FailedForGood => window.failed += 1,
            Outcome::Released => window.released += 1,
            Outcome::Cancelled => window.cancelled += 1,
            Outcome::Lost => window.lost += 1,
        }
    }

    /// Logs the summary of the tasks since the last one, if any started or ended.
    fn log_summary(&self) {
        let Some(window) = self.window().take() else {
            return;
        };
        let ended = window.ended();
        let mean_duration_ms = (ended > 0).then(|| window.ran.as_millis() as u64 / ended);
        tracing::info!(
            succeeded = window.succeeded,
            failed = window.failed,
            released = window.released,
            cancelled = window.cancelled,
            lost = window.lost,
            in_flight = window.in_flight,
            mean_duration_ms,
            "tasks since the last summary"
        );
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // A panic while counting leaves the counts usable.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Logs a summary every `every` (when something happened) until `stop` is cancelled, and a last
/// one then.
pub async fn summarize(activity: Activity, every: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => activity.log_summary(),
            () = stop.cancelled() => break,
        }
    }
    activity.log_summary();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(outcome: Outcome, millis: u64) -> TaskEnd<'static> {
        TaskEnd {
            task_id: TaskId(1),
            attempt: 1,
            queue: "default",
            outcome,
            duration: Duration::from_millis(millis),
            error: None,
        }
    }

    #[test]
    fn an_idle_window_has_no_summary() {
        let activity = Activity::default();
        assert_eq!(activity.window().take(), None);
    }

    #[test]
    fn a_summary_counts_what_ended_since_the_last_one_and_what_still_runs() {
        let activity = Activity::default();
        let first = activity.start();
        let second = activity.start();
        activity.ended(&end(Outcome::Succeeded, 10));
        activity.ended(&end(Outcome::FailedForGood, 30));
        drop(first);

        let window = activity.window().take().expect("a summary");

        assert_eq!((window.succeeded, window.failed), (1, 1));
        assert_eq!((window.started, window.in_flight), (2, 1));
        assert_eq!(window.ran, Duration::from_millis(40));
        drop(second);
        assert_eq!(activity.window().take(), None, "nothing happened since");
        assert_eq!(activity.window().in_flight, 0);
    }

    #[test]
    fn a_task_that_only_started_is_news() {
        let activity = Activity::default();
        let _running = activity.start();
        let window = activity.window().take().expect("a summary");
        assert_eq!((window.started, window.in_flight), (1, 1));
    }
}
