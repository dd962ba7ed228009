//! Persistence and sources for flag-service: its migrations (applied at start, one set per
//! backend) and the flag files it serves.

pub mod exposures;
pub mod flag_files;
pub mod repository;

use sqlx::migrate::Migrator;
use switchyard_platform::storage::Migrations;

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/flag-service/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/flag-service/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};
