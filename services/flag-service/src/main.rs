//! The flag-service binary: reads its settings and runs until SIGTERM or Ctrl-C.

use clap::Parser;

/// flag-service: feature flags, segments, targeting, rollouts and evaluation (native, flagd and OFREP).
#[derive(Debug, Parser)]
#[command(name = "flag-service", version)]
struct Args {
    /// Settings file; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// Serve a flagd flag file (JSON, or YAML by extension), reloading it when it changes.
    /// Repeatable; later files override flags of earlier ones with the same key. Added after
    /// any `[service] flags_files` from the settings.
    #[arg(long = "flags-file", value_name = "PATH")]
    flags_files: Vec<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = flag_service::conf::load(args.config.as_deref())?;
    settings.service.flags_files.extend(args.flags_files);
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    flag_service::run(settings, shutdown).await?;
    Ok(())
}
