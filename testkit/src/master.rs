//! The real `master-svc` binary as a child process, on a free port of 127.0.0.1, for tests that
//! kill, restart or starve it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, free_port};

/// A running master, killed when dropped.
#[derive(Debug)]
pub struct Master {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Master {
    /// Starts a master on `database_url` and waits until it is ready.
    pub async fn start(database_url: &str) -> Master {
        let master = Master::spawn(database_url);
        master.wait_ready().await;
        master
    }

    /// Starts a master on `database_url` without waiting for it.
    pub fn spawn(database_url: &str) -> Master {
        let port = free_port();
        let child = command(port, database_url)
            .stdout(Stdio::null())
            .spawn()
            .expect("master-svc starts");
        Master {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The status of `GET /readyz`, or `None` when the master does not answer.
    pub async fn readyz(&self) -> Option<u16> {
        let client = leasehold_client::http_client();
        let response = client.get(format!("{}/readyz", self.url)).send().await;
        response.ok().map(|response| response.status().as_u16())
    }

    /// Waits up to 20 s for `GET /readyz` to answer 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.readyz().await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("master did not become ready");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for Master {
    /// Also when a test fails: an orphan master would hold the test's output open.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command that runs a master on 127.0.0.1:`port` and `database_url`, logging warnings.
pub fn command(port: u16, database_url: &str) -> Command {
    let mut command = Command::new(binary("master-svc"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url])
        .env("RUST_LOG", "warn");
    command
}
