//! Persistence for experiment-service: its migrations (applied at start, one set per backend)
//! and the sqlx repository that implements `biz::repository`.

mod aggregation;
pub mod exposure_bus;
pub mod flags;
mod ingestion;
pub mod notices;
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

/// A storage failure, as the domain sees it.
fn backend(error: sqlx::Error) -> crate::biz::error::StoreError {
    crate::biz::error::StoreError::Backend(error.to_string())
}

/// A JSON column read back.
fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, crate::biz::error::StoreError> {
    serde_json::from_str(text)
        .map_err(|error| crate::biz::error::StoreError::Backend(format!("stored JSON does not parse: {error}")))
}

/// A JSON column written.
fn encode<T: serde::Serialize>(value: &T) -> Result<String, crate::biz::error::StoreError> {
    serde_json::to_string(value).map_err(|error| crate::biz::error::StoreError::Backend(error.to_string()))
}

/// A write transaction (see `switchyard_platform::storage::begin_write`).
///
/// On PostgreSQL its statements run on generic plans. Ingestion and folds send the same few
/// statements with hundreds of bound values (500-row inserts, `unit IN (…)` over 500 units);
/// under the default plan cache mode each execution was planned again for its values — a
/// selectivity estimate per listed unit — up to a sixth of the database's time while folding.
/// The keys are uniform, so the generic plan is the plan a custom one finds.
async fn begin_write(
    pool: &sqlx::AnyPool,
    database: switchyard_platform::storage::Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, crate::biz::error::StoreError> {
    match database {
        switchyard_platform::storage::Backend::Postgres => {
            pool.begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
                .await
        }
        switchyard_platform::storage::Backend::Sqlite => {
            switchyard_platform::storage::begin_write(pool, database).await
        }
    }
    .map_err(backend)
}
