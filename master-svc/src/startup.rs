//! Building and running the master: open the store, start the reaper, bind, say so in one line,
//! serve, shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Database};
use crate::engine::reaper::ReaperConfig;
use crate::engine::{Engine, Policy};
use crate::http::{self, AppState, BodyLimits, ConnectionLimits};
use crate::push::allow::AllowList;
use crate::push::discovery::Discovery;
use crate::push::{Dispatcher, PushConfig};
use crate::store::Store;
use crate::store::postgres::{self, PgStore};
use crate::store::sqlite::SqliteStore;
use leasehold_service_kit::redact::without_password;

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tokens(#[from] crate::access::tokens::TokensFileError),
    #[error("store")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}{}", listen_hint(source))]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What to do about a failure to listen, when it is a common one.
fn listen_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there: stop it or choose another --listen)"
        }
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        _ => "",
    }
}

/// A master bound to its port, ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    connections: ConnectionLimits,
    engine: Arc<Engine>,
    reaper: ReaperConfig,
    dispatcher: Arc<Dispatcher>,
    discovery: Discovery,
    access: Arc<Access>,
    started: StartedLine,
}

impl Application {
    /// Builds a master that reads time from its store's clock: the system's for SQLite, the
    /// database server's for PostgreSQL (so that masters sharing it agree).
    pub async fn build(config: Config) -> Result<Application, StartError> {
        Application::build_inner(config, None).await
    }

    /// As [`build`](Self::build), reading time from `clock` (tests move time by hand).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartError> {
        Application::build_inner(config, Some(clock)).await
    }

    async fn build_inner(
        config: Config,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Application, StartError> {
        // Before the store: a master with unusable tokens refuses to start at once.
        let access = Arc::new(Access::load(
            config.tokens_file.clone(),
            config.api_token.clone(),
            config.worker_token.clone(),
        )?);
        let (store, store_clock) = open_store(&config).await?;
        let clock = clock.unwrap_or(store_clock);
        let policy = Policy {
            default_lease_ms: secs_to_ms(config.default_lease_secs),
            backoff_base_ms: config.retry_backoff_base_ms as i64,
            backoff_max_ms: secs_to_ms(config.retry_backoff_max_secs),
            history_kept: config.history_kept as usize,
        };
        let engine = Engine::new(store, clock, policy, CancellationToken::new())
            .with_page_max_bytes(config.list_page_max_bytes)
            .with_max_queue_pause(Duration::from_secs(config.max_queue_pause_secs))
            .with_queue_idle(
                (config.queue_idle_secs > 0).then(|| Duration::from_secs(config.queue_idle_secs)),
            )
            .with_audit_retention(
                (config.audit_retention_secs > 0)
                    .then(|| Duration::from_secs(config.audit_retention_secs)),
            )
            .with_pull_worker_seen(Duration::from_secs(config.pull_worker_seen_secs));
        let engine = Arc::new(engine);
        let (dispatcher, discovery) = push(&config, &engine);
        let state = AppState {
            engine: engine.clone(),
            dispatcher: dispatcher.clone(),
            metrics: crate::metrics::handle(),
        };
        let body = BodyLimits {
            max_bytes: config.max_body_bytes,
            read_timeout: Duration::from_secs(config.body_read_timeout_secs),
        };
        let router = http::router(state, access.clone(), config.metrics_token.clone(), body);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let reaper = ReaperConfig {
            tick: Duration::from_millis(config.tick_ms.max(1)),
            retention: (config.retention_secs > 0)
                .then(|| Duration::from_secs(config.retention_secs)),
        };
        let connections = ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            max_connections: config.max_connections,
        };
        Ok(Application {
            listener,
            router,
            connections,
            engine,
            reaper,
            dispatcher,
            discovery,
            access,
            started: StartedLine(config),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Serves until `shutdown` resolves, then ends long-polls, stops the reaper, the activity
    /// sampler and the push feeders, and waits for in-flight requests and pushed tasks (the
    /// latter up to `--push-drain-secs`, see [`Dispatcher::drain`]). Every acknowledged write is
    /// already committed, so nothing is flushed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let token = self.engine.shutdown_token().clone();
        let reaper = tokio::spawn(self.engine.clone().run_reaper(self.reaper));
        let listener = tokio::spawn(self.engine.clone().run_listener());
        let operations = tokio::spawn(self.engine.clone().run_operations());
        let sampler = tokio::spawn(self.engine.clone().run_activity_sampler());
        let heartbeat = tokio::spawn(self.engine.clone().run_heartbeat());
        self.started.log(self.local_addr(), self.engine.master_id());
        let discovery = tokio::spawn(self.discovery.run(self.dispatcher.clone()));
        let reloads = tokio::spawn(crate::access::reload::on_sighup(self.access, token.clone()));
        // The push drain starts with the shutdown, beside the requests' own: its time counts
        // from the signal.
        let push_drained = tokio::spawn(drain_push(self.dispatcher, token.clone()));
        let stop = token.clone();
        http::serve(self.listener, self.router, self.connections, async move {
            shutdown.await;
            tracing::info!("shutting down");
            stop.cancel();
        })
        .await;
        token.cancel();
        let _ = reaper.await;
        let _ = listener.await;
        let _ = operations.await;
        let _ = sampler.await;
        let _ = heartbeat.await;
        let _ = discovery.await;
        let _ = reloads.await;
        let _ = push_drained.await;
        Ok(())
    }
}

/// What the start-up line says besides the address: the configuration the master was started
/// with. Its `Debug` shows none of it, as the configuration holds the tokens.
struct StartedLine(Config);

impl std::fmt::Debug for StartedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartedLine")
    }
}

impl StartedLine {
    /// The one line that says the master listens (scripts find its address by this message and
    /// its `addr` field, see `scripts/master-address.py`), its version, its store and its main
    /// options, and the instance id `GET /masters` lists it by. Tokens are said to be set or not,
    /// never shown; URLs lose their passwords.
    fn log(&self, addr: SocketAddr, master_id: &str) {
        let config = &self.0;
        let push_workers: Vec<String> = config
            .push_workers
            .iter()
            .map(|url| without_password(url))
            .collect();
        let push = !push_workers.is_empty() || config.push_dns.is_some();
        let push_workers = (!push_workers.is_empty()).then(|| push_workers.join(","));
        tracing::info!(
            %addr,
            master_id,
            version = env!("CARGO_PKG_VERSION"),
            store = describe_store(config).as_str(),
            default_lease_secs = config.default_lease_secs,
            tick_ms = config.tick_ms,
            retention_secs = config.retention_secs,
            push,
            push_workers = push_workers.as_deref(),
            push_dns = config.push_dns.as_deref(),
            api_token_set = config.api_token.is_some(),
            worker_token_set = config.worker_token.is_some(),
            metrics_token_set = config.metrics_token.is_some(),
            tokens_file = config.tokens_file.as_ref().map(|p| p.display().to_string()),
            audit_retention_secs = config.audit_retention_secs,
            max_body_bytes = config.max_body_bytes,
            max_connections = config.max_connections,
            "master listening"
        );
    }
}

/// The store as the start-up line names it: `sqlite:PATH`, or PostgreSQL's user, host, port and
/// database without the password.
fn describe_store(config: &Config) -> String {
    match config.database() {
        Ok(Database::Sqlite(path)) => format!("sqlite:{}", path.display()),
        Ok(Database::Postgres(url)) => {
            postgres::describe(&url).unwrap_or_else(|| "postgres (unparsable URL)".into())
        }
        Err(e) => e,
    }
}

/// Once `stop` is cancelled, waits for the push dispatcher to hand back or finish its tasks.
async fn drain_push(dispatcher: Arc<Dispatcher>, stop: CancellationToken) {
    stop.cancelled().await;
    dispatcher.drain().await;
}

/// The store `--database-url` names, and the clock that goes with it.
async fn open_store(config: &Config) -> Result<(Arc<dyn Store>, Arc<dyn Clock>), StartError> {
    Ok(match config.database().map_err(StartError::Config)? {
        Database::Sqlite(path) => (
            Arc::new(SqliteStore::open(
                &path,
                config.sqlite_synchronous,
                !config.skip_integrity_check,
            )?),
            Arc::new(SystemClock),
        ),
        Database::Postgres(url) => {
            let connect_within = Duration::from_secs(config.store_connect_timeout_secs);
            let store =
                PgStore::connect(&url, config.database_max_connections, connect_within).await?;
            let clock = store.clock();
            (Arc::new(store), clock)
        }
    })
}

/// The push dispatcher and where it learns of workers.
fn push(config: &Config, engine: &Arc<Engine>) -> (Arc<Dispatcher>, Discovery) {
    let push_config = PushConfig {
        queues: config.push_queues.clone(),
        timeout: Duration::from_secs(config.push_timeout_secs),
        health_interval: Duration::from_millis(config.push_health_interval_ms.max(10)),
        registration_ttl: Duration::from_secs(config.worker_ttl_secs.max(1)),
        worker_token: config.worker_token.clone(),
        max_registered: config.max_registered_workers,
        allow: AllowList::new(config.push_allow_cidrs.clone()),
        drain: Duration::from_secs(config.push_drain_secs),
    };
    let discovery = Discovery {
        static_urls: config.push_workers.clone(),
        dns: config.push_dns.clone(),
        dns_interval: Duration::from_secs(config.push_dns_interval_secs.max(1)),
        capacity: config.push_capacity.max(1),
        queues: config
            .push_queues
            .clone()
            .unwrap_or_else(|| vec![common::DEFAULT_QUEUE.to_owned()]),
    };
    (Dispatcher::new(engine.clone(), push_config), discovery)
}

fn secs_to_ms(secs: u64) -> i64 {
    crate::engine::rules::secs_to_ms(secs)
}
