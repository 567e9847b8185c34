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
