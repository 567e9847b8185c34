//! Starting the real `master-svc` binary on what an operator can get wrong: a second master on
//! one SQLite file, a damaged file, a port in use, a missing directory, PostgreSQL down, a zero
//! lease. Each must refuse to start with a message that says what failed and what to do.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::SubmitBatch;
use leasehold_testkit::free_port;
use leasehold_testkit::master::{Master, command};
use serde_json::json;

/// Runs `command` to its exit (killed after 30 s) and returns what it printed.
fn run_to_exit(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// Asserts that the master exited with an error whose output says each of `words`.
fn assert_refused(output: &Output, words: &[&str]) {
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the master started: {said}");
    for word in words {
        assert!(said.contains(word), "{word:?} not in: {said}");
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

#[tokio::test]
async fn a_second_master_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("leasehold.db"));
    let first = Master::start(&url).await;

    let second = run_to_exit(command(free_port(), &url));

    assert_refused(&second, &["leasehold.db", "in use by another master"]);
    assert_eq!(first.readyz().await, Some(200));
    first.kill();
    // The lock goes with the process, however it ends.
    Master::start(&url).await.kill();
}

#[tokio::test]
async fn a_damaged_sqlite_file_is_refused_with_how_to_recover_unless_the_check_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leasehold.db");
    let master = Master::start(&sqlite_url(&path)).await;
    let tasks = (0..2000)
        .map(|n| common::SubmitTask::new(json!({ "n": n, "pad": "x".repeat(100) })))
        .collect();
    let client = leasehold_client::http_client();
    let response = client
        .post(format!("{}/tasks/batch", master.url))
        .json(&SubmitBatch { tasks })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    master.kill();
    damage_index(&path, "tasks_ready");

    let refused = run_to_exit(command(free_port(), &sqlite_url(&path)));

    assert_refused(
        &refused,
        &[
            "leasehold.db",
            "damaged",
            ".recover",
            "--skip-integrity-check",
        ],
    );
    let mut skipping = command(free_port(), &sqlite_url(&path));
    skipping.arg("--skip-integrity-check");
    let mut started = skipping.stdout(Stdio::null()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        started.try_wait().unwrap().is_none(),
        "did not start with the check skipped"
    );
    started.kill().unwrap();
    started.wait().unwrap();
}

/// Overwrites the root page of `index` with garbage, after moving every page into the file.
fn damage_index(path: &Path, index: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let root: u64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [index],
            |row| row.get(0),
        )
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    let start = ((root - 1) * page_size) as usize;
    bytes[start..start + page_size as usize].fill(0x5a);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_port_in_use_is_named_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();

    let output = run_to_exit(command(port, &sqlite_url(&dir.path().join("x.db"))));

    let address = format!("cannot listen on 127.0.0.1:{port}");
    assert_refused(&output, &[&address, "--listen"]);
}

#[test]
fn a_database_file_in_a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("x.db");

    let output = run_to_exit(command(free_port(), &sqlite_url(&path)));

    assert_refused(&output, &["x.db", "does not exist"]);
}

#[test]
fn a_master_retries_an_unreachable_postgresql_until_its_connect_timeout() {
    let closed = free_port();
    let url = format!("postgres://leasehold@127.0.0.1:{closed}/leasehold");
    let mut master = command(free_port(), &url);
    master.args(["--store-connect-timeout-secs", "3"]);
    let started = Instant::now();

    let output = run_to_exit(master);

    let waited = started.elapsed();
    assert_refused(
        &output,
        &[&format!("PostgreSQL at 127.0.0.1:{closed}"), "retry_in"],
    );
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(10)).contains(&waited),
        "gave up after {waited:?}"
    );
}

#[test]
fn a_zero_default_lease_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = command(free_port(), &sqlite_url(&dir.path().join("x.db")));
    master.args(["--default-lease-secs", "0"]);

    let output = run_to_exit(master);

    assert_refused(&output, &["--default-lease-secs", "0"]);
}
