//! Persistence for experiment-service: its migrations (applied at start, one set per backend)
//! and the sqlx repository that implements `biz::repository`.

mod aggregation;
pub mod exposure_bus;
pub mod flags;
mod ingestion;
pub mod repository;

use sqlx::migrate::Migrator;
use switchyard_platform::storage::Migrations;

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/experiment-service/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/experiment-service/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};
