//! What the services' logs tell a user: the worker's line at each task's end and its periodic
//! summary, one start-up line per service without a secret in it, and plain text (no ANSI escape
//! codes) when the log is a file.

use std::time::{Duration, Instant};

use common::{SubmitTask, TaskState};
use leasehold_testkit::postgres;
use serde_json::Value;

use crate::cluster::{
    Cluster, Process, free_port, payload, spawn_master, start_worker, wait_ready,
};

/// A handler that fails for good at its second attempt (the tasks get two).
const FAILING: &str = "exec:echo 'no such file' >&2; exit 2";

fn two_attempts(text: &str) -> SubmitTask {
    SubmitTask {
        max_attempts: Some(2),
        ..payload(text)
    }
}

/// The JSON lines of `process`'s log whose message is `message`.
fn lines(process: &Process, message: &str) -> Vec<Value> {
    process
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}

/// Waits up to 10 s for `count` lines with `message` in `process`'s log; returns those there.
async fn wait_for_lines(process: &Process, message: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = lines(process, message);
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_failing_for_good_logs_an_info_line_with_its_attempt_and_error() {
    let cluster = Cluster::start_on(free_port(), &["--retry-backoff-base-ms", "10"]).await;
    let args = ["--log-format", "json", "--handler", FAILING];
    let (worker, _) = cluster.worker("w01", &args).await;
    let task = cluster.submit(two_attempts("x")).await;
    cluster
        .wait_for_state(task.id, TaskState::Failed, Duration::from_secs(10))
        .await;

    let ends = wait_for_lines(&worker, "task ended", 2).await;

    assert_eq!(ends.len(), 2, "{}", worker.log_text());
    let outcomes: Vec<_> = ends.iter().map(|end| &end["fields"]["outcome"]).collect();
    assert_eq!(outcomes, ["failed", "failed_for_good"]);
    let last = &ends[1];
    assert_eq!(last["level"], "INFO");
    let fields = &last["fields"];
    assert_eq!(fields["task_id"], task.id.to_string());
    assert_eq!(
        (&fields["attempt"], &fields["queue"]),
        (&2.into(), &"default".into())
    );
    assert!(fields["duration_ms"].is_u64(), "{last}");
    let error = fields["error"].as_str().unwrap_or_default();
    assert!(error.ends_with("no such file"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_to_a_file_hold_no_escape_codes_even_from_a_handlers_error() {
    let cluster = Cluster::start_on(free_port(), &["--retry-backoff-base-ms", "10"]).await;
    // A coloured error, as a command writing to what it thinks is a terminal would print it.
    let red = r"exec:printf '\033[31mno such file\033[0m' >&2; exit 2";
    let (worker, _) = cluster.worker("w01", &["--handler", red]).await;
    let task = cluster.submit(two_attempts("x")).await;
    cluster
        .wait_for_state(task.id, TaskState::Failed, Duration::from_secs(10))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !worker.log_text().contains("failed_for_good") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let worker_log = worker.log_text();
    assert!(
        worker_log.contains("outcome=failed_for_good"),
        "{worker_log}"
    );
    for (name, log) in [
        ("worker", worker_log),
        ("master", cluster.master.log_text()),
    ] {
        assert!(log.contains(" INFO "), "the {name}'s log is empty: {log}");
        assert!(
            !log.contains('\x1b'),
            "an escape code in the {name}'s log: {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_logs_a_summary_when_tasks_ran_and_none_while_idle() {
    let cluster = Cluster::start().await;
    let args = ["--log-format", "json", "--log-summary-secs", "1"];
    let (worker, _) = cluster.worker("w01", &args).await;
    for n in 1..=2 {
        let task = cluster.submit(payload(&format!("task data {n}"))).await;
        cluster
            .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(10))
            .await;
    }

    let summaries = wait_for_lines(&worker, "tasks since the last summary", 1).await;
    // Idle since: two more periods pass without a line.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let all = lines(&worker, "tasks since the last summary");
    assert_eq!(all.len(), 1, "{}", worker.log_text());
    let fields = &summaries[0]["fields"];
    assert_eq!(summaries[0]["level"], "INFO");
    assert_eq!(
        (&fields["succeeded"], &fields["failed"]),
        (&2.into(), &0.into())
    );
    assert_eq!(fields["in_flight"], 0);
    assert!(fields["mean_duration_ms"].is_u64(), "{fields}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_lines_name_version_address_store_and_options_but_no_token_or_password() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = postgres::fresh_database_url();
    let with_password =
        database_url.replacen("postgres@", "postgres:db-secret-1@", 1) + "?password=db-secret-2";
    let port = free_port();
    let tokens = [
        "--api-token",
        "api-secret",
        "--worker-token",
        "worker-secret",
        "--metrics-token",
        "metrics-secret",
    ];
    let args: Vec<&str> = ["--log-format", "json"].into_iter().chain(tokens).collect();
    let master = spawn_master(dir.path(), "master", port, &with_password, &args, &[]);
    wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
    let master_url = format!("http://svc:url-secret@127.0.0.1:{port}");
    let sidecar = "http:http://side:sidecar-secret@127.0.0.1:9/work";
    let worker_args = [
        "--log-format",
        "json",
        "--no-pull",
        "--worker-token",
        "worker-secret",
        "--handler",
        sidecar,
    ];
    let (worker, _) = start_worker(&master_url, dir.path(), "w01", &worker_args).await;

    let listening = wait_for_lines(&master, "master listening", 1).await;
    let started = wait_for_lines(&worker, "worker started", 1).await;

    let master_line = &listening[0]["fields"];
    assert_eq!(master_line["store"], database_url, "{master_line}");
    assert_eq!(master_line["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(master_line["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(master_line["api_token_set"], true);
    assert_eq!(master_line["push"], false);
    let worker_line = &started[0]["fields"];
    assert_eq!(
        worker_line["master"],
        format!("http://svc@127.0.0.1:{port}/")
    );
    assert_eq!(worker_line["handler"], "http:http://side@127.0.0.1:9/work");
    assert_eq!(
        (&worker_line["pull"], &worker_line["worker_token_set"]),
        (&false.into(), &true.into())
    );
    for log in [master.log_text(), worker.log_text()] {
        for secret in [
            "secret-1",
            "secret-2",
            "api-secret",
            "worker-secret",
            "metrics-secret",
        ] {
            assert!(!log.contains(secret), "{secret} in the log: {log}");
        }
        assert!(
            !log.contains("url-secret") && !log.contains("sidecar-secret"),
            "{log}"
        );
    }
}
