//! The presence-service binary: reads its settings and runs until SIGTERM or Ctrl-C.

use clap::Parser;

/// presence-service: who is online, on which devices and pages, last seen, and presence events.
#[derive(Debug, Parser)]
#[command(name = "presence-service", version)]
struct Args {
    /// Settings file; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = presence_service::conf::load(args.config.as_deref())?;
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    presence_service::run(settings, shutdown).await?;
    Ok(())
}
