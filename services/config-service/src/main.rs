//! The config-service binary: reads its settings and runs until SIGTERM or Ctrl-C.

use clap::Parser;

/// config-service: projects, environments and versioned, validated configuration pushed live to every service.
#[derive(Debug, Parser)]
#[command(name = "config-service", version)]
struct Args {
    /// Settings file; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = config_service::conf::load(args.config.as_deref())?;
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    config_service::run(settings, shutdown).await?;
    Ok(())
}
