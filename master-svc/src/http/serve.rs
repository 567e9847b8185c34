//! Serving the router over HTTP/1.1 with hyper itself rather than `axum::serve`, for settings
//! axum does not expose.
//!
//! - How large a connection's read buffer may grow. Every idle long-poll holds its connection and
//!   that buffer; at hyper's default a buffer grows to 16 KiB and more after the first read, here
//!   it stays at the 8 KiB minimum (a lease request is a few hundred bytes), which is what lets
//!   10,000 waiting workers fit in a small master.
//! - How long a client may take to send its headers (hyper's header read timeout). The body's
//!   timeout is the router's (see [`super::router`]), so that it covers reading the body only and
//!   not a long-poll's wait for a task.
//! - How many connections may be open at once. Each one holds a buffer, a task and a file
//!   descriptor, and a client that opens them and never finishes a request would otherwise take
//!   them all: beyond the cap a connection is answered `503` at once and closed.
//!
//! Each connection's stream is wrapped so that the answers hyper makes itself (a head it cannot
//! parse) get problem bodies too ([`ProblemOnParseError`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::parse_errors::ProblemOnParseError;

/// hyper's smallest allowed `max_buf_size`.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// Time a connection beyond the cap gets to send its request and read the `503`.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Refusals are logged at most this often, with how many there were since the last line.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What one client may hold of the master.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client gets to send a request's headers.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting and waits for
/// the open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut refusals = RefusalLog::new(limits.max_connections);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers go out as soon as they are written, not after Nagle's delay.
        let _ = stream.set_nodelay(true);
        match open.clone().try_acquire_owned() {
            Ok(permit) => serve_connection(stream, &router, limits, permit, &graceful),
            Err(_) => {
                refusals.record();
                refuse(stream, limits.max_connections);
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one connection; its permit is returned when the connection ends.
fn serve_connection(
    stream: TcpStream,
    router: &Router,
    limits: ConnectionLimits,
    permit: OwnedSemaphorePermit,
    graceful: &GracefulShutdown,
) {
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES)
        .serve_connection(
            TokioIo::new(ProblemOnParseError::new(stream)),
            TowerToHyperService::new(router.clone()),
        );
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        drop(permit);
    });
}

/// Answers a connection beyond the cap with a `503` problem and closes it. hyper reads its
/// request first, so that the client sees the answer rather than a reset connection.
fn refuse(stream: TcpStream, max_connections: usize) {
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(REFUSAL_TIMEOUT)
        .max_buf_size(READ_BUFFER_BYTES)
        .serve_connection(
            TokioIo::new(ProblemOnParseError::new(stream)),
            service_fn(move |_| async move {
                Ok::<_, Infallible>(ApiError::TooManyConnections(max_connections).into_response())
            }),
        );
    tokio::spawn(async move {
        // Bounded, so that refusals cannot pile up behind clients that never read.
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, connection).await;
    });
}

/// Logs refused connections without a line for each: a flood of them would flood the log.
#[derive(Debug)]
struct RefusalLog {
    max_connections: usize,
    unlogged: u64,
    last_line: Option<Instant>,
}

impl RefusalLog {
    fn new(max_connections: usize) -> RefusalLog {
        RefusalLog {
            max_connections,
            unlogged: 0,
            last_line: None,
        }
    }

    fn record(&mut self) {
        self.unlogged += 1;
        if self
            .last_line
            .is_some_and(|at| at.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            refused = self.unlogged,
            max_connections = self.max_connections,
            "connections refused with 503: the master has as many open as --max-connections allows"
        );
        self.unlogged = 0;
        self.last_line = Some(Instant::now());
    }
}
