//! Self-registration for push mode: announce this worker to the master, renew before the
//! registration lapses, and withdraw it when draining so no more tasks are pushed here.

use std::time::Duration;

use common::RegisterWorker;
use tokio_util::sync::CancellationToken;

use leasehold_client::MasterClient;

/// Pause before trying again after a failed registration.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps `registration` alive at `master` until `stop` is cancelled, then withdraws it.
pub async fn keep_registered(
    master: MasterClient,
    registration: RegisterWorker,
    stop: CancellationToken,
) {
    loop {
        let pause = match master.register_worker(&registration).await {
            Ok(info) => Duration::from_secs(info.ttl_secs.unwrap_or(30)) / 3,
            Err(e) => {
                tracing::warn!(error = %e, master = master.base_url(), "cannot register for push");
                RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause.max(Duration::from_millis(200))) => {}
            () = stop.cancelled() => break,
        }
    }
    if let Err(e) = master.deregister_worker(&registration.id).await {
        tracing::warn!(error = %e, "cannot withdraw the push registration; it will lapse");
    }
}
