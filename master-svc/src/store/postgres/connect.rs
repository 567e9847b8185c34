//! Connecting to PostgreSQL: waiting for a server that is not up yet, and naming it in logs
//! without its password.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::super::StoreError;

/// How long a request waits for a free pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle this long is tested with a round trip before it is handed out.
const PING_WHEN_IDLE: Duration = Duration::from_secs(1);
/// Backoff between tries to connect at start-up: from the first, doubling up to the last.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Opens the pool once the server answers, retrying while it is unreachable or starting (a
/// master started during a database restart waits for it rather than exit); gives up at once on
/// errors a retry cannot mend, such as a wrong password. Each try is one plain connection, whose
/// error says why (the pool's own retries end in "pool timed out").
pub(super) async fn connect_with_retry(
    options: PgConnectOptions,
    max_connections: u32,
    within: Duration,
) -> Result<PgPool, StoreError> {
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let fail = |e: sqlx::Error| {
        StoreError::unusable_by(format!("cannot connect to PostgreSQL at {server}"), e)
    };
    let deadline = Instant::now() + within;
    let mut delay = FIRST_RETRY;
    loop {
        match <PgConnection as sqlx::Connection>::connect_with(&options).await {
            Ok(conn) => {
                let _ = sqlx::Connection::close(conn).await;
                break;
            }
            Err(e) if worth_retrying(&e) && Instant::now() < deadline => {
                let pause = delay.min(deadline - Instant::now());
                tracing::warn!(%server, error = %e, retry_in = ?pause, "cannot connect to PostgreSQL");
                tokio::time::sleep(pause).await;
                delay = (delay * 2).min(LAST_RETRY);
            }
            Err(e) => return Err(fail(e)),
        }
    }
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx tests every connection as it goes back to the pool, and by default again before it
        // hands it out: a round trip at the start of every transaction, 0.5 ms when this
        // machine is otherwise idle (`scripts/pg-floor.sh`: `SELECT 1` at 100/s, p50 0.50 ms),
        // on a request's path. A connection used within the last second is handed out untested, as pgxpool
        // does by default; one that died in that second (the server restarted within it) fails
        // its first statement, and that request fails rather than being acknowledged.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(fail)
}

/// Errors that end by themselves: no server listening yet, or one still starting up.
fn worth_retrying(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code == "57P03"),
        _ => false,
    }
}

/// The database `url` names, for a log line: `postgres://USER@HOST:PORT/DATABASE`, read back from
/// the parsed options so that no password is in it, whether the URL held one in its user info or
/// in its query (`?password=`). `None` if the URL does not parse.
pub fn describe(url: &str) -> Option<String> {
    let options = PgConnectOptions::from_str(url).ok()?;
    let database = options.get_database().unwrap_or_default();
    Some(format!(
        "postgres://{}@{}:{}/{database}",
        options.get_username(),
        options.get_host(),
        options.get_port()
    ))
}

#[cfg(test)]
mod tests {
    use leasehold_testkit::postgres;

    use super::super::costs::on_postgres;
    use super::*;

    #[test]
    fn a_database_is_described_without_its_password_wherever_the_url_holds_it() {
        let url = "postgres://leasehold:hunter2@db.internal:5433/tasks?password=hunter3";
        let described = describe(url).unwrap();
        assert_eq!(described, "postgres://leasehold@db.internal:5433/tasks");
    }

    /// A pooled connection idle for a second is tested before it is handed out: one the server
    /// ended meanwhile (a restart, `pg_terminate_backend`) is replaced, not used.
    #[tokio::test]
    async fn a_connection_the_server_ended_while_idle_is_replaced_before_use() {
        if !on_postgres() {
            return;
        }
        let url = postgres::fresh_database_url();
        let options = PgConnectOptions::from_str(&url).unwrap();
        let pool = connect_with_retry(options, 1, Duration::from_secs(10))
            .await
            .unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();

        let mut admin = <PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(ended, "the pool's connection was not ended");
        tokio::time::sleep(PING_WHEN_IDLE + Duration::from_millis(200)).await;

        let fresh: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("answered on a fresh connection");
        assert_ne!(fresh, pid);
    }
}
