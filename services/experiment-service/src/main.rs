//! The experiment-service binary: reads its settings and runs until SIGTERM or Ctrl-C.

use clap::Parser;

/// experiment-service: experiments, assignment, exposures, metric events and statistical analysis.
#[derive(Debug, Parser)]
#[command(name = "experiment-service", version)]
struct Args {
    /// Settings file; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = experiment_service::conf::load(args.config.as_deref())?;
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    experiment_service::run(settings, shutdown).await?;
    Ok(())
}
