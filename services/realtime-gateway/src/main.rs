//! The realtime-gateway binary: reads its settings and runs until SIGTERM or Ctrl-C.

use clap::Parser;

/// realtime-gateway: the WebSocket and SSE edge — channels, fan-out, history, recovery and a publish API.
#[derive(Debug, Parser)]
#[command(name = "realtime-gateway", version)]
struct Args {
    /// Settings file; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One descriptor per client: take all the process may have (the soft limit is often 1,024).
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("cannot raise the open-file limit: {error}");
    }
    let settings = realtime_gateway::conf::load(args.config.as_deref())?;
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    realtime_gateway::run(settings, shutdown).await?;
    Ok(())
}
