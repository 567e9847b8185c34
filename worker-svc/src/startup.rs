//! Building and running a worker: bind its server, start the pull loop (and the log's summary),
//! say so in one line, and drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::activity::{Activity, summarize};
use crate::config::Config;
use crate::execute::Runner;
use crate::handler::{self, Handler};
use crate::http::{self, WorkerState};
use crate::pull::{PullConfig, PullEnd, pull_loop};
use crate::register::keep_registered;
use crate::report::Reporter;
use crate::slots::Slots;
use common::RegisterWorker;
use leasehold_client::MasterClient;
use leasehold_service_kit::redact::without_password;

/// How long released tasks get to reach the master once the drain time is up.
const RELEASE_GRACE: Duration = Duration::from_secs(5);

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A worker bound to its port, ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: WorkerState,
    pull: PullConfig,
    drain: Duration,
    registration: Option<(MasterClient, RegisterWorker)>,
    /// How often the log gets a summary; `None` for never.
    summary_every: Option<Duration>,
}

impl Application {
    /// Builds a worker running the `--handler` it is configured with.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let handler = handler::from_spec(&config.handler).map_err(StartError::Config)?;
        Application::build_with_handler(config, handler).await
    }

    /// Builds a worker running `handler`: the way to plug in your own Rust code.
    pub async fn build_with_handler(
        config: Config,
        handler: Arc<dyn Handler>,
    ) -> Result<Application, StartError> {
        let client = MasterClient::new(&config.master, config.worker_token.clone());
        let runner = Runner {
            reporter: Reporter::start(client.clone()),
            client,
            handler,
            worker_id: config.worker_id(),
            lease_secs: config.lease_secs,
            task_timeout: (config.task_timeout_secs > 0)
                .then(|| Duration::from_secs(config.task_timeout_secs)),
            activity: Activity::default(),
        };
        let state = WorkerState {
            runner,
            slots: Slots::new(config.concurrency as usize),
            tracker: TaskTracker::new(),
            draining: CancellationToken::new(),
            stop_tasks: CancellationToken::new(),
            token: config.worker_token.clone(),
            push_async: config.push_async,
            metrics: crate::metrics::handle(),
        };
        let pull = PullConfig {
            queues: config.queues.clone(),
            wait_secs: config.wait_secs,
            lease_secs: config.lease_secs,
            prefetch: config.prefetch(),
            exit_when_drained: config.exit_when_drained,
            disabled: config.no_pull,
        };
        let listener = TcpListener::bind(config.listen).await?;
        log_started(&config, listener.local_addr()?, &state.runner.worker_id);
        let registration = config.register.as_deref().map(|master| {
            let registration = RegisterWorker {
                id: state.runner.worker_id.clone(),
                url: config.advertise_url(listener.local_addr().expect("bound")),
                capacity: Some(config.concurrency),
                queues: Some(config.queues.clone()),
            };
            (
                MasterClient::new(master, config.worker_token.clone()),
                registration,
            )
        });
        Ok(Application {
            listener,
            state,
            pull,
            drain: Duration::from_secs(config.drain_secs),
            registration,
            summary_every: (config.log_summary_secs > 0)
                .then(|| Duration::from_secs(config.log_summary_secs)),
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

    /// Works until `shutdown` resolves (or, with `--exit-when-drained`, the queues drain), then
    /// drains: no new work, unready, running tasks get the drain time to finish, and whatever
    /// still runs after it is released to the master — never failed, never lost.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state;
        let server_stop = CancellationToken::new();
        let summaries = self.summary_every.map(|every| {
            let activity = state.runner.activity.clone();
            tokio::spawn(summarize(activity, every, server_stop.clone()))
        });
        let server = tokio::spawn({
            let stop = server_stop.clone();
            let serve = axum::serve(self.listener, http::router(state.clone()));
            async move { serve.with_graceful_shutdown(stop.cancelled_owned()).await }
        });
        if let Some((master, registration)) = self.registration {
            let stop = state.draining.clone();
            state
                .tracker
                .spawn(keep_registered(master, registration, stop));
        }
        let mut pull = tokio::spawn(pull_loop(
            state.runner.clone(),
            self.pull,
            state.slots.clone(),
            state.tracker.clone(),
            state.draining.clone(),
            state.stop_tasks.clone(),
        ));
        let pulling = tokio::select! {
            () = shutdown => {
                tracing::info!("shutting down: draining");
                Some(pull)
            }
            end = &mut pull => {
                if let Ok(PullEnd::Drained) = end {
                    tracing::info!("queues drained: exiting");
                }
                None
            }
        };
        drain(&state, pulling, self.drain).await;
        server_stop.cancel();
        if let Some(summaries) = summaries {
            let _ = summaries.await;
        }
        server.await.map_err(std::io::Error::other)?
    }
}

/// The one line, once the worker is bound, that says it runs, how, and for which master: what to look at first when
/// it does not do what was expected. Tokens are said to be set or not, never shown, and URLs lose
/// their passwords.
fn log_started(config: &Config, addr: SocketAddr, worker_id: &str) {
    let register = config.register.as_deref().map(without_password);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        %addr,
        worker_id,
        master = %without_password(&config.master),
        handler = handler_for_log(&config.handler).as_str(),
        concurrency = config.concurrency,
        prefetch = config.prefetch(),
        queues = %config.queues.join(","),
        pull = !config.no_pull,
        register = register.as_deref(),
        push_async = config.push_async,
        lease_secs = config.lease_secs,
        wait_secs = config.wait_secs,
        task_timeout_secs = config.task_timeout_secs,
        drain_secs = config.drain_secs,
        worker_token_set = config.worker_token.is_some(),
        log_summary_secs = config.log_summary_secs,
        "worker started"
    );
}

/// The `--handler` as logged: an `http:` sidecar's URL without its password.
fn handler_for_log(spec: &str) -> String {
    match spec.strip_prefix("http:") {
        Some(url) => format!("http:{}", without_password(url)),
        None => spec.to_owned(),
    }
}

/// Stops taking work, waits up to `drain` for running tasks, then releases the rest. The pull
/// loop, if still `pulling`, is waited for first: it stops at once, handing back whatever the
/// master answered as it stopped, and then every task it started is tracked.
async fn drain(state: &WorkerState, pulling: Option<JoinHandle<PullEnd>>, drain: Duration) {
    state.draining.cancel();
    if let Some(pull) = pulling {
        let _ = pull.await;
    }
    state.tracker.close();
    if tokio::time::timeout(drain, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            running = state.tracker.len(),
            "drain time is up; releasing running tasks"
        );
        state.stop_tasks.cancel();
        let _ = tokio::time::timeout(RELEASE_GRACE, state.tracker.wait()).await;
    }
    tracing::info!("drained");
}
