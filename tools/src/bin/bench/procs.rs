//! The processes a benchmark runs against: a real master (and workers) on a temporary store,
//! or the echo server; and reading their memory and CPU use from /proc.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use leasehold_client::MasterClient;
use tempfile::TempDir;

/// A child process, killed when dropped.
pub(crate) struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

pub(crate) use leasehold_testkit::free_port;

/// A binary next to this one (build with `cargo build --release --workspace --bins` first).
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .expect("own path")
        .with_file_name(name)
}

pub(crate) fn spawn(name: &str, args: &[String]) -> Proc {
    let child = Command::new(sibling(name))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} next to bench ({e}); build it with --release first"));
    Proc(child)
}

/// Where the benchmarked master keeps its tasks.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// A SQLite file in a temporary directory.
    Sqlite { synchronous: String },
    /// A fresh database on this PostgreSQL server.
    Postgres { server: String },
}

impl Store {
    /// The `--database-url` and `--sqlite-synchronous` flags of a master on a new, empty store,
    /// and the PostgreSQL database made for it (to drop once the master is gone).
    fn master_args(&self, dir: &TempDir) -> (Vec<String>, Option<Database>) {
        match self {
            Store::Sqlite { synchronous } => {
                let args = vec![
                    "--database-url".to_owned(),
                    format!("sqlite:{}", dir.path().join("bench.db").display()),
                    "--sqlite-synchronous".to_owned(),
                    synchronous.clone(),
                ];
                (args, None)
            }
            Store::Postgres { server } => {
                let database = Database {
                    server: server.clone(),
                    name: format!("bench_{}", fastrand::u64(..)),
                };
                assert!(
                    database.psql(&format!("CREATE DATABASE {}", database.name)),
                    "psql could not create a database on {server}"
                );
                let url = format!("{}/{}", server.trim_end_matches('/'), database.name);
                (vec!["--database-url".to_owned(), url], Some(database))
            }
        }
    }
}

/// A database a benchmark made on a PostgreSQL server.
struct Database {
    server: String,
    name: String,
}

impl Database {
    /// Runs one statement on the server with `psql`; whether it succeeded.
    fn psql(&self, statement: &str) -> bool {
        Command::new("psql")
            .args(["-X", "-q", "-d", &self.server, "-c", statement])
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// A master on a temporary database.
pub(crate) struct Master {
    pub proc: Proc,
    pub url: String,
    pub client: MasterClient,
    database: Option<Database>,
    _dir: TempDir,
}

impl Drop for Master {
    /// Stops the master, then drops its PostgreSQL database: a run leaves no database behind
    /// (a server that kept every run's grew by gigabytes and drained slower).
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        if let Some(database) = &self.database
            && !database.psql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                database.name
            ))
        {
            eprintln!("psql could not drop database {}", database.name);
        }
    }
}

impl Master {
    pub(crate) async fn start(store: &Store, extra: &[&str]) -> Master {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut args = vec!["--listen".to_owned(), format!("127.0.0.1:{port}")];
        let (store_args, database) = store.master_args(&dir);
        args.extend(store_args);
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = spawn("master-svc", &args);
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url).await;
        Master {
            proc,
            client: MasterClient::new(&url, None),
            url,
            database,
            _dir: dir,
        }
    }
}

pub(crate) async fn wait_ready(base_url: &str) {
    let client = leasehold_client::http_client();
    for _ in 0..400 {
        if let Ok(response) = client.get(format!("{base_url}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base_url} did not start");
}

/// Resident memory of `pid`, in MiB.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time (user + system) `pid` has used, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// Busy and total CPU ticks of the whole machine so far (the first line of /proc/stat).
pub(crate) fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    let total: f64 = ticks.iter().take(8).sum();
    (total - idle, total)
}
