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

    /// Add `key=value` to every evaluation context, overriding the caller's value (as flagd's
    /// `--context-value`). Repeatable; added to `[service] static_context`.
    #[arg(long = "context-value", value_name = "KEY=VALUE", value_parser = key_value)]
    context_values: Vec<(String, String)>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got \"{text}\"")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = flag_service::conf::load(args.config.as_deref())?;
    settings.service.flags_files.extend(args.flags_files);
    for (key, value) in args.context_values {
        settings
            .service
            .static_context
            .insert(key, serde_json::Value::String(value));
    }
    let shutdown = switchyard_platform::Shutdown::new();
    shutdown.trigger_on_signals();
    flag_service::run(settings, shutdown).await?;
    Ok(())
}
