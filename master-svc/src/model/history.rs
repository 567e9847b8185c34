//! A task's attempt history: every lease it was given and how each ended, and each request that
//! fencing refused for one of its leases. The master keeps it in the task's row, and purges it
//! with the task. The task's last lease is its own `lease` (how and when it ended included),
//! written by the transition that ends it; the next lease moves it here, in the row it writes
//! anyway. So a task leased once (most tasks) writes no history at all: a few integers in its
//! row, not a JSON document. The engine's rules keep it ([`crate::engine::rules`]); it is
//! bounded per task, the oldest attempts summarised in [`Earlier`], never dropped without a
//! trace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LeaseEnd, Millis};

/// What a task's row keeps of its leases before the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Attempts older than those kept, and refusals beyond those kept, as counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<Earlier>,
    /// Leases that ended, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended: Vec<Attempt>,
    /// Requests refused for one of the task's leases, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
}

/// One lease that ended, before the task's last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The task's attempt count while the lease was held (a released lease gives it back, so
    /// the next lease has the same number).
    pub attempt: u32,
    pub lease_id: String,
    pub worker_id: String,
    pub leased_at: Millis,
    pub heartbeats: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<Millis>,
    pub ended_at: Millis,
    pub end: LeaseEnd,
    /// The failure the lease ended with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A worker's request refused for a lease: a zombie worker's late result, a split brain's
/// heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub lease_id: String,
    pub at: Millis,
    /// The request's worker, or else the one the lease was granted to, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    pub request: Request,
    /// The conflict's kind, as its problem type names it (`lease-expired`, ...).
    pub reason: String,
}

/// Which request of a lease holder was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Result,
    Heartbeat,
    Release,
}

/// What the history no longer keeps one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earlier {
    /// Attempts summarised.
    pub attempts: u32,
    /// How many of them ended each way, by [`LeaseEnd::as_str`].
    pub ends: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_leased_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ended_at: Option<Millis>,
    /// Refusals summarised.
    pub refused: u32,
}

impl History {
    /// Summarises the oldest ended leases beyond `keep`.
    pub fn keep(&mut self, keep: usize) {
        let over = self.ended.len().saturating_sub(keep);
        for old in self.ended.drain(..over) {
            let earlier = self.earlier.get_or_insert_with(Earlier::default);
            earlier.attempts += 1;
            *earlier.ends.entry(old.end.as_str().to_owned()).or_default() += 1;
            earlier.first_leased_at.get_or_insert(old.leased_at);
            earlier.last_ended_at = Some(old.ended_at);
        }
    }

    /// Adds a refusal, counting the oldest beyond `keep` in the summary.
    pub fn refuse(&mut self, refusal: Refusal, keep: usize) {
        self.refused.push(refusal);
        let over = self.refused.len().saturating_sub(keep.max(1));
        if over > 0 {
            self.refused.drain(..over);
            self.earlier.get_or_insert_with(Earlier::default).refused += over as u32;
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &History::default()
    }

    /// As the store keeps it: `None` for an empty history (most tasks: a lease that ends
    /// writes one).
    pub fn to_json(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).expect("a history serialises"))
    }

    /// From what [`to_json`](Self::to_json) stored.
    pub fn from_json(text: Option<&str>) -> serde_json::Result<History> {
        text.map_or(Ok(History::default()), serde_json::from_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(n: u32, end: LeaseEnd) -> Attempt {
        Attempt {
            attempt: n,
            lease_id: format!("l{n}"),
            worker_id: "w".into(),
            leased_at: n as i64 * 10,
            heartbeats: 0,
            last_heartbeat_at: None,
            ended_at: n as i64 * 10 + 5,
            end,
            error: None,
        }
    }

    #[test]
    fn attempts_beyond_those_kept_are_summarised_oldest_first() {
        let mut history = History::default();
        for n in 1..=5 {
            let end = if n % 2 == 0 {
                LeaseEnd::Expired
            } else {
                LeaseEnd::Failed
            };
            history.ended.push(ended(n, end));
        }
        history.keep(3);
        let kept: Vec<u32> = history.ended.iter().map(|a| a.attempt).collect();
        assert_eq!(kept, [3, 4, 5]);
        let earlier = history.earlier.unwrap();
        assert_eq!(earlier.attempts, 2);
        assert_eq!(earlier.ends["failed"], 1);
        assert_eq!(earlier.ends["expired"], 1);
        assert_eq!(
            (earlier.first_leased_at, earlier.last_ended_at),
            (Some(10), Some(25))
        );
    }

    #[test]
    fn refusals_beyond_those_kept_are_counted() {
        let mut history = History::default();
        for at in 0..4 {
            let refusal = Refusal {
                lease_id: "l1".into(),
                at,
                worker_id: Some("w".into()),
                request: Request::Result,
                reason: "lease-expired".into(),
            };
            history.refuse(refusal, 2);
        }
        assert_eq!(
            history.refused.iter().map(|r| r.at).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(history.earlier.unwrap().refused, 2);
    }

    #[test]
    fn an_empty_history_is_stored_as_nothing_and_read_back() {
        assert_eq!(History::default().to_json(), None);
        let mut history = History::default();
        history.ended.push(ended(1, LeaseEnd::Succeeded));
        let stored = history.to_json();
        assert_eq!(History::from_json(stored.as_deref()).unwrap(), history);
    }
}
