//! `switchyard migrate`: applies every service's migrations to the databases its settings
//! name, without starting the services — for a deploy step that migrates before rollout.
//! Services also migrate at start, so this is never required, only convenient.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use switchyard_platform::{
    Settings,
    storage::{Database, Migrations},
};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Settings file shared by the services; defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let file = args.config.as_deref();
    migrate(
        "config-service",
        &config_service::conf::load(file)?,
        &config_service::data::MIGRATIONS,
    )
    .await?;
    migrate(
        "flag-service",
        &flag_service::conf::load(file)?,
        &flag_service::data::MIGRATIONS,
    )
    .await?;
    migrate(
        "experiment-service",
        &experiment_service::conf::load(file)?,
        &experiment_service::data::MIGRATIONS,
    )
    .await?;
    migrate(
        "realtime-gateway",
        &realtime_gateway::conf::load(file)?,
        &realtime_gateway::data::MIGRATIONS,
    )
    .await?;
    migrate(
        "presence-service",
        &presence_service::conf::load(file)?,
        &presence_service::data::MIGRATIONS,
    )
    .await?;
    Ok(())
}

async fn migrate<S>(name: &str, settings: &Settings<S>, migrations: &Migrations) -> anyhow::Result<()> {
    let url = settings.storage_url(name);
    let timeout = Duration::from_secs(settings.storage.acquire_timeout_secs);
    let database = Database::connect(&url, 1, timeout, migrations).await?;
    println!(
        "{name}: {} schema at version {}",
        database.backend.name(),
        database.schema_version().await?
    );
    Ok(())
}
