//! Command-line flags; every one can also be set from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ipnet::IpNet;
use leasehold_service_kit::LogFormat;

use crate::store::sqlite::Synchronous;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite:leasehold.db";
pub const DEFAULT_DATABASE_MAX_CONNECTIONS: u32 = 16;
pub const DEFAULT_LEASE_SECS: u64 = 30;
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 1_000;
pub const DEFAULT_BACKOFF_MAX_SECS: u64 = 3_600;
pub const DEFAULT_HISTORY_KEPT: u32 = 32;
pub const DEFAULT_TICK_MS: u64 = 500;
pub const DEFAULT_RETENTION_SECS: u64 = 7 * 24 * 3600;
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_STORE_CONNECT_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_REGISTERED_WORKERS: usize = 1_000;
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
pub const DEFAULT_MAX_QUEUE_PAUSE_SECS: u64 = 3_600;
pub const DEFAULT_QUEUE_IDLE_SECS: u64 = 3_600;
pub const DEFAULT_LIST_PAGE_MAX_BYTES: usize = crate::engine::DEFAULT_PAGE_MAX_BYTES;
pub const DEFAULT_PUSH_DNS_INTERVAL_SECS: u64 = 10;
pub const DEFAULT_PUSH_CAPACITY: u32 = 4;
pub const DEFAULT_PUSH_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_PUSH_HEALTH_INTERVAL_MS: u64 = 1_000;
/// Below Kubernetes' default `terminationGracePeriodSeconds` (30), with room for the rest of
/// the shutdown.
pub const DEFAULT_PUSH_DRAIN_SECS: u64 = 20;
pub const DEFAULT_WORKER_TTL_SECS: u64 = 30;
pub const DEFAULT_PULL_WORKER_SEEN_SECS: u64 =
    crate::engine::pull_workers::DEFAULT_PULL_WORKER_SEEN.as_secs();
pub const DEFAULT_AUDIT_RETENTION_SECS: u64 = 90 * 24 * 3600;

/// The Leasehold master: hands tasks to workers under leases.
#[derive(Debug, Clone, Parser)]
#[command(name = "master-svc", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LEASEHOLD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Where tasks are kept: `sqlite:PATH` (created if missing), or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`, which several masters can share.
    #[arg(long, env = "LEASEHOLD_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Connections each master keeps open to PostgreSQL, at most.
    #[arg(long, env = "LEASEHOLD_DATABASE_MAX_CONNECTIONS", default_value_t = DEFAULT_DATABASE_MAX_CONNECTIONS)]
    pub database_max_connections: u32,

    /// When a SQLite commit counts as durable: `full` survives power loss, `normal` a crash.
    #[arg(
        long,
        env = "LEASEHOLD_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: Synchronous,

    /// Start without `PRAGMA quick_check` of the SQLite file (which reads every page: seconds
    /// per GiB). The check refuses a damaged database before it is used.
    #[arg(long, env = "LEASEHOLD_SKIP_INTEGRITY_CHECK")]
    pub skip_integrity_check: bool,

    /// How long a master starting while PostgreSQL is unreachable keeps retrying (with backoff,
    /// logging each try) before it gives up, so that a database restart does not crash-loop it.
    #[arg(long, env = "LEASEHOLD_STORE_CONNECT_TIMEOUT_SECS", default_value_t = DEFAULT_STORE_CONNECT_TIMEOUT_SECS)]
    pub store_connect_timeout_secs: u64,

    /// Bearer token for producers and operators (opens every endpoint: an `admin` named
    /// `api-token`). Unset, and with no other token: open.
    #[arg(long, env = "LEASEHOLD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Bearer token for workers (lease, heartbeat, result, release, push registration: a
    /// `worker` named `worker-token`).
    #[arg(long, env = "LEASEHOLD_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// A JSON file of named tokens, each with a role (`producer`, `worker`, `operator`,
    /// `read-only`, `admin`) and optional queue-name prefixes; read again on SIGHUP (an
    /// invalid file then keeps the old tokens). See the README's "Roles and scoped tokens".
    #[arg(long, env = "LEASEHOLD_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// How long the audit log keeps operator actions; 0 keeps them forever.
    #[arg(long, env = "LEASEHOLD_AUDIT_RETENTION_SECS", default_value_t = DEFAULT_AUDIT_RETENTION_SECS)]
    pub audit_retention_secs: u64,

    /// Bearer token that `/metrics` then requires (it alone opens it). Unset: `/metrics` is
    /// open, as the probes are.
    #[arg(long, env = "LEASEHOLD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Lease length for tasks submitted without `lease_secs` (at least 1).
    #[arg(long, env = "LEASEHOLD_DEFAULT_LEASE_SECS", default_value_t = DEFAULT_LEASE_SECS,
        value_parser = clap::value_parser!(u64).range(1..=common::MAX_DURATION_SECS))]
    pub default_lease_secs: u64,

    /// Delay before the first retry of a failed task; doubles with each attempt.
    #[arg(long, env = "LEASEHOLD_RETRY_BACKOFF_BASE_MS", default_value_t = DEFAULT_BACKOFF_BASE_MS)]
    pub retry_backoff_base_ms: u64,

    /// Longest delay between retries.
    #[arg(long, env = "LEASEHOLD_RETRY_BACKOFF_MAX_SECS", default_value_t = DEFAULT_BACKOFF_MAX_SECS)]
    pub retry_backoff_max_secs: u64,

    /// Ended leases each task's attempt history keeps one by one (`GET /tasks/{id}/attempts`),
    /// and as many refused requests; older ones are summarised as counts.
    #[arg(long, env = "LEASEHOLD_HISTORY_KEPT", default_value_t = DEFAULT_HISTORY_KEPT,
        value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub history_kept: u32,

    /// How often expired leases are reclaimed and delayed tasks announced.
    #[arg(long, env = "LEASEHOLD_TICK_MS", default_value_t = DEFAULT_TICK_MS)]
    pub tick_ms: u64,

    /// How long finished tasks are kept before deletion; 0 keeps them forever.
    #[arg(long, env = "LEASEHOLD_RETENTION_SECS", default_value_t = DEFAULT_RETENTION_SECS)]
    pub retention_secs: u64,

    /// How long a queue with no tasks and not sealed stays listed in `GET /queues` and
    /// `/metrics`; 0 keeps it for good.
    #[arg(long, env = "LEASEHOLD_QUEUE_IDLE_SECS", default_value_t = DEFAULT_QUEUE_IDLE_SECS)]
    pub queue_idle_secs: u64,

    /// Longest pause of its queue a worker's failed result may ask for (`pause_queue_secs`);
    /// a longer one is cut to this.
    #[arg(long, env = "LEASEHOLD_MAX_QUEUE_PAUSE_SECS", default_value_t = DEFAULT_MAX_QUEUE_PAUSE_SECS)]
    pub max_queue_pause_secs: u64,

    /// Largest request body accepted; larger ones get `413`.
    #[arg(long, env = "LEASEHOLD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Time a client gets to send a request's headers; the connection is closed after it.
    #[arg(long, env = "LEASEHOLD_HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,

    /// Time a client gets to send a whole request body, counted from its headers; a body not
    /// complete by then is answered `408` and its connection closed. Waiting for a long-poll's
    /// task does not count: only reading the body does.
    #[arg(long, env = "LEASEHOLD_BODY_READ_TIMEOUT_SECS", default_value_t = DEFAULT_BODY_READ_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout_secs: u64,

    /// Client connections open at once, long-polls included; a connection beyond it is answered
    /// `503` and closed. Keep it below the process's open-file limit (`ulimit -n`).
    #[arg(long, env = "LEASEHOLD_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,

    /// Payload, result and error bytes a page of `GET /tasks?view=full` holds at most; the page
    /// then ends early with a cursor (it always holds one task).
    #[arg(long, env = "LEASEHOLD_LIST_PAGE_MAX_BYTES", default_value_t = DEFAULT_LIST_PAGE_MAX_BYTES)]
    pub list_page_max_bytes: usize,

    /// A worker to push tasks to (its base URL); repeatable.
    #[arg(
        long = "push-worker",
        env = "LEASEHOLD_PUSH_WORKERS",
        value_delimiter = ','
    )]
    pub push_workers: Vec<String>,

    /// A DNS name (HOST:PORT) whose addresses are push workers, e.g. a headless Service.
    #[arg(long, env = "LEASEHOLD_PUSH_DNS")]
    pub push_dns: Option<String>,

    /// How often the `--push-dns` name is resolved again.
    #[arg(long, env = "LEASEHOLD_PUSH_DNS_INTERVAL_SECS", default_value_t = DEFAULT_PUSH_DNS_INTERVAL_SECS)]
    pub push_dns_interval_secs: u64,

    /// Queues served by push (comma-separated); the others are left to pulling workers.
    /// Unset: `default` for static and DNS workers, and whatever registered workers announce.
    #[arg(long, env = "LEASEHOLD_PUSH_QUEUES", value_delimiter = ',')]
    pub push_queues: Option<Vec<String>>,

    /// Tasks pushed at once to each static or DNS worker.
    #[arg(long, env = "LEASEHOLD_PUSH_CAPACITY", default_value_t = DEFAULT_PUSH_CAPACITY)]
    pub push_capacity: u32,

    /// Time a worker gets to answer `POST /do-task` before the task is taken back.
    #[arg(long, env = "LEASEHOLD_PUSH_TIMEOUT_SECS", default_value_t = DEFAULT_PUSH_TIMEOUT_SECS)]
    pub push_timeout_secs: u64,

    /// On SIGTERM, how long tasks already pushed to workers get to finish and have their results
    /// recorded; those still running after it go back to their queues. Tasks leased for a
    /// worker but not yet pushed go back at once. Keep it below the time the master is given to
    /// stop (Kubernetes' `terminationGracePeriodSeconds`).
    #[arg(long, env = "LEASEHOLD_PUSH_DRAIN_SECS", default_value_t = DEFAULT_PUSH_DRAIN_SECS)]
    pub push_drain_secs: u64,

    /// Pause between health checks of a push worker out of rotation.
    #[arg(
        long,
        env = "LEASEHOLD_PUSH_HEALTH_INTERVAL_MS",
        default_value_t = DEFAULT_PUSH_HEALTH_INTERVAL_MS
    )]
    pub push_health_interval_ms: u64,

    /// How long a worker registration lasts without renewal.
    #[arg(long, env = "LEASEHOLD_WORKER_TTL_SECS", default_value_t = DEFAULT_WORKER_TTL_SECS)]
    pub worker_ttl_secs: u64,

    /// How long `GET /workers` lists a pulling worker after this master last heard from it (a
    /// lease request, heartbeat, result or release); one holding a lease is listed regardless.
    #[arg(long, env = "LEASEHOLD_PULL_WORKER_SEEN_SECS", default_value_t = DEFAULT_PULL_WORKER_SEEN_SECS,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub pull_worker_seen_secs: u64,

    /// Push workers that may be registered (`POST /workers`) at once; beyond it, `429`.
    #[arg(
        long,
        env = "LEASEHOLD_MAX_REGISTERED_WORKERS",
        default_value_t = DEFAULT_MAX_REGISTERED_WORKERS
    )]
    pub max_registered_workers: usize,

    /// A network the master may push to (`10.0.0.0/8`, `fd00::/8`, or one address); repeatable
    /// (comma-separated in the environment). A registration resolving outside gets `403`, and no
    /// connection is made to an address outside. Unset: any address.
    #[arg(
        long = "push-allow-cidr",
        env = "LEASEHOLD_PUSH_ALLOW_CIDRS",
        value_delimiter = ',',
        value_parser = crate::push::allow::parse_net
    )]
    pub push_allow_cidrs: Vec<IpNet>,

    /// Log format.
    #[arg(long, env = "LEASEHOLD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Which store a `--database-url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Config {
    /// Defaults for everything, listening on `listen` with the database at `path`.
    pub fn for_sqlite(listen: SocketAddr, path: &std::path::Path) -> Config {
        let mut config = Config::parse_from(["master-svc"]);
        config.listen = listen;
        config.database_url = format!("sqlite:{}", path.display());
        config
    }

    pub fn database(&self) -> Result<Database, String> {
        let url = self.database_url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                format!(
                    "unsupported --database-url `{url}`: expected sqlite:PATH or postgres://..."
                )
            })?;
        if path.is_empty() {
            return Err("--database-url names no file".into());
        }
        Ok(Database::Sqlite(PathBuf::from(path)))
    }
}
