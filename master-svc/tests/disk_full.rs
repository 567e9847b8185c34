//! A full disk: the real `master-svc` binary with its SQLite file on a small tmpfs, loaded with
//! single submissions and batches too large to fit. An answer is a promise: every task answered
//! 2xx must be in the database afterwards, and none answered 5xx. Mounting needs root; run as
//! another user, the tests say so and pass without running.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SubmitBatch, SubmitTask};
use leasehold_testkit::master::Master;
use serde_json::json;

/// What the clients were told, by task marker.
#[derive(Default)]
struct Told {
    stored: HashSet<String>,
    refused: HashSet<String>,
}

/// A tmpfs mounted on a temporary directory for the life of the value.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, or `None` (having said why) when this process is not root
    /// or the store under test is not SQLite.
    fn mount(mib: u32) -> Option<Tmpfs> {
        if std::env::var("LEASEHOLD_TEST_STORE").is_ok_and(|store| store != "sqlite") {
            eprintln!("skipped: the disk-full tests are about the embedded store");
            return None;
        }
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipped: mounting a small tmpfs needs root (run the suite as root)");
            return None;
        }
        let tmpfs = Tmpfs {
            dir: tempfile::tempdir().unwrap(),
        };
        tmpfs.mount_cmd(&["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"]);
        Some(tmpfs)
    }

    /// Gives the filesystem `mib` MiB, keeping what it holds.
    fn resize(&self, mib: u32) {
        self.mount_cmd(&["-o", &format!("remount,size={mib}m")]);
    }

    fn mount_cmd(&self, args: &[&str]) {
        let status = Command::new("mount")
            .args(args)
            .arg(self.dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mount {args:?} failed");
    }

    fn database_url(&self) -> String {
        format!("sqlite:{}", self.path("leasehold.db").display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Fills every free byte with a file of its own, so that no write needing room succeeds.
    fn fill(&self) -> PathBuf {
        let path = self.path("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [64 * 1024, 512, 1] {
            while file.write_all(&vec![0; chunk]).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// About 1.5 KB of payload, marked so that the database can be searched for it.
fn task(marker: String) -> SubmitTask {
    let mut task = SubmitTask::new(json!({ "marker": marker, "pad": "x".repeat(1500) }));
    task.idempotency_key = Some(marker);
    task
}

/// Records what the client was told about `markers`; a 4xx is a bug of the test or the master.
fn record(told: &Mutex<Told>, markers: Vec<String>, status: Option<u16>) {
    let mut told = told.lock().unwrap();
    match status {
        Some(200..=299) => told.stored.extend(markers),
        Some(500..=599) => told.refused.extend(markers),
        Some(other) => panic!("unexpected status {other}"),
        None => {} // no answer: either outcome is allowed
    }
}

/// Single submissions with idempotency keys until `until`.
async fn single_submitter(url: String, n: usize, until: Instant, told: Arc<Mutex<Told>>) {
    let client = leasehold_client::http_client();
    for i in 0.. {
        if Instant::now() > until {
            return;
        }
        let marker = format!("single-{n}-{i}");
        let sent = client
            .post(format!("{url}/tasks"))
            .json(&task(marker.clone()))
            .send()
            .await;
        record(&told, vec![marker], sent.ok().map(|r| r.status().as_u16()));
    }
}

/// Batches until `until`, alternately of 10,000 tasks (15 MB: more than the page cache holds,
/// so the transaction spills onto the full disk) and of 50.
async fn batch_submitter(url: String, n: usize, until: Instant, told: Arc<Mutex<Told>>) {
    let client = leasehold_client::http_client();
    for i in 0.. {
        if Instant::now() > until {
            return;
        }
        let size = if i % 2 == 0 { 10_000 } else { 50 };
        let markers: Vec<String> = (0..size).map(|j| format!("batch-{n}-{i}-{j}")).collect();
        let tasks = markers.iter().cloned().map(task).collect();
        let sent = client
            .post(format!("{url}/tasks/batch"))
            .json(&SubmitBatch { tasks })
            .send()
            .await;
        record(&told, markers, sent.ok().map(|r| r.status().as_u16()));
    }
}

/// The markers of every task in the database file.
fn stored_markers(database: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(database).unwrap();
    let mut statement = conn
        .prepare("SELECT json_extract(payload, '$.marker') FROM tasks")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_answered_2xx_is_kept_and_none_answered_5xx_when_the_disk_fills() {
    let Some(disk) = Tmpfs::mount(12) else { return };
    let master = Master::start(&disk.database_url()).await;
    let told = Arc::new(Mutex::new(Told::default()));
    let until = Instant::now() + Duration::from_secs(15);
    let mut load = Vec::new();
    for n in 0..8 {
        let url = master.url.clone();
        load.push(tokio::spawn(single_submitter(url, n, until, told.clone())));
    }
    for n in 0..2 {
        let url = master.url.clone();
        load.push(tokio::spawn(batch_submitter(url, n, until, told.clone())));
    }
    for client in load {
        client.await.unwrap();
    }
    disk.resize(512);
    master.kill();
    Master::start(&disk.database_url()).await.kill();

    let told = std::mem::take(&mut *told.lock().unwrap());
    let stored = stored_markers(&disk.path("leasehold.db"));
    eprintln!(
        "told stored: {}, told refused: {}, in the database: {}",
        told.stored.len(),
        told.refused.len(),
        stored.len()
    );
    assert!(!told.refused.is_empty(), "the disk never filled");
    let lost: Vec<_> = told.stored.difference(&stored).take(5).collect();
    assert!(lost.is_empty(), "answered 2xx, not stored: {lost:?}");
    let kept: Vec<_> = told.refused.intersection(&stored).take(5).collect();
    assert!(kept.is_empty(), "answered 5xx, stored: {kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_while_the_store_cannot_write_and_200_once_it_can() {
    let Some(disk) = Tmpfs::mount(8) else { return };
    let master = Master::start(&disk.database_url()).await;
    let client = leasehold_client::http_client();
    let submit = |size: usize| {
        let tasks = (0..size).map(|j| task(format!("t-{size}-{j}"))).collect();
        client
            .post(format!("{}/tasks/batch", master.url))
            .json(&SubmitBatch { tasks })
            .send()
    };
    assert_eq!(submit(1).await.unwrap().status(), 201);

    let filler = disk.fill();
    assert_eq!(submit(2000).await.unwrap().status(), 503);
    assert_eq!(master.readyz().await, Some(503), "the store cannot write");

    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while master.readyz().await != Some(200) {
        assert!(Instant::now() < deadline, "readyz stayed 503 with room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(submit(2000).await.unwrap().status(), 201);
    master.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_on_a_full_disk_before_any_write_has_failed() {
    let Some(disk) = Tmpfs::mount(8) else { return };
    let master = Master::start(&disk.database_url()).await;
    assert_eq!(master.readyz().await, Some(200));

    // No write has failed yet, and a one-row write may still fit in the WAL file's pages.
    let filler = disk.fill();
    assert_eq!(master.readyz().await, Some(503), "no room for a submission");

    std::fs::remove_file(filler).unwrap();
    assert_eq!(master.readyz().await, Some(200));
    master.kill();
}
