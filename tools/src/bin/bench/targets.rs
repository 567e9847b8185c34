//! The end-to-end targets side by side: the batch-32 drain (what the master can do with an
//! ideal client) and real workers at 1 × 64, 2 × 32 and 4 × 16, taken in turns within each run
//! so that the machine's noise falls on all rows alike; each end-to-end row is read as a share
//! of the drain of the same run, and the median of those shares is reported. Each run also takes
//! submit → lease to idle long-polls (`latency`): the request an idle worker waits in, so the
//! handler's start less the worker's own microseconds.

use crate::Report;
use crate::e2e::e2e;
use crate::measure::{drain_run, latency};
use crate::procs::Store;

/// Tasks submitted one at a time to idle long-polls, per run.
const LATENCY_SAMPLES: usize = 1_000;
/// Idle long-polls waiting for them, as many as the largest shape's slots.
const LATENCY_WAITERS: usize = 64;

/// The real-worker shapes measured (workers × concurrency).
const SHAPES: [(u32, u32); 3] = [(1, 64), (2, 32), (4, 16)];

/// Prints one table: the drain, then each shape with its share of the drain (medians of `runs`).
pub(crate) async fn targets(store: &Store, tasks: u64, runs: usize) {
    let mut drains = Vec::new();
    let mut latencies = Vec::new();
    let mut rows: Vec<Vec<Vec<f64>>> = vec![Vec::new(); SHAPES.len()];
    for run in 1..=runs {
        let drain = drain_run(store, tasks, 64, 32, Report::WithLease).await;
        eprintln!("run {run}: drain {drain:?}");
        for (rows, (workers, concurrency)) in rows.iter_mut().zip(SHAPES) {
            let mut row = e2e(store, tasks, workers, concurrency).await;
            row.push(row[0] / drain[0] * 100.0);
            eprintln!("run {run}: e2e {workers} × {concurrency} {row:?}");
            rows.push(row);
        }
        drains.push(drain);
        let leased = latency(store, LATENCY_SAMPLES, LATENCY_WAITERS).await;
        eprintln!("run {run}: latency {leased:?}");
        latencies.push(leased);
    }
    let drain = column(&drains, 0);
    println!(
        "| row (median of {runs}, {tasks} tasks) | tasks/s | share of the drain (median of the runs' shares) | master CPU per task | workers CPU per task | idle latency p50 / p99 (e2e rows: submit → succeeded) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| `drain --batch 32 --report with-lease` (64 loops) | {drain:.0} | 100 % | {:.0} µs | – | – |",
        column(&drains, 1)
    );
    for (samples, (workers, concurrency)) in rows.iter().zip(SHAPES) {
        println!(
            "| `e2e --workers {workers} --concurrency {concurrency}` | {:.0} | {:.0} % | {:.0} µs | {:.0} µs | {:.2} / {:.2} ms |",
            column(samples, 0),
            column(samples, 6),
            column(samples, 1),
            column(samples, 2),
            column(samples, 4),
            column(samples, 5),
        );
    }
    println!(
        "| `latency --samples {LATENCY_SAMPLES} --waiters {LATENCY_WAITERS}`: submit → lease to idle long-polls | – | – | – | – | {:.2} / {:.2} ms |",
        column(&latencies, 0),
        column(&latencies, 1),
    );
}

/// The median of column `c`.
pub(crate) fn column(samples: &[Vec<f64>], c: usize) -> f64 {
    let mut values: Vec<f64> = samples.iter().map(|s| s[c]).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
