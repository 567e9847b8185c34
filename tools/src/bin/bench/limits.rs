//! What flow control costs when it does not bind: the batch-32 drain of the same no-op tasks on
//! a queue without settings, on one whose in-flight cap and rate limit are far above what the
//! lease loops take, and on one whose tasks each have a concurrency key under a key limit far
//! above what binds; and the keyed tasks without settings, which tells the key limit's cost from
//! the keys' (keyed tasks are leased by the key rotation with or without a limit). The rows are
//! taken in turns within each run, each on a fresh master, so that the machine's noise falls on
//! all of them alike; each row is read as a share of the unlimited one of the same run, and of
//! the same tasks without settings ((a) for the cap and the rate, (d) for the key limit), and
//! the medians of those shares are reported.

use serde_json::{Value, json};

use crate::Report;
use crate::load::{QUEUE, drain, fill, fill_keyed};
use crate::procs::{Master, Store, cpu_secs};
use crate::targets::column;

/// Tasks drained per row, by default.
pub(crate) const TASKS: u64 = 50_000;
/// Distinct concurrency keys of the keyed rows, by default.
pub(crate) const KEYS: u64 = 100;
/// The drain's shape, as `drain --batch 32` (and the targets) measure it.
const LOOPS: u64 = 64;
const BATCH: u32 = 32;
/// Far above the `LOOPS × BATCH` (2,048) tasks the loops can hold leased at once.
const MAX_IN_FLIGHT: u32 = 100_000;
/// The largest rate and burst the master accepts: a bucket that never runs dry here.
const RATE_PER_SEC: u32 = 1_000_000;
const BURST: u32 = 1_000_000;
/// Above the 2,048 tasks the loops can hold at once, so no key can reach it.
const KEY_LIMIT: u32 = 10_000;

/// One row: a queue's settings and whether its tasks have concurrency keys.
struct Row {
    label: String,
    settings: Option<Value>,
    keyed: bool,
    /// The row of the same tasks without settings: what the limits' cost is read against.
    baseline: usize,
}

fn rows(keys: u64) -> [Row; 4] {
    [
        Row {
            label: "(a) no settings".into(),
            settings: None,
            keyed: false,
            baseline: 0,
        },
        Row {
            label: format!(
                "(b) `max_in_flight` {MAX_IN_FLIGHT}, `rate_limit` {RATE_PER_SEC}/s burst {BURST}"
            ),
            settings: Some(json!({
                "max_in_flight": MAX_IN_FLIGHT,
                "rate_limit": { "per_sec": RATE_PER_SEC, "burst": BURST },
            })),
            keyed: false,
            baseline: 0,
        },
        Row {
            label: format!("(c) {keys} concurrency keys, `key_limit` {KEY_LIMIT}"),
            settings: Some(json!({ "key_limit": KEY_LIMIT })),
            keyed: true,
            baseline: 3,
        },
        Row {
            label: format!("(d) {keys} concurrency keys, no settings"),
            settings: None,
            keyed: true,
            baseline: 3,
        },
    ]
}

/// Prints one table: each row's tasks/s, its share of (a) and of the same tasks without
/// settings (its baseline: (a) for (b), (d) for (c)), and the master's CPU per task (medians of
/// `runs`; each share is taken within a run).
pub(crate) async fn limits(store: &Store, tasks: u64, keys: u64, runs: usize) {
    let rows = rows(keys);
    let mut samples: Vec<Vec<Vec<f64>>> = vec![Vec::new(); rows.len()];
    for run in 1..=runs {
        let mut drained = Vec::new();
        for row in &rows {
            drained.push(limited_drain(store, tasks, keys, row).await);
        }
        for ((row, samples), mut sample) in rows.iter().zip(&mut samples).zip(drained.clone()) {
            sample.push(sample[0] / drained[0][0] * 100.0);
            sample.push(sample[0] / drained[row.baseline][0] * 100.0);
            eprintln!("run {run}: {} {sample:?}", row.label);
            samples.push(sample);
        }
    }
    println!(
        "| row (median of {runs}, {tasks} tasks, {LOOPS} loops, lease batch {BATCH}) | tasks/s | \
         share of (a) | share of the same tasks without settings | master CPU per task |"
    );
    println!("|---|---|---|---|---|");
    for (row, samples) in rows.iter().zip(&samples) {
        println!(
            "| {} | {:.0} | {:.0} % | {:.0} % | {:.0} µs |",
            row.label,
            column(samples, 0),
            column(samples, 2),
            column(samples, 3),
            column(samples, 1)
        );
    }
}

/// Tasks/s and the master's CPU per task (µs) of a drain of `tasks` queued no-op tasks on a
/// queue with `row`'s settings. Every task must drain: a limit that binds leaves a lease loop
/// empty-handed, and the loop stops short.
async fn limited_drain(store: &Store, tasks: u64, keys: u64, row: &Row) -> Vec<f64> {
    let master = Master::start(store, &[]).await;
    if let Some(settings) = &row.settings {
        let queue = master.client.patch_queue(QUEUE, settings).await;
        queue.unwrap_or_else(|e| panic!("the settings of {}: {e}", row.label));
    }
    if row.keyed {
        fill_keyed(&master.client, QUEUE, tasks, keys).await;
    } else {
        fill(&master.client, QUEUE, tasks, 5_000, 4, &Value::Null).await;
    }
    let cpu_before = cpu_secs(master.proc.pid());
    let rate = drain(
        &master.client,
        QUEUE,
        LOOPS,
        BATCH,
        Report::WithLease,
        tasks,
    )
    .await;
    let cpu = cpu_secs(master.proc.pid()) - cpu_before;
    let queue = master.client.queue(QUEUE).await.expect("queue");
    assert_eq!(
        queue.counts.succeeded, tasks,
        "{}: a limit bound ({:?} held back)",
        row.label, queue.held_back
    );
    vec![rate, cpu / tasks as f64 * 1e6]
}
