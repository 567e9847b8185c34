//! The signal that starts a service's shutdown.

/// Resolves on SIGTERM (what Kubernetes and most supervisors send) or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a handler for Ctrl-C, only SIGTERM stops the service.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate() => {},
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            terminate.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}
