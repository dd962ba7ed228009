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

/// A write transaction. On SQLite it takes the write lock at once: a transaction that reads
/// first and writes later cannot wait for another writer, and fails with "database is locked".
async fn begin_write(
    pool: &sqlx::AnyPool,
    backend: switchyard_platform::storage::Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, crate::biz::error::StoreError> {
    use switchyard_platform::storage::Backend;
    match backend {
        Backend::Postgres => pool.begin().await,
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
    }
    .map_err(|error| crate::biz::error::StoreError::Backend(error.to_string()))
}
