//! The database's clock, read by every master that shares the database.
//!
//! Lease deadlines are stored as times and compared with "now" by whichever master looks, so
//! masters on different hosts must agree on "now": a master whose clock ran ahead would expire
//! other masters' live leases. Each master therefore measures how far the database server's
//! clock is from its own, at start-up and then periodically, and reads time as its own clock
//! plus that offset. The error is half a round trip to the database, well under a millisecond
//! on a local network.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;

use crate::clock::{Clock, SystemClock};
use crate::model::Millis;
use crate::store::StoreError;
use crate::store::db;

/// How often the offset is measured again (hosts' clocks drift, NTP steps them).
const RESYNC: Duration = Duration::from_secs(30);

/// The system clock corrected to the database server's.
#[derive(Debug)]
pub struct DatabaseClock {
    offset_ms: AtomicI64,
}

impl DatabaseClock {
    /// Measures the offset, and keeps it measured for as long as the clock is in use.
    pub async fn start(pool: PgPool) -> Result<Arc<DatabaseClock>, StoreError> {
        let clock = Arc::new(DatabaseClock {
            offset_ms: AtomicI64::new(measure(&pool).await?),
        });
        tokio::spawn(resync(Arc::downgrade(&clock), pool));
        Ok(clock)
    }
}

impl Clock for DatabaseClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

async fn resync(clock: Weak<DatabaseClock>, pool: PgPool) {
    loop {
        tokio::time::sleep(RESYNC).await;
        let Some(clock) = clock.upgrade() else {
            return;
        };
        match measure(&pool).await {
            Ok(offset) => clock.offset_ms.store(offset, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %crate::chain::Chain(&e), "cannot read the database clock; keeping the last offset")
            }
        }
    }
}

/// The database's time minus ours, taking ours half-way through the round trip.
async fn measure(pool: &PgPool) -> Result<i64, StoreError> {
    let before = SystemClock.now_ms();
    let database: i64 =
        sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8")
            .fetch_one(pool)
            .await
            .map_err(db)?;
    let after = SystemClock.now_ms();
    Ok(database - (before + after) / 2)
}
