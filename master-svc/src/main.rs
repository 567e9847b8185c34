use std::process::ExitCode;

use clap::Parser;
use leasehold_service_kit::{shutdown_signal, telemetry};
use master_svc::{Application, Config};

/// Many small, short-lived allocations per request (JSON, rows, futures): mimalloc serves them
/// with far less contention and fragmentation than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::init(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // In words, for whoever reads the pod's log: what failed, and what to do.
            eprintln!("master-svc: {}", master_svc::chain::Chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
