use clap::Parser;
use master_svc::{Application, Config, shutdown_signal, telemetry};

/// Many small, short-lived allocations per request (JSON, rows, futures): mimalloc serves them
/// with far less contention and fragmentation than the system allocator.
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
