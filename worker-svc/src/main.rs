use clap::Parser;
use leasehold_service_kit::{shutdown_signal, telemetry};
use worker_svc::{Application, Config};

/// As the master's: each pushed task is a request's worth of small allocations (JSON, headers,
/// futures); with glibc's malloc they were a tenth of a push worker's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
