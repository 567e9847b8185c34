//! Each queue's recent activity, for `GET /queues/{name}/history` and `GET /activity`: the
//! transitions this master committed, counted per 10-second step, and each queue's backlog,
//! sampled from the store at the end of each step ([`series`] keeps both, a [`ring`] per queue).
//!
//! In memory only: the series start empty when the master starts. With several masters sharing
//! a PostgreSQL store, each counts the transitions it decided itself, while the backlog is the
//! shared store's; a console reading one master sees that master's share of the throughput.

mod ring;
mod series;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{
    ActivityPoint, HistoryWindow, MAX_HISTORY_WINDOW_SECS, MIN_HISTORY_WINDOW_SECS, Outcome,
    QueueHistory, TaskState,
};

use super::{Engine, EngineError, Result, validate, view};
use crate::model::Millis;
use crate::store::QueueRecord;
pub use ring::{Backlog, Transition};
use ring::{STEP_MS, Step};
pub use series::Activity;

/// The window asked for, in seconds, checked.
fn window_secs(query: HistoryWindow) -> Result<u32> {
    validate::in_range(
        "window",
        query.window.unwrap_or(MAX_HISTORY_WINDOW_SECS),
        MIN_HISTORY_WINDOW_SECS,
        MAX_HISTORY_WINDOW_SECS,
    )
}

/// How long before a step's end its backlog is sampled: late enough to be its end, early
/// enough that the store's answer lands in it.
const SAMPLE_LEAD_MS: Millis = 500;

impl Transition {
    /// What a worker's result that changed a task to `state` was; `None` for one that cancelled
    /// it (a failure while its cancellation was asked for), which no step counts.
    pub fn of_result(outcome: Outcome, state: TaskState) -> Option<Transition> {
        match (outcome, state) {
            (Outcome::Succeeded, _) => Some(Transition::Succeeded),
            (Outcome::Failed, TaskState::Queued) => Some(Transition::Retried),
            (Outcome::Failed, TaskState::Cancelled) => None,
            (Outcome::Failed, _) => Some(Transition::Failed),
        }
    }
}

impl Engine {
    /// `name`'s activity over the window asked for. An unknown queue is
    /// [`EngineError::QueueNotFound`], as for [`Engine::queue`]; the current step's backlog is
    /// the store's count now.
    pub async fn queue_history(&self, name: &str, query: HistoryWindow) -> Result<QueueHistory> {
        let window_secs = window_secs(query)?;
        let name = validate::queue_name(Some(name))?;
        let Some(record) = self.store.queues(Some(name.clone())).await?.pop() else {
            return Err(EngineError::QueueNotFound(name));
        };
        Ok(self.history(record, window_secs, self.clock.now_ms()))
    }

    /// Every queue's activity over the window asked for, in the order of [`Engine::queues`],
    /// from one read of the store.
    pub async fn activity(&self, query: HistoryWindow) -> Result<Vec<QueueHistory>> {
        let window_secs = window_secs(query)?;
        let records = self.store.queues(None).await?;
        // One clock reading for all: every queue's points end on the same step.
        let now_ms = self.clock.now_ms();
        Ok(records
            .into_iter()
            .map(|record| self.history(record, window_secs, now_ms))
            .collect())
    }

    fn history(&self, record: QueueRecord, window_secs: u32, now_ms: Millis) -> QueueHistory {
        let now = Backlog {
            queued: record.counts.queued,
            in_flight: record.counts.leased,
        };
        let window_ms = Millis::from(window_secs) * 1000;
        let steps = self.activity.steps(&record.name, window_ms, now_ms, now);
        QueueHistory {
            queue: record.name,
            step_secs: common::HISTORY_STEP_SECS,
            window_secs,
            points: steps.into_iter().map(point).collect(),
        }
    }

    /// Runs until shutdown, sampling every queue's backlog near the end of each step.
    pub async fn run_activity_sampler(self: Arc<Self>) {
        loop {
            let wait = until_next_sample(self.clock.now_ms());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.cancelled() => return,
            }
            if let Err(e) = self.sample_activity().await {
                tracing::warn!(error = %crate::chain::Chain(&e), "activity sample failed; the step shows the previous one");
            }
        }
    }

    /// Samples every queue's backlog into the current step; public so tests can drive it.
    pub async fn sample_activity(&self) -> Result<()> {
        let at = self.clock.now_ms();
        let backlogs: HashMap<String, Backlog> = self
            .store
            .queues(None)
            .await?
            .into_iter()
            .map(|q| {
                let backlog = Backlog {
                    queued: q.counts.queued,
                    in_flight: q.counts.leased,
                };
                (q.name, backlog)
            })
            .collect();
        self.activity.sampled(&backlogs, at);
        Ok(())
    }
}

/// Time from `now` to the next sample, [`SAMPLE_LEAD_MS`] before a step ends; a whole step when
/// that is now (the sample was just taken).
fn until_next_sample(now: Millis) -> Duration {
    let wait = (STEP_MS - SAMPLE_LEAD_MS - now.rem_euclid(STEP_MS)).rem_euclid(STEP_MS);
    Duration::from_millis(if wait == 0 { STEP_MS } else { wait } as u64)
}

fn point(step: Step) -> ActivityPoint {
    ActivityPoint {
        at: view::timestamp(step.step * STEP_MS),
        submitted: step.count(Transition::Submitted),
        leased: step.count(Transition::Leased),
        succeeded: step.count(Transition::Succeeded),
        failed: step.count(Transition::Failed),
        retried: step.count(Transition::Retried),
        expired: step.count(Transition::Expired),
        queued: step.backlog.queued,
        in_flight: step.backlog.in_flight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_taken_half_a_second_before_each_step_ends() {
        let step = 1_796_115_600_000;
        assert_eq!(until_next_sample(step), Duration::from_millis(9_500));
        assert_eq!(until_next_sample(step + 9_000), Duration::from_millis(500));
        assert_eq!(
            until_next_sample(step + 9_500),
            Duration::from_millis(10_000)
        );
        assert_eq!(
            until_next_sample(step + 9_600),
            Duration::from_millis(9_900)
        );
    }

    #[test]
    fn a_result_counts_as_what_it_made_of_the_task() {
        use Outcome::{Failed, Succeeded};
        let of = Transition::of_result;
        assert_eq!(
            of(Succeeded, TaskState::Succeeded),
            Some(Transition::Succeeded)
        );
        assert_eq!(of(Failed, TaskState::Queued), Some(Transition::Retried));
        assert_eq!(of(Failed, TaskState::Failed), Some(Transition::Failed));
        assert_eq!(of(Failed, TaskState::Cancelled), None);
    }
}
