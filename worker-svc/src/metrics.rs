//! The worker's Prometheus metrics.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const TASKS: &str = "leasehold_worker_tasks_total";
const IN_FLIGHT: &str = "leasehold_worker_tasks_in_flight";
const DURATION: &str = "leasehold_worker_task_duration_seconds";
const MASTER_ERRORS: &str = "leasehold_worker_master_errors_total";
const REFUSED: &str = "leasehold_worker_results_refused_total";
const RESULTS_SENT: &str = "leasehold_worker_results_sent_total";
const BUFFERED: &str = "leasehold_worker_tasks_buffered";
const HANDED_BACK: &str = "leasehold_worker_tasks_handed_back_total";

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// The process-wide recorder, installed on first use.
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
            describe_counter!(
                TASKS,
                "Tasks run, by outcome (succeeded, failed, lost, released, cancelled)."
            );
            describe_gauge!(IN_FLIGHT, "Tasks running now.");
            describe_histogram!(DURATION, "Time a handler took, by outcome.");
            describe_counter!(
                MASTER_ERRORS,
                "Failed calls to the master, by call (lease, heartbeat, result, release)."
            );
            describe_counter!(
                REFUSED,
                "Results the master refused because the lease was no longer live."
            );
            describe_counter!(
                RESULTS_SENT,
                "Results sent to the master, by how (lease: in a lease request; request: on their own)."
            );
            describe_gauge!(BUFFERED, "Leased tasks waiting for a slot (the prefetch buffer).");
            describe_counter!(
                HANDED_BACK,
                "Leased tasks handed back unstarted: the worker stopped, or they waited half their lease in the buffer."
            );
            // Bound now, to this recorder: see `per_task`.
            per_task();
            handle
        })
        .clone()
}

/// The series every task touches, looked up once: a lookup costs a hash of the name and labels,
/// which at tens of thousands of tasks a second is worth saving.
struct PerTask {
    in_flight: Gauge,
    buffered: Gauge,
    succeeded: Counter,
    failed: Counter,
    succeeded_secs: Histogram,
    failed_secs: Histogram,
}

fn per_task() -> &'static PerTask {
    static PER_TASK: OnceLock<PerTask> = OnceLock::new();
    PER_TASK.get_or_init(|| PerTask {
        in_flight: gauge!(IN_FLIGHT),
        buffered: gauge!(BUFFERED),
        succeeded: counter!(TASKS, "outcome" => "succeeded"),
        failed: counter!(TASKS, "outcome" => "failed"),
        succeeded_secs: histogram!(DURATION, "outcome" => "succeeded"),
        failed_secs: histogram!(DURATION, "outcome" => "failed"),
    })
}

/// Counts a task as in flight while alive.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        per_task().in_flight.increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        per_task().in_flight.decrement(1.0);
    }
}

pub fn task_finished(succeeded: bool, took: Duration) {
    let series = per_task();
    let (count, secs) = if succeeded {
        (&series.succeeded, &series.succeeded_secs)
    } else {
        (&series.failed, &series.failed_secs)
    };
    count.increment(1);
    secs.record(took.as_secs_f64());
}

pub fn task_ended(outcome: &'static str) {
    counter!(TASKS, "outcome" => outcome).increment(1);
}

pub fn master_error(call: &'static str) {
    counter!(MASTER_ERRORS, "call" => call).increment(1);
}

pub fn result_refused() {
    counter!(REFUSED).increment(1);
}

/// `via`: `lease` for results carried by a lease request, `request` for results sent on their own.
pub fn results_sent(via: &'static str, count: usize) {
    counter!(RESULTS_SENT, "via" => via).increment(count as u64);
}

/// Set at every turn of the pull loop.
pub fn buffered(count: usize) {
    per_task().buffered.set(count as f64);
}

pub fn handed_back(count: usize) {
    if count > 0 {
        counter!(HANDED_BACK).increment(count as u64);
    }
}
