//! Command-line flags; every one can also be set from the environment.

use std::net::SocketAddr;

use clap::Parser;
use leasehold_service_kit::LogFormat;

pub const DEFAULT_MASTER: &str = "http://127.0.0.1:8080";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8081";
pub const DEFAULT_CONCURRENCY: u32 = 4;
pub const DEFAULT_WAIT_SECS: u64 = 20;
pub const DEFAULT_DRAIN_SECS: u64 = 25;
pub const DEFAULT_TASK_TIMEOUT_SECS: u64 = 3_600;
pub const DEFAULT_LOG_SUMMARY_SECS: u64 = 60;
/// Leased tasks buffered per slot by default (fewer when tasks are slow).
pub const PREFETCH_PER_SLOT: u32 = 16;

/// A Leasehold worker: leases tasks from the master, runs them, reports the results.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker-svc", version, about)]
pub struct Config {
    /// Base URL of the master: `http://HOST:PORT` or `https://HOST:PORT`.
    #[arg(long, env = "LEASEHOLD_MASTER_URL", default_value = DEFAULT_MASTER,
        value_parser = master_url)]
    pub master: String,

    /// Worker id reported to the master; the hostname (a pod's name) when unset.
    #[arg(long, env = "LEASEHOLD_WORKER_ID")]
    pub id: Option<String>,

    /// Queues to take tasks from, comma-separated.
    #[arg(
        long,
        env = "LEASEHOLD_QUEUES",
        value_delimiter = ',',
        default_value = "default"
    )]
    pub queues: Vec<String>,

    /// Tasks run at once.
    #[arg(long, env = "LEASEHOLD_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// Most leased tasks kept waiting for a free slot, so that a slot freed starts the next task
    /// without a round trip to the master; fewer when tasks are slow (only what the slots would
    /// start within 50 ms), none for tasks of a second or more. 16 × `--concurrency` when unset;
    /// 0 leases only for free slots.
    #[arg(long, env = "LEASEHOLD_PREFETCH")]
    pub prefetch: Option<u32>,

    /// What a task runs: `uppercase`, `process`, `exec:COMMAND` or `http:URL`.
    #[arg(long, env = "LEASEHOLD_HANDLER", default_value = "process")]
    pub handler: String,

    /// Lease length to ask for; each task's own when unset.
    #[arg(long, env = "LEASEHOLD_LEASE_SECS")]
    pub lease_secs: Option<u64>,

    /// Long-poll wait per lease request.
    #[arg(long, env = "LEASEHOLD_WAIT_SECS", default_value_t = DEFAULT_WAIT_SECS,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub wait_secs: u64,

    /// Longest a task may run before it is stopped (an `exec:` process is killed) and failed,
    /// to be retried if it has attempts left; 0 for no limit.
    #[arg(long, env = "LEASEHOLD_TASK_TIMEOUT_SECS", default_value_t = DEFAULT_TASK_TIMEOUT_SECS)]
    pub task_timeout_secs: u64,

    /// Exit 0 once the master says every queue is sealed and drained (batch jobs).
    #[arg(long, env = "LEASEHOLD_EXIT_WHEN_DRAINED")]
    pub exit_when_drained: bool,

    /// Do not lease: run only tasks the master pushes to `POST /do-task`.
    #[arg(long, env = "LEASEHOLD_NO_PULL")]
    pub no_pull: bool,

    /// Register with this master for push dispatch (renewed periodically, withdrawn on
    /// shutdown).
    #[arg(long, env = "LEASEHOLD_REGISTER")]
    pub register: Option<String>,

    /// URL the master reaches this worker at; `http://$POD_IP:PORT` on Kubernetes, else the
    /// listen address (127.0.0.1 for an unspecified one).
    #[arg(long, env = "LEASEHOLD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Answer pushed tasks with 202 at once, then heartbeat them and report their results to
    /// `--master` like pulled ones: for tasks longer than the master's push timeout.
    #[arg(long, env = "LEASEHOLD_PUSH_ASYNC")]
    pub push_async: bool,

    /// Address of the worker's own server (`/do-task`, probes, metrics).
    #[arg(long, env = "LEASEHOLD_WORKER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// On SIGTERM, how long running tasks may take to finish before they are released.
    #[arg(long, env = "LEASEHOLD_DRAIN_SECS", default_value_t = DEFAULT_DRAIN_SECS)]
    pub drain_secs: u64,

    /// Bearer token sent to the master, and required from it on `/do-task`.
    #[arg(long, env = "LEASEHOLD_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// Log format.
    #[arg(long, env = "LEASEHOLD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// How often a summary of the tasks run since the last one is logged (only when some
    /// started or ended); 0 for none.
    #[arg(long, env = "LEASEHOLD_LOG_SUMMARY_SECS", default_value_t = DEFAULT_LOG_SUMMARY_SECS)]
    pub log_summary_secs: u64,
}

impl Config {
    /// The URL to announce when registering, for a server bound to `bound`.
    pub fn advertise_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.advertise_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = match std::env::var("POD_IP") {
            Ok(ip) if !ip.is_empty() => ip,
            _ if bound.ip().is_unspecified() => "127.0.0.1".to_owned(),
            _ => bound.ip().to_string(),
        };
        format!("http://{host}:{}", bound.port())
    }

    /// The `--prefetch`, or its default for the concurrency.
    pub fn prefetch(&self) -> usize {
        self.prefetch
            .unwrap_or(PREFETCH_PER_SLOT * self.concurrency) as usize
    }

    /// The worker id: `--id`, else the hostname.
    pub fn worker_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            gethostname::gethostname()
                .into_string()
                .unwrap_or_else(|_| "worker".into())
        })
    }
}

/// Refuses a `--master` that is not an http(s) URL with a host, saying how to write it: without
/// a scheme, `127.0.0.1:8080` would fail at every request with reqwest's "builder error".
fn master_url(value: &str) -> Result<String, String> {
    let example = |host: &str| format!("write it with its scheme, e.g. http://{host}");
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            Ok(value.to_owned())
        }
        Ok(url) if url.scheme() != "http" && url.scheme() != "https" && url.has_host() => {
            Err(format!(
                "`{value}`: the master is reached over http:// or https://, not {}://",
                url.scheme()
            ))
        }
        _ => Err(format!("`{value}` is not a URL: {}", example(value))),
    }
}

#[cfg(test)]
mod tests {
    use super::master_url;

    #[test]
    fn a_master_url_without_a_scheme_is_refused_with_how_to_write_it() {
        for value in ["127.0.0.1:8080", "localhost:8080", "master"] {
            let error = master_url(value).unwrap_err();
            assert!(error.contains(&format!("http://{value}")), "{error}");
        }
    }

    #[test]
    fn http_and_https_master_urls_are_accepted() {
        for value in ["http://127.0.0.1:8080", "https://leasehold.example:443/"] {
            assert_eq!(master_url(value).as_deref(), Ok(value));
        }
    }
}
