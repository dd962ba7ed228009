//! The flag-service binary: reads its settings and runs until SIGTERM or Ctrl-C.

use clap::Parser;

/// flag-service: feature flags, segments, targeting, rollouts and evaluation (native, flagd and OFREP).
#[derive(Debug, Parser)]
#[command(name = "flag-service", version)]
struct Args {
    /// Settings file; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = flag_service::conf::load(args.config.as_deref())?;
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    flag_service::run(settings, shutdown).await?;
    Ok(())
}
