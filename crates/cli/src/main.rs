//! `switchyard`: the operator CLI. `switchyard dev` runs all five services in one process;
//! `switchyard keys` manages API keys and `switchyard token` prints client tokens; `switchyard config` works with config-service and
//! `switchyard flags` with flag-service. Later capabilities add their commands here (one module
//! per command group; `grpc` and `output` hold what the groups share).

mod changes;
mod config;
mod deploy;
mod dev;
mod experiments;
mod flags;
mod freeze;
mod grpc;
mod keys;
mod migrate;
mod output;
mod presence;
mod token;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard: configuration, feature flags, experiments and realtime push for microservices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run all five services in one process with embedded defaults (SQLite under ./data,
    /// in-process change bus, static discovery). Prints the ports and the admin API key.
    Dev(dev::DevArgs),
    /// Read, edit, publish and watch configuration (config-service).
    Config(config::ConfigArgs),
    /// Define, switch, kill, roll back and evaluate feature flags (flag-service).
    Flags(flags::FlagsArgs),
    /// Create, list and revoke API keys without a restart (or generate one for settings).
    Keys(keys::KeysArgs),
    /// Print a client JWT for the realtime gateway (private channels, `$config`, `$flags`).
    Token(token::TokenArgs),
    /// Who is online, on which devices and pages; watch them come and go (presence-service).
    Presence(presence::PresenceArgs),
    /// Metrics, experiments on flags, and their results (experiment-service).
    Experiments(experiments::ExperimentsArgs),
    /// Deploy a config release progressively; watch, pause, resume, promote, stop, revert.
    Deploy(deploy::DeployArgs),
    /// Change requests for protected environments: draft, approve, reject, apply, schedule.
    Changes(changes::ChangesArgs),
    /// Freeze windows (when nothing changes) and the break-glass report.
    Freeze(freeze::FreezeArgs),
    /// Apply every service's database migrations and exit.
    Migrate(migrate::MigrateArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Config(args) => config::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Flags(args) => flags::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Token(args) => token::run(&args),
        Command::Presence(args) => presence::run(args).await,
        Command::Experiments(args) => experiments::run(args).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Changes(args) => changes::run(args).await,
        Command::Freeze(args) => freeze::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
    }
}
