//! Reloading the tokens file on SIGHUP: a valid file replaces the tokens at once, an invalid one
//! leaves the old tokens in place and is logged (never a token) and counted.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Access;
use crate::metrics as m;

/// Runs until `stop`, reloading `access`'s tokens file at each SIGHUP. Without a tokens file,
/// SIGHUP is still caught, so that it does not end the master (its default action).
pub async fn on_sighup(access: Arc<Access>, stop: CancellationToken) {
    let mut hangups = match hangups() {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGHUP: the tokens file is read only at start");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => reload(&access),
            () = stop.cancelled() => return,
        }
    }
}

fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
}

/// Reloads once, saying how it went.
pub fn reload(access: &Access) {
    let Some(file) = access.file() else {
        tracing::info!("SIGHUP: no --tokens-file to reload");
        return;
    };
    let file = file.display().to_string();
    match access.reload() {
        Ok(count) => {
            m::tokens_reloaded(true);
            tracing::info!(file, tokens = count, "tokens file reloaded");
        }
        Err(e) => {
            m::tokens_reloaded(false);
            // The error names the file and where it is wrong, never a token (see `tokens`).
            tracing::error!(file, error = %crate::chain::Chain(&e), "tokens file not reloaded; the previous tokens stay");
        }
    }
}
