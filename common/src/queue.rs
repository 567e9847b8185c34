//! Queues: counts per state and the sealed flag.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::{MAX_NAME_LEN, TaskState};

/// What every queue name matches, in a request body, a path or a query: a letter or digit, then
/// up to 199 letters, digits, `.`, `_` and `-`. Names appear in URLs, so they keep to characters
/// that need no escaping; and they start with a letter or digit, so that no queue is named `.`
/// or `..`, which clients and proxies read as a step of the path (`/queues/%2e%2e/seal`).
/// The schemas state it as a literal (utoipa takes no constant); a test holds them to this.
pub const QUEUE_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$";

/// A queue name, as it may appear in a URL: [`QUEUE_NAME_PATTERN`].
#[derive(Debug, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", example = "default")]
pub struct QueueName(pub String);

/// Whether `name` matches [`QUEUE_NAME_PATTERN`].
pub fn is_queue_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_allowed = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    starts_well && rest_allowed && name.len() <= MAX_NAME_LEN
}

/// Tasks of one queue per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateCounts {
    /// Tasks waiting to be leased, ready or not.
    pub queued: u64,
    /// Tasks under a live lease.
    pub leased: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks given up on.
    pub failed: u64,
    /// Tasks an operator cancelled.
    pub cancelled: u64,
}

impl StateCounts {
    /// Sets the count of tasks in `state`.
    pub fn set(&mut self, state: TaskState, count: u64) {
        let slot = match state {
            TaskState::Queued => &mut self.queued,
            TaskState::Leased => &mut self.leased,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        };
        *slot = count;
    }
}

/// `GET /queues/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// Its tasks, by state.
    pub counts: StateCounts,
    /// Age of the oldest task ready to lease, in seconds; `null` when none is.
    #[schema(required)]
    pub oldest_queued_age_secs: Option<f64>,
    /// A sealed queue takes no new tasks; once drained, leasers are told `no_more_tasks`.
    pub sealed: bool,
    /// Flow control: what `PATCH /queues/{name}` sets.
    pub settings: QueueSettings,
    /// Until when a worker's failed result (`pause_queue_secs`) paused the queue; `null` when
    /// it did not, or that pause is over.
    #[schema(required)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_until: Option<time::OffsetDateTime>,
    /// Tasks of the queue leased right now (the same as `counts.leased`).
    pub in_flight: u64,
    /// Tokens in the rate limit's bucket now; `null` without a rate limit.
    #[schema(required)]
    pub tokens: Option<f64>,
    /// Queued tasks each limit holds back right now.
    pub held_back: HeldBack,
}

/// A queue's flow-control settings. Each limit holds over every worker and every master; a
/// slot is a live lease, so it frees when the lease ends, however it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// A paused queue leases nothing: its tasks stay queued, submissions are still accepted, and
    /// leases already out finish as usual.
    #[serde(default)]
    pub paused: bool,
    /// At most this many tasks of the queue leased at once; `null`: no cap.
    #[serde(default, deserialize_with = "crate::integer::option")]
    #[schema(required, minimum = 1, maximum = 1000000)]
    pub max_in_flight: Option<u32>,
    /// Leases granted per second, as a token bucket; `null`: no rate limit.
    #[serde(default)]
    #[schema(required)]
    pub rate_limit: Option<RateLimit>,
    /// At most this many tasks leased at once per `concurrency_key`, keys served in turn;
    /// `null`: no key limit.
    #[serde(default, deserialize_with = "crate::integer::option")]
    #[schema(required, minimum = 1, maximum = 1000000)]
    pub key_limit: Option<u32>,
}

/// `PATCH /queues/{name}`: a JSON merge patch (RFC 7396) of a queue's `settings`. A
/// field sent is set, a field sent as `null` is removed (`paused`: false), a field left out is
/// kept. `rate_limit` is set whole, both its fields. (The master reads the patch as JSON and
/// merges it; this type is its schema.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettingsPatch {
    /// Pause (true) or resume (false or `null`) the queue.
    pub paused: Option<bool>,
    /// At most this many tasks of the queue leased at once; `null` removes the cap.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_in_flight: Option<u32>,
    /// Leases granted per second; `null` removes the rate limit.
    pub rate_limit: Option<RateLimit>,
    /// At most this many tasks leased at once per `concurrency_key`; `null` removes the limit.
    #[schema(minimum = 1, maximum = 1000000)]
    pub key_limit: Option<u32>,
}

/// A token bucket: each lease takes a token; `per_sec` tokens arrive each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Tokens per second, more than 0 (0.5: one lease every 2 seconds).
    #[schema(exclusive_minimum = 0, maximum = 1000000)]
    pub per_sec: f64,
    /// Most tokens the bucket holds: leases granted at once after a quiet spell.
    #[serde(deserialize_with = "crate::integer::exact")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub burst: u32,
}

/// Queued tasks each limit holds back right now (a task is counted under the first limit that
/// holds it: pause, then `max_in_flight`, then `rate_limit`, then `key_limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeldBack {
    /// Held by a pause: every queued task.
    pub paused: u64,
    /// Held by `max_in_flight`: every queued task, while the cap is reached.
    pub max_in_flight: u64,
    /// Held by `rate_limit`: every queued task, while the bucket holds less than a token.
    pub rate_limit: u64,
    /// Held by `key_limit`: the queued tasks of keys that have that many leased.
    pub key_limit: u64,
}

/// `GET /queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    /// Every known queue.
    pub queues: Vec<QueueInfo>,
}

#[cfg(test)]
mod tests {
    use super::{MAX_NAME_LEN, is_queue_name};

    #[test]
    fn names_of_letters_digits_dots_underscores_and_hyphens_are_queue_names() {
        for name in [
            "default",
            "a",
            "0",
            "emails.high-priority_2",
            "v1..2",
            "a-",
            "Z_",
        ] {
            assert!(is_queue_name(name), "{name}");
        }
        assert!(is_queue_name(&"q".repeat(MAX_NAME_LEN)));
    }

    #[test]
    fn dot_segments_leading_punctuation_and_other_characters_are_not() {
        for name in [
            "", ".", "..", ".hidden", "-x", "_x", "a b", "a/b", "a:b", "é", "a%2e",
        ] {
            assert!(!is_queue_name(name), "{name}");
        }
        assert!(!is_queue_name(&"q".repeat(MAX_NAME_LEN + 1)));
    }
}
