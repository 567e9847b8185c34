//! Prometheus metrics: names, buckets, and the recording helpers the engine calls.
//!
//! Labels are queues, outcomes and reasons only — never task or worker ids, whose number is
//! unbounded.

use std::fmt::Write;
use std::sync::OnceLock;

use common::{Outcome, QueueInfo, TaskState};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// The process-wide recorder, installed on first use. Several apps in one test process share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
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

/// `leasehold_queue_tasks` of `queues`, in the text format. Written out at each scrape rather
/// than kept in the recorder, where every queue ever seen stayed a series: a queue that is
/// forgotten leaves nothing behind, and a scrape costs one line per queue and state.
pub fn queue_gauges(queues: &[QueueInfo]) -> String {
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
