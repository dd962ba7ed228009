//! Persistence for presence-service: presence state in Redis or in memory (the same
//! contract, `biz::store::PresenceStore`), last seen / last active in the database, and the
//! migrations of that database (applied at start, one set per backend).

mod commit_batch;
mod keys;
pub mod last_seen;
pub mod memory;
pub mod redis;

use std::sync::Arc;

use sqlx::migrate::Migrator;
use switchyard_platform::storage::Migrations;

use crate::biz::store::{PresenceStore, StoreError};

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/presence-service/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/presence-service/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

/// Redis when a URL is set, memory otherwise.
pub async fn connect_store(
    redis_url: Option<&str>,
    prefix: &str,
    log_max_len: usize,
) -> Result<Arc<dyn PresenceStore>, StoreError> {
    match redis_url {
        Some(url) => Ok(Arc::new(redis::RedisStore::connect(url, prefix, log_max_len).await?)),
        None => Ok(Arc::new(memory::MemoryStore::new(log_max_len))),
    }
}
