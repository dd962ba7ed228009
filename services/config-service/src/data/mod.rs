//! Persistence for config-service: its migrations (applied at start, one set per backend) and,
//! as the domain grows, the sqlx repositories that implement the traits in `biz`.

use sqlx::migrate::Migrator;
use switchyard_platform::storage::Migrations;

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/config-service/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/config-service/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};
