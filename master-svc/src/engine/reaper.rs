//! The engine's clock-driven work: expiring leases, waking long-polls for tasks that became
//! ready by time alone, purging finished tasks past their retention, and forgetting idle
//! queues ([`super::idle`]) and audit entries past theirs ([`super::audit`]).

use std::sync::Arc;
use std::time::Duration;

use common::TaskState;

use super::activity::Transition;
use super::{Engine, Result, rules};
use crate::metrics as m;
use crate::store::Wake;

/// Expired leases handled per store call.
const EXPIRY_BATCH: u32 = 1_000;
/// Finished tasks deleted per store call.
const PURGE_BATCH: u32 = 1_000;

/// How often the reaper looks, and how long finished tasks are kept.
#[derive(Debug, Clone, Copy)]
pub struct ReaperConfig {
    pub tick: Duration,
    /// `None` keeps finished tasks forever.
    pub retention: Option<Duration>,
}

impl Engine {
    /// Runs until shutdown, doing the clock-driven work every tick.
    pub async fn run_reaper(self: Arc<Self>, config: ReaperConfig) {
        let mut ticks = tokio::time::interval(config.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            if let Err(e) = self.reap(config.retention).await {
                tracing::warn!(error = %crate::chain::Chain(&e), "reaper pass failed; retrying next tick");
            }
        }
    }

    /// One pass of the reaper; public so tests can drive it.
    pub async fn reap(&self, retention: Option<Duration>) -> Result<()> {
        while self.expire_leases().await? == EXPIRY_BATCH as usize {}
        self.announce_ready().await?;
        if let Some(retention) = retention {
            let before = self.clock.now_ms() - retention.as_millis() as i64;
            while self.store.purge_finished(before, PURGE_BATCH).await? == PURGE_BATCH as usize {}
        }
        self.purge_audit().await?;
        if let Some(idle) = self.queue_idle {
            self.forget_idle_queues(idle).await?;
        }
        Ok(())
    }

    /// Wakes a waiter on each waiting queue where a task became ready by the clock (a delay or
    /// a backoff ran out): nothing else announces those. Idle queues cost one indexed look-up
    /// per tick and wake nobody.
    async fn announce_ready(&self) -> Result<()> {
        let waiting = self.waiters.queues_waiting();
        if waiting.is_empty() {
            return Ok(());
        }
        for queue in self
            .store
            .ready_queues(waiting, self.clock.now_ms())
            .await?
        {
            self.waiters.wake(&queue, 1);
        }
        Ok(())
    }

    async fn expire_leases(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let policy = self.policy;
        let decide = Arc::new(move |task: &_| rules::on_expiry(task, now, &policy));
        let expired = self.store.expire_leases(now, EXPIRY_BATCH, decide).await?;
        let queues = expired.iter().map(|task| task.queue.as_str());
        self.activity.count_each(queues, Transition::Expired, now);
        for task in &expired {
            m::lease_expired(&task.queue);
            tracing::info!(task_id = %task.id, queue = %task.queue, state = task.state.as_str(), "lease expired");
            match task.state {
                TaskState::Queued => self.wake(&task.queue, Wake::Tasks(1)),
                _ => {
                    self.wake(&task.queue, Wake::All);
                    self.finished(task.id, &task.queue);
                }
            }
        }
        Ok(expired.len())
    }
}
