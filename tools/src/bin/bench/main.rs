//! Leasehold's benchmark: starts real `master-svc` (and `worker-svc`) processes on temporary
//! stores and drives them over HTTP through `MasterClient`, as workers and producers would.
//! Every figure is the median of `--runs` runs; each subcommand prints one Markdown table row
//! (`targets` and `limits` a table of their own).
//!
//! ```text
//! cargo build --release --workspace --bins
//! ./target/release/bench all            # every measurement, as in BENCHMARKS.md
//! ./target/release/bench drain --batch 32
//! ./target/release/bench limits --tasks 50000
//! ```

mod e2e;
mod limits;
mod load;
mod measure;
mod procs;
mod targets;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Leasehold benchmark")]
struct Args {
    #[command(subcommand)]
    command: Bench,
    /// Runs per measurement; the median is reported.
    #[arg(long, global = true, default_value_t = 3)]
    runs: usize,
    /// The master's `--sqlite-synchronous`.
    #[arg(long, global = true, default_value = "full")]
    synchronous: String,
    /// Run the master on PostgreSQL instead: the URL of a server (e.g.
    /// `postgres://postgres@127.0.0.1:5432`), on which each run creates a fresh database with
    /// `psql`.
    #[arg(long, global = true)]
    postgres: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Bench {
    /// Drain queued no-op tasks with concurrent lease loops.
    Drain {
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        #[arg(long, default_value_t = 64)]
        loops: u64,
        #[arg(long, default_value_t = 32)]
        batch: u32,
        /// How a loop hands back a leased batch's results.
        #[arg(long, value_enum, default_value_t = Report::WithLease)]
        report: Report,
    },
    /// Submit tasks: single `POST /tasks` (batch 1) or `POST /tasks/batch`.
    Submit {
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        #[arg(long, default_value_t = 1_000)]
        batch: u64,
        #[arg(long, default_value_t = 16)]
        loops: u64,
    },
    /// Submit → lease latency to idle long-polling workers.
    Latency {
        #[arg(long, default_value_t = 2_000)]
        samples: usize,
        #[arg(long, default_value_t = 64)]
        waiters: usize,
    },
    /// Master memory and CPU with many idle long-polls.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        waiters: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// Drain rate with a large backlog vs a small one.
    Backlog {
        #[arg(long, default_value_t = 1_000_000)]
        large: u64,
        #[arg(long, default_value_t = 10_000)]
        small: u64,
    },
    /// The same client against a trivial JSON echo endpoint: what HTTP allows here.
    Ceiling {
        #[arg(long, default_value_t = 200_000)]
        requests: u64,
        #[arg(long, default_value_t = 64)]
        loops: u64,
    },
    /// Push mode: queued tasks dispatched to workers' `/do-task` and completed.
    Push {
        #[arg(long, default_value_t = 50_000)]
        tasks: u64,
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// In-flight tasks per worker.
        #[arg(long, default_value_t = 32)]
        capacity: u32,
    },
    /// End to end: queued tasks run by real `worker-svc` processes (pulling, `uppercase`), from
    /// their start to the last success, with master and worker CPU per task; then submit →
    /// succeeded latency of single tasks to the idle workers.
    E2e {
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Slots per worker (`--concurrency`).
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
    },
    /// Issue 16's table: the batch-32 drain and end to end at 1 × 64, 2 × 32 and 4 × 16, in
    /// turns within each run, each end-to-end row with its share of the drain; then submit →
    /// lease to idle long-polls.
    Targets {
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
    },
    /// Flow control that does not bind: the batch-32 drain on a queue without settings, on
    /// one with an in-flight cap and a rate limit far above what it takes, and on one with
    /// concurrency keys under a key limit far above what binds (and with the same keys without
    /// settings), in turns within each run.
    Limits {
        #[arg(long, default_value_t = limits::TASKS)]
        tasks: u64,
        /// Distinct concurrency keys of the keyed rows' tasks.
        #[arg(long, default_value_t = limits::KEYS,
            value_parser = clap::value_parser!(u64).range(1..))]
        keys: u64,
    },
    /// Every measurement above with its defaults (drain at batch 1 and 32, submit single and
    /// batch, push at 32 and 128 in flight per worker, end to end at 1 × 64, 2 × 32, 4 × 16),
    /// then the limits' table.
    All,
    /// Internal: the echo server the ceiling measurement runs in its own process.
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        port: u16,
    },
}

/// How a drain loop reports results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Report {
    /// In the loop's next lease request, as `worker-svc` does: one request per batch.
    WithLease,
    /// In one `POST /tasks/results` per batch, then a lease: two requests per batch.
    Batch,
    /// One `POST /tasks/{id}/result` per task, then a lease.
    Single,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let store = match args.postgres {
        Some(server) => procs::Store::Postgres { server },
        None => procs::Store::Sqlite {
            synchronous: args.synchronous,
        },
    };
    match args.command {
        Bench::EchoServer { port } => return runtime.block_on(measure::echo_server(port)),
        Bench::Targets { tasks } => {
            return runtime.block_on(targets::targets(&store, tasks, args.runs));
        }
        Bench::Limits { tasks, keys } => {
            return runtime.block_on(limits::limits(&store, tasks, keys, args.runs));
        }
        _ => {}
    }
    let all = matches!(args.command, Bench::All);
    println!("| measurement | median of {} | command |", args.runs);
    println!("|---|---|---|");
    let benches = match args.command {
        Bench::All => measure::all(),
        one => vec![one],
    };
    for bench in benches {
        runtime.block_on(measure::run(&bench, args.runs, &store));
    }
    if all {
        println!();
        let (tasks, keys) = (limits::TASKS, limits::KEYS);
        runtime.block_on(limits::limits(&store, tasks, keys, args.runs));
    }
}
