//! Starting and signalling real master and worker processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{SubmitTask, Task, TaskId, TaskState};
use leasehold_client::MasterClient;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use leasehold_testkit::binary;
pub(crate) use leasehold_testkit::free_port;

/// A child process that is killed when dropped, its stderr kept in a file.
pub(crate) struct Process {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    /// Starts the workspace binary `name` with `args` and, besides this process's environment,
    /// `envs`.
    pub(crate) fn spawn(
        name: &str,
        args: &[String],
        envs: &[(&str, &Path)],
        log: PathBuf,
    ) -> Process {
        let child = Command::new(binary(name))
            .args(args)
            .env("RUST_LOG", "info,tower_http=warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Process {
            child: Some(child),
            log,
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.as_ref().unwrap().id() as i32);
        kill(pid, signal).expect("signal delivered");
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub(crate) async fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A master on a temporary database, and the workers started against it.
pub(crate) struct Cluster {
    pub dir: TempDir,
    pub master: Process,
    pub url: String,
    pub client: MasterClient,
}

impl Cluster {
    pub(crate) async fn start() -> Cluster {
        Cluster::start_on(free_port(), &[]).await
    }

    /// Starts a master on `port` with extra flags.
    pub(crate) async fn start_on(port: u16, extra: &[&str]) -> Cluster {
        Cluster::start_with(tempfile::tempdir().expect("temp dir"), port, extra, &[]).await
    }

    /// Starts a master in `dir` on `port` with extra flags and environment variables.
    pub(crate) async fn start_with(
        dir: TempDir,
        port: u16,
        extra: &[&str],
        envs: &[(&str, &Path)],
    ) -> Cluster {
        let url = format!("http://127.0.0.1:{port}");
        let master = start_master(dir.path(), port, extra, envs);
        let cluster = Cluster {
            client: MasterClient::new(&url, None),
            dir,
            master,
            url,
        };
        wait_ready(&format!("{}/readyz", cluster.url)).await;
        cluster
    }

    /// Kills the master with SIGKILL, waits `down`, and starts it again on the same port and
    /// database.
    pub(crate) async fn crash_master(&mut self, down: Duration) {
        self.master.signal(Signal::SIGKILL);
        tokio::time::sleep(down).await;
        self.master = start_master(self.dir.path(), self.port(), &[], &[]);
        wait_ready(&format!("{}/readyz", self.url)).await;
    }

    /// The master's port.
    pub(crate) fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Starts a worker with `--id id` and `args`; returns it with its own base URL.
    pub(crate) async fn worker(&self, id: &str, args: &[&str]) -> (Process, String) {
        start_worker(&self.url, self.dir.path(), id, args).await
    }

    pub(crate) async fn submit(&self, task: SubmitTask) -> Task {
        self.client.submit(&task).await.expect("task submitted")
    }

    pub(crate) async fn task(&self, id: TaskId) -> Task {
        self.client.task(id).await.expect("task read")
    }

    /// Polls until `done` holds for the task, up to `limit`; returns the task as last seen.
    pub(crate) async fn wait_for(
        &self,
        id: TaskId,
        limit: Duration,
        done: impl Fn(&Task) -> bool,
    ) -> Task {
        let deadline = Instant::now() + limit;
        loop {
            let task = self.task(id).await;
            if done(&task) || Instant::now() > deadline {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn wait_for_state(
        &self,
        id: TaskId,
        state: TaskState,
        limit: Duration,
    ) -> Task {
        let task = self.wait_for(id, limit, |t| t.state == state).await;
        assert_eq!(task.state, state, "task {id}: {task:?}");
        task
    }
}

fn start_master(dir: &Path, port: u16, extra: &[&str], envs: &[(&str, &Path)]) -> Process {
    let database_url = format!("sqlite:{}", dir.join("leasehold.db").display());
    spawn_master(dir, "master", port, &database_url, extra, envs)
}

/// Starts a master named `name` (its log is `dir/NAME.log`) on `port` and `database_url`.
pub(crate) fn spawn_master(
    dir: &Path,
    name: &str,
    port: u16,
    database_url: &str,
    extra: &[&str],
    envs: &[(&str, &Path)],
) -> Process {
    let args: Vec<String> = ["--listen", &format!("127.0.0.1:{port}")]
        .into_iter()
        .chain(["--database-url", database_url, "--tick-ms", "100"])
        .chain(extra.iter().copied())
        .map(str::to_owned)
        .collect();
    Process::spawn("master-svc", &args, envs, dir.join(format!("{name}.log")))
}

/// Starts a worker against the master at `master_url`, logging into `dir`.
pub(crate) async fn start_worker(
    master_url: &str,
    dir: &Path,
    id: &str,
    args: &[&str],
) -> (Process, String) {
    start_worker_on(free_port(), master_url, dir, id, args).await
}

/// As [`start_worker`], listening on `port`.
pub(crate) async fn start_worker_on(
    port: u16,
    master_url: &str,
    dir: &Path,
    id: &str,
    args: &[&str],
) -> (Process, String) {
    let mut all: Vec<String> = [
        "--master",
        master_url,
        "--id",
        id,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--wait-secs",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(args.iter().map(|s| s.to_string()));
    let process = Process::spawn("worker-svc", &all, &[], dir.join(format!("{id}.log")));
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/healthz")).await;
    (process, url)
}

pub(crate) async fn wait_ready(url: &str) {
    let client = leasehold_client::http_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

/// The value of a Prometheus sample whose line starts with `series`, or 0.
pub(crate) async fn metric(base_url: &str, series: &str) -> f64 {
    let text = leasehold_client::http_client()
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Polls the sample `series` at `base_url` until it reaches `at_least` or `limit` has passed;
/// returns its last value.
pub(crate) async fn wait_for_metric(
    base_url: &str,
    series: &str,
    at_least: f64,
    limit: Duration,
) -> f64 {
    let deadline = Instant::now() + limit;
    loop {
        let value = metric(base_url, series).await;
        if value >= at_least || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn payload(text: &str) -> SubmitTask {
    SubmitTask::new(Value::String(text.to_owned()))
}
