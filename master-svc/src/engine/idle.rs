//! Forgetting idle queues: a queue with no tasks and no settings (not sealed) stops being listed
//! and exported once it has been seen so for `--queue-idle-secs`. Producers choose queue names,
//! and without this every name ever used stayed in `GET /queues` and `/metrics` for good.
//!
//! Which queues are empty, and since when, is this master's own observation, checked every
//! quarter of the idle time: a restart starts the wait again, which only keeps a queue longer.
//! The store forgets a queue only if it is still empty and unsealed when it does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Engine, Result};
use crate::model::Millis;

/// When the idle queues were last looked for, and the queues seen empty since when.
#[derive(Debug, Default)]
pub(super) struct IdleQueues {
    // A std mutex: held only to read or update the map, never across an await.
    seen: Mutex<Seen>,
    /// Held for a whole look. Two passes at once (the reaper's and one a caller runs, as tests
    /// do) would otherwise split the work: the one that finds the look due does it while the
    /// other returns at once, before the queues it should see forgotten are.
    look: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Seen {
    next_look: Millis,
    empty_since: HashMap<String, Millis>,
}

impl Engine {
    /// Forgets the queues that have been empty and unsealed for `idle`; looks every `idle / 4`.
    pub(super) async fn forget_idle_queues(&self, idle: Duration) -> Result<()> {
        let _look = self.idle.look.lock().await;
        let idle_ms = idle.as_millis() as Millis;
        let now = self.clock.now_ms();
        if !self.idle.due(now, idle_ms / 4) {
            return Ok(());
        }
        let empty: Vec<String> = self
            .store
            .queues(None)
            .await?
            .into_iter()
            .filter(|q| !q.sealed && q.counts == Default::default())
            .map(|q| q.name)
            .collect();
        for name in self.idle.idle_for(empty, now, idle_ms) {
            if self.store.forget_queue(name.clone()).await? {
                tracing::info!(queue = %name, "idle queue forgotten");
            }
        }
        Ok(())
    }
}

impl IdleQueues {
    /// Whether it is time to look again; if so, the next look is `every` from `now`.
    fn due(&self, now: Millis, every: Millis) -> bool {
        let mut seen = self.seen.lock().expect("idle queues poisoned");
        if now < seen.next_look {
            return false;
        }
        seen.next_look = now + every.max(1);
        true
    }

    /// Notes the queues that are `empty` now (forgetting any that no longer are); returns those
    /// empty for `idle_ms` or more.
    fn idle_for(&self, empty: Vec<String>, now: Millis, idle_ms: Millis) -> Vec<String> {
        let mut seen = self.seen.lock().expect("idle queues poisoned");
        let mut still_empty = HashMap::with_capacity(empty.len());
        for name in empty {
            let since = seen.empty_since.get(&name).copied().unwrap_or(now);
            still_empty.insert(name, since);
        }
        seen.empty_since = still_empty;
        let idle = seen
            .empty_since
            .iter()
            .filter(|(_, since)| now - **since >= idle_ms);
        idle.map(|(name, _)| name.clone()).collect()
    }
}
