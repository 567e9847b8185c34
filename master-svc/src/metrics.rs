//! Prometheus metrics: names, buckets, and the recording helpers the engine and the HTTP layer
//! call.
//!
//! Labels are queues, outcomes, reasons and route templates only — never task or worker ids, nor
//! raw paths, whose number is unbounded. Counters with a known set of labels are registered at 0
//! when the recorder is installed (and a queue's when it is first listed), so that `rate()` and
//! `increase()` see a series from the start rather than from its first event.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Duration;

use common::{Outcome, QueueInfo, TaskState};
use metrics::{
    Label, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_process::Collector;

use crate::model::{Conflict, TaskRecord};

const SUBMITTED: &str = "leasehold_tasks_submitted_total";
const FINISHED: &str = "leasehold_task_results_total";
const LEASES_GRANTED: &str = "leasehold_leases_granted_total";
const LEASES_EXPIRED: &str = "leasehold_leases_expired_total";
const REFUSED: &str = "leasehold_requests_refused_total";
const QUEUE_TASKS: &str = "leasehold_queue_tasks";
const LEASE_WAIT: &str = "leasehold_lease_wait_seconds";
const TASK_DURATION: &str = "leasehold_task_duration_seconds";
const LONG_POLLS: &str = "leasehold_long_polls_waiting";
const PUSH_DISPATCHES: &str = "leasehold_push_dispatches_total";
const PUSH_WORKERS: &str = "leasehold_push_workers";
const PUSH_IN_FLIGHT: &str = "leasehold_push_in_flight";
const QUEUE_OLDEST_AGE: &str = "leasehold_queue_oldest_ready_age_seconds";
const QUEUE_IN_FLIGHT: &str = "leasehold_queue_in_flight";
const QUEUE_PAUSED: &str = "leasehold_queue_paused";
const QUEUE_HELD_BACK: &str = "leasehold_queue_held_back";
const QUEUE_TOKENS: &str = "leasehold_queue_rate_tokens";
const HTTP_REQUESTS: &str = "leasehold_http_requests_total";
const HTTP_DURATION: &str = "leasehold_http_request_duration_seconds";
const STORE_ERRORS: &str = "leasehold_store_errors_total";
const TOKEN_RELOADS: &str = "leasehold_tokens_reloads_total";
const FORBIDDEN: &str = "leasehold_requests_forbidden_total";

/// Every `outcome` of `leasehold_task_results_total`.
const RESULT_OUTCOMES: [&str; 4] = ["succeeded", "retried", "failed", "cancelled"];
/// Every `outcome` of `leasehold_push_dispatches_total`.
const PUSH_OUTCOMES: [&str; 5] = ["succeeded", "failed", "accepted", "busy", "error"];
/// Every `reason` of `leasehold_requests_refused_total`: each [`Conflict::kind`].
const REFUSAL_REASONS: [&str; 10] = [
    "lease-expired",
    "lease-superseded",
    "task-finished",
    "lease-ended",
    "lease-released",
    "result-mismatch",
    "wrong-worker",
    "wrong-state",
    "queue-sealed",
    "idempotency-key-reused",
];
/// The queue every master serves unless told otherwise, registered from the start.
const DEFAULT_QUEUE: &str = "default";

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];
/// Requests take from tens of microseconds to a long-poll's 60 s.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The process-wide recorder, installed on first use. Several apps in one test process share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                })
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            process().describe();
            register_zeroes();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(SUBMITTED, "Tasks accepted, by queue.");
    describe_counter!(
        FINISHED,
        "Results recorded, by queue and outcome (succeeded, retried, failed, cancelled)."
    );
    describe_counter!(LEASES_GRANTED, "Leases handed to workers, by queue.");
    describe_counter!(
        LEASES_EXPIRED,
        "Leases that ran out before a result, by queue."
    );
    describe_counter!(
        REFUSED,
        "Worker and operator requests refused with 409, by reason."
    );
    describe_gauge!(LONG_POLLS, "Lease requests waiting for a task.");
    describe_counter!(
        PUSH_DISPATCHES,
        "Tasks pushed to workers, by outcome (succeeded, failed, accepted, busy, error)."
    );
    describe_gauge!(PUSH_WORKERS, "Push workers by state (healthy, unhealthy).");
    describe_gauge!(
        PUSH_IN_FLIGHT,
        "Tasks in flight per push worker (workers are a configured, bounded set)."
    );
    describe_histogram!(LEASE_WAIT, "Time from a task becoming ready to its lease.");
    describe_histogram!(
        TASK_DURATION,
        "Time from lease to result, by queue and outcome."
    );
    describe_counter!(
        STORE_ERRORS,
        "Requests answered 503 because the store failed (nothing of them was kept)."
    );
    describe_counter!(
        TOKEN_RELOADS,
        "Reloads of --tokens-file (SIGHUP), by outcome (ok, failed: the old tokens stay)."
    );
    describe_counter!(
        FORBIDDEN,
        "Requests answered 403, by role and rule (role, queue_scope)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        "Time from a request's arrival to its answer's headers, by method, route template and \
         status (a long-poll's wait included)."
    );
}

/// The `process_*` series every Prometheus client exports (CPU, RSS, open fds, threads, start
/// time), read from `/proc` at each scrape by `metrics-process`. They keep their standard names,
/// without the `leasehold_` prefix, so that stock dashboards and alerts find them.
fn process() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(Collector::default)
}

/// Registers at 0 every counter whose labels are known before anything happens.
fn register_zeroes() {
    counter!(STORE_ERRORS).absolute(0);
    for outcome in ["ok", "failed"] {
        counter!(TOKEN_RELOADS, "outcome" => outcome).absolute(0);
    }
    for reason in REFUSAL_REASONS {
        counter!(REFUSED, "reason" => reason).absolute(0);
    }
    for outcome in PUSH_OUTCOMES {
        counter!(PUSH_DISPATCHES, "outcome" => outcome).absolute(0);
    }
    queue_seen(DEFAULT_QUEUE);
}

/// Registers `queue`'s counters (at 0 if new; a counter that exists keeps its value).
fn queue_seen(queue: &str) {
    for name in [SUBMITTED, LEASES_GRANTED, LEASES_EXPIRED] {
        counter!(name, "queue" => queue.to_owned()).increment(0);
    }
    for outcome in RESULT_OUTCOMES {
        counter!(FINISHED, "queue" => queue.to_owned(), "outcome" => outcome).increment(0);
    }
}

/// Brings the series read at scrape time up to date: process metrics and every listed queue's
/// counters.
pub fn before_scrape(queues: &[QueueInfo]) {
    process().collect();
    for queue in queues {
        queue_seen(&queue.name);
    }
}

/// A request failed because the store did.
pub fn store_error() {
    counter!(STORE_ERRORS).increment(1);
}

/// A reload of the tokens file, done or failed.
pub fn tokens_reloaded(ok: bool) {
    counter!(TOKEN_RELOADS, "outcome" => if ok { "ok" } else { "failed" }).increment(1);
}

/// A request refused by its token's role or queue scope (`rule`).
pub fn forbidden(role: &'static str, rule: &'static str) {
    counter!(FORBIDDEN, "role" => role, "rule" => rule).increment(1);
}

/// One answered HTTP request. `route` is the matched route template (`/tasks/{id}`), never the
/// path a client sent.
pub fn http_request(method: &'static str, route: String, status: u16, took: Duration) {
    let labels = vec![
        Label::from_static_parts("method", method),
        Label::new("route", route),
        Label::new("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, labels.clone()).increment(1);
    histogram!(HTTP_DURATION, labels).record(took.as_secs_f64());
}

pub fn task_submitted(queue: &str) {
    counter!(SUBMITTED, "queue" => queue.to_owned()).increment(1);
}

pub fn lease_granted(queue: &str, waited_ms: i64) {
    counter!(LEASES_GRANTED, "queue" => queue.to_owned()).increment(1);
    histogram!(LEASE_WAIT, "queue" => queue.to_owned()).record(waited_ms.max(0) as f64 / 1000.0);
}

pub fn lease_expired(queue: &str) {
    counter!(LEASES_EXPIRED, "queue" => queue.to_owned()).increment(1);
}

/// A result changed `task`, after the lease ran for `ran_ms`.
pub fn task_finished(task: &TaskRecord, outcome: Outcome, ran_ms: i64) {
    let recorded = match (outcome, task.state) {
        (Outcome::Succeeded, _) => "succeeded",
        (Outcome::Failed, TaskState::Queued) => "retried",
        (Outcome::Failed, TaskState::Cancelled) => "cancelled",
        (Outcome::Failed, _) => "failed",
    };
    counter!(FINISHED, "queue" => task.queue.clone(), "outcome" => recorded).increment(1);
    histogram!(TASK_DURATION, "queue" => task.queue.clone(), "outcome" => recorded)
        .record(ran_ms.max(0) as f64 / 1000.0);
}

pub fn request_refused(conflict: &Conflict) {
    counter!(REFUSED, "reason" => conflict.kind()).increment(1);
}

/// Sets the gauges read at scrape time that the recorder keeps.
pub fn set_long_polls(long_polls: usize) {
    gauge!(LONG_POLLS).set(long_polls as f64);
}

/// `leasehold_queue_tasks` and `leasehold_queue_oldest_ready_age_seconds` of `queues`, in the
/// text format. Written out at each scrape rather than kept in the recorder, where every queue
/// ever seen stayed a series: a queue that is forgotten leaves nothing behind, and a scrape
/// costs a few lines per queue.
pub fn queue_gauges(queues: &[QueueInfo]) -> String {
    let mut text = queue_tasks(queues);
    // 0 when nothing is ready, rather than no sample, so that an alert on the age sees the
    // queue recover.
    let _ = write!(
        text,
        "# HELP {QUEUE_OLDEST_AGE} Age of the oldest task ready to lease, per queue; 0 when none \
         is. Read at scrape time.\n\
         # TYPE {QUEUE_OLDEST_AGE} gauge\n"
    );
    for queue in queues {
        let name = escape_label(&queue.name);
        let age = queue.oldest_queued_age_secs.unwrap_or(0.0);
        let _ = writeln!(text, "{QUEUE_OLDEST_AGE}{{queue=\"{name}\"}} {age}");
    }
    text.push_str(&flow_control(queues));
    text
}

/// The flow-control gauges of `queues`: tasks in flight (what `max_in_flight` counts), whether
/// paused (by an operator or for a while by a worker), tasks each limit holds back, and the
/// tokens in each rate limit's bucket (queues with a rate limit only).
fn flow_control(queues: &[QueueInfo]) -> String {
    let mut text = String::new();
    gauge_family(
        &mut text,
        QUEUE_IN_FLIGHT,
        "Tasks leased now, per queue.",
        queues,
        |q| vec![(String::new(), q.in_flight as f64)],
    );
    gauge_family(
        &mut text,
        QUEUE_PAUSED,
        "1 while the queue is paused.",
        queues,
        |q| {
            let paused = q.settings.paused || q.paused_until.is_some();
            vec![(String::new(), f64::from(u8::from(paused)))]
        },
    );
    let help = "Queued tasks a limit holds back now, per queue and limit.";
    gauge_family(&mut text, QUEUE_HELD_BACK, help, queues, |q| {
        let held = q.held_back;
        [
            ("paused", held.paused),
            ("max_in_flight", held.max_in_flight),
            ("rate_limit", held.rate_limit),
            ("key_limit", held.key_limit),
        ]
        .into_iter()
        .map(|(limit, n)| (format!(",limit=\"{limit}\""), n as f64))
        .collect()
    });
    let help = "Tokens in the queue's rate-limit bucket now.";
    gauge_family(&mut text, QUEUE_TOKENS, help, queues, |q| {
        q.tokens.map(|t| (String::new(), t)).into_iter().collect()
    });
    text
}

/// One gauge family in the text format: for each queue, the samples `samples` gives (each with
/// its labels after the queue's, and its value).
fn gauge_family(
    text: &mut String,
    name: &str,
    help: &str,
    queues: &[QueueInfo],
    samples: impl Fn(&QueueInfo) -> Vec<(String, f64)>,
) {
    let _ = write!(
        text,
        "# HELP {name} {help} Read at scrape time.\n# TYPE {name} gauge\n"
    );
    for queue in queues {
        let queue_label = escape_label(&queue.name);
        for (labels, value) in samples(queue) {
            let _ = writeln!(text, "{name}{{queue=\"{queue_label}\"{labels}}} {value}");
        }
    }
}

fn queue_tasks(queues: &[QueueInfo]) -> String {
    let mut text = format!(
        "# HELP {QUEUE_TASKS} Tasks per queue and state, read at scrape time.\n\
         # TYPE {QUEUE_TASKS} gauge\n"
    );
    for queue in queues {
        let c = &queue.counts;
        let name = escape_label(&queue.name);
        for (state, n) in [
            ("queued", c.queued),
            ("leased", c.leased),
            ("succeeded", c.succeeded),
            ("failed", c.failed),
            ("cancelled", c.cancelled),
        ] {
            let _ = writeln!(
                text,
                "{QUEUE_TASKS}{{queue=\"{name}\",state=\"{state}\"}} {n}"
            );
        }
    }
    text
}

/// A label value as the text format writes it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn push_dispatched(outcome: &'static str) {
    counter!(PUSH_DISPATCHES, "outcome" => outcome).increment(1);
}

/// Sets the push gauges read at scrape time.
pub fn set_push_gauges(workers: &[common::WorkerInfo]) {
    let healthy = workers.iter().filter(|w| w.healthy).count();
    gauge!(PUSH_WORKERS, "state" => "healthy").set(healthy as f64);
    gauge!(PUSH_WORKERS, "state" => "unhealthy").set((workers.len() - healthy) as f64);
    for worker in workers {
        gauge!(PUSH_IN_FLIGHT, "worker" => worker.id.clone()).set(f64::from(worker.in_flight));
    }
}

#[cfg(test)]
mod tests {
    use common::{TaskId, TaskState};

    use super::REFUSAL_REASONS;
    use crate::model::Conflict;

    #[test]
    fn every_refusal_reason_is_registered_at_zero() {
        let every_conflict = [
            Conflict::LeaseExpired,
            Conflict::LeaseSuperseded,
            Conflict::TaskFinished(TaskState::Succeeded),
            Conflict::LeaseEnded,
            Conflict::LeaseReleased,
            Conflict::ResultMismatch,
            Conflict::WrongWorker,
            Conflict::WrongState(TaskState::Queued, "failed"),
            Conflict::QueueSealed("q".into()),
            Conflict::IdempotencyKeyReused("k".into(), TaskId(1), "payload"),
        ];
        let mut kinds: Vec<_> = every_conflict.iter().map(Conflict::kind).collect();
        let mut registered = REFUSAL_REASONS.to_vec();
        kinds.sort_unstable();
        registered.sort_unstable();
        assert_eq!(kinds, registered);
    }
}
