//! Persistence for experiment-service: its migrations (applied at start, one set per backend) and,
//! as the domain grows, the sqlx repositories that implement the traits in `biz`.

use sqlx::migrate::Migrator;
use switchyard_platform::storage::Migrations;

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/experiment-service/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/experiment-service/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};
