//! Flow control's side of the engine: changing a queue's settings (a JSON merge patch, RFC
//! 7396), pausing a queue for a while on a worker's word, and waking long-polls when a gate
//! opens. A freed slot wakes one waiter from [`Engine::update`]; a token due or a timed pause
//! over wakes one from a timer armed at the moment a lease found the gate closed ([`Reopenings`])
//! — never a timer that polls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::QueueInfo;
use serde_json::Value;

use super::{Engine, Result, validate, view};
use crate::model::{Millis, QueueSettings};
use crate::store::{ChangeSettings, Wake};

impl Engine {
    /// Applies `patch`, a JSON merge patch of the queue's settings as the API shows them
    /// (`null` removes a setting; `rate_limit` is set whole), creating the queue if unknown;
    /// answers the queue. Patching
    /// `paused` to false also ends a pause a worker asked for. Every waiter of the queue looks
    /// again, on every master.
    pub async fn patch_queue(&self, name: &str, patch: Value) -> Result<QueueInfo> {
        let name = validate::queue_name(Some(name))?;
        if !patch.is_object() {
            return validate::invalid(
                "a merge patch of a queue's settings is a JSON object".into(),
            );
        }
        let change: ChangeSettings = Box::new(move |current| merge(current, &patch));
        self.store.change_settings(name.clone(), change).await?;
        self.wake(&name, Wake::All);
        self.queue(&name).await
    }

    /// Pauses `queue` for `secs` (at most the engine's maximum) from now, as a worker's failed
    /// result asked; a longer pause already set stays.
    pub(super) async fn pause_for(&self, queue: &str, secs: u64) -> Result<()> {
        let until = self.clock.now_ms() + super::rules::secs_to_ms(secs).min(self.max_pause_ms);
        let change: ChangeSettings = Box::new(move |current| {
            let longest = current.paused_until.map_or(until, |set| set.max(until));
            Ok(QueueSettings {
                paused_until: Some(longest),
                ..current.clone()
            })
        });
        self.store.change_settings(queue.to_owned(), change).await?;
        tracing::info!(queue, secs, "queue paused by a worker's result");
        self.reopen_at(queue, until);
        Ok(())
    }

    /// Wakes a waiter of `queue` at `at` (the engine's time), when its gate will admit a task
    /// by itself. One timer per queue: an earlier time replaces a later one.
    pub(super) fn reopen_at(&self, queue: &str, at: Millis) {
        let mut pending = self.reopenings.0.lock().expect("reopenings poisoned");
        if pending.get(queue).is_some_and(|&armed| armed <= at) {
            return;
        }
        pending.insert(queue.to_owned(), at);
        let delay = Duration::from_millis((at - self.clock.now_ms()).max(0) as u64);
        let (queue, reopenings) = (queue.to_owned(), self.reopenings.clone());
        let (waiters, shutdown) = (self.waiters.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            let mut pending = reopenings.0.lock().expect("reopenings poisoned");
            if pending.get(&queue) == Some(&at) {
                pending.remove(&queue);
            }
            drop(pending);
            waiters.wake(&queue, 1);
        });
    }
}

/// The queues whose gates open by themselves at a known time, and that time.
#[derive(Debug, Default, Clone)]
pub(super) struct Reopenings(Arc<Mutex<HashMap<String, Millis>>>);

/// `current` with `patch` merged into the API's view of it, checked.
fn merge(current: &QueueSettings, patch: &Value) -> std::result::Result<QueueSettings, String> {
    // Set whole, so that a patch is valid or not by itself, as its schema says, whatever the
    // queue's settings are.
    if let Some(rate) = patch.get("rate_limit").and_then(Value::as_object)
        && !(rate.contains_key("per_sec") && rate.contains_key("burst"))
    {
        return Err("`rate_limit` is set whole: both `per_sec` and `burst`".into());
    }
    let mut merged = serde_json::to_value(view::settings(current)).expect("settings serialize");
    json_patch::merge(&mut merged, patch);
    let wanted: common::QueueSettings = serde_json::from_value(merged)
        .map_err(|e| format!("the queue's settings after the patch are invalid: {e}"))?;
    let mut next = validate::settings(&wanted).map_err(|e| e.to_string())?;
    let resumed = patch.get("paused").is_some() && !next.paused;
    next.paused_until = current.paused_until.filter(|_| !resumed);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::RateLimit;

    #[test]
    fn a_merge_patch_sets_merges_and_removes_settings() {
        let set = merge(
            &QueueSettings::default(),
            &json!({"max_in_flight": 3, "rate_limit": {"per_sec": 50, "burst": 5}}),
        )
        .unwrap();
        assert_eq!(set.max_in_flight, Some(3));
        let rate = json!({"rate_limit": {"per_sec": 50, "burst": 10}});
        let merged = merge(&set, &rate).unwrap();
        assert_eq!(
            merged.rate_limit,
            Some(RateLimit {
                per_sec: 50.0,
                burst: 10
            })
        );
        let removed = merge(&merged, &json!({"max_in_flight": null})).unwrap();
        assert_eq!(removed.max_in_flight, None);
        assert_eq!(removed.rate_limit, merged.rate_limit);
    }

    #[test]
    fn an_invalid_result_of_a_patch_is_refused_with_the_reason() {
        let half = merge(
            &QueueSettings::default(),
            &json!({"rate_limit": {"burst": 5}}),
        );
        assert!(half.unwrap_err().contains("per_sec"));
        let limited = merge(
            &QueueSettings::default(),
            &json!({"rate_limit": {"per_sec": 5, "burst": 5}}),
        )
        .unwrap();
        let half_again = merge(&limited, &json!({"rate_limit": {"burst": 9}}));
        assert!(half_again.unwrap_err().contains("whole"));
        let zero = merge(&QueueSettings::default(), &json!({"key_limit": 0}));
        assert!(zero.unwrap_err().contains("key_limit"));
        let unknown = merge(&QueueSettings::default(), &json!({"max_inflight": 3}));
        assert!(unknown.unwrap_err().contains("max_inflight"));
    }

    #[test]
    fn resuming_ends_a_pause_a_worker_asked_for() {
        let paused = QueueSettings {
            paused_until: Some(5_000),
            ..QueueSettings::default()
        };
        assert_eq!(
            merge(&paused, &json!({"key_limit": 2}))
                .unwrap()
                .paused_until,
            Some(5_000)
        );
        let resumed = merge(&paused, &json!({"paused": false})).unwrap();
        assert_eq!(resumed.paused_until, None);
    }
}
