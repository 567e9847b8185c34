//! A throwaway PostgreSQL server for tests: `initdb` and `postgres` from the distribution's
//! packages, in a temporary directory, on a free port of 127.0.0.1. One server per test binary,
//! started on first use; a fresh database for every caller.
//!
//! The server is watched by a small shell that holds the read end of a pipe whose write end this
//! process keeps: when the test binary exits, however it exits, the pipe closes and the shell
//! stops the server and deletes its directory. Nothing outlives the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::free_port;

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// How long `initdb` plus start-up may take.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Starts and stops the server; `$RUN` drops root (PostgreSQL refuses to run as root).
const SUPERVISOR: &str = r#"
set -e
$RUN "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-sync -E UTF8 > "$DIR/initdb.log" 2>&1
$RUN "$BIN/postgres" -D "$DIR/data" -p "$PORT" -k "$DIR" -c listen_addresses=127.0.0.1 \
    -c max_connections=500 -c fsync=off > "$DIR/postgres.log" 2>&1 &
pg=$!
cat > /dev/null || true
kill -INT "$pg" 2> /dev/null || true
wait "$pg" 2> /dev/null || true
rm -rf "$DIR"
"#;

struct Server {
    port: u16,
    bin: PathBuf,
    /// Held open for the life of the process; see the module comment.
    _lifeline: Mutex<ChildStdin>,
}

/// The URL of a new, empty database on this test binary's server.
pub fn fresh_database_url() -> String {
    let server = SERVER.get_or_init(Server::start);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::SeqCst)
    );
    server
        .psql(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}

impl Server {
    fn start() -> Server {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("leasehold-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let run = if running_as_root() {
            let owner = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            assert!(
                owner.is_ok_and(|s| s.success()),
                "cannot hand {} to the postgres user",
                dir.display()
            );
            "setpriv --reuid=postgres --regid=postgres --init-groups"
        } else {
            ""
        };
        let port = free_port();
        let mut supervisor = Command::new("sh")
            .args(["-c", SUPERVISOR])
            .env("RUN", run)
            .env("BIN", &bin)
            .env("DIR", &dir)
            .env("PORT", port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let lifeline = supervisor.stdin.take().expect("a pipe");
        let server = Server {
            port,
            bin,
            _lifeline: Mutex::new(lifeline),
        };
        server.wait_ready(&mut supervisor, &dir);
        server
    }

    /// Waits until the server answers; panics with its logs if it stops or never does.
    fn wait_ready(&self, supervisor: &mut Child, dir: &Path) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let error = match self.psql("SELECT 1") {
                Ok(()) => return,
                Err(e) => e,
            };
            let stopped = supervisor.try_wait().ok().flatten().is_some();
            if stopped || Instant::now() > deadline {
                let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
                panic!(
                    "PostgreSQL did not start in {}: {error}\ninitdb: {}\npostgres: {}",
                    dir.display(),
                    log("initdb.log"),
                    log("postgres.log")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn psql(&self, sql: &str) -> Result<(), String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

/// `LEASEHOLD_PG_BIN`, or the newest `/usr/lib/postgresql/*/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LEASEHOLD_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server binaries are not installed (apt-get install postgresql, or set \
             LEASEHOLD_PG_BIN to the directory holding initdb and postgres)"
        ),
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}
