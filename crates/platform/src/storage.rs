//! One connection pool per service, from a `postgres://` or `sqlite://` URL, with the
//! service's migrations applied at start. Repositories write their SQL once against
//! `sqlx::Any` with `$1` placeholders, which both PostgreSQL and SQLite accept, and the
//! same repository tests run on both backends.

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A service's migrations for each backend, embedded with `sqlx::migrate!` from
/// `migrations/<service>/{postgres,sqlite}`.
#[derive(Debug)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage url must start with postgres:// or sqlite://")]
    UnsupportedUrl,
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A migrated pool and the backend it talks to.
#[derive(Debug, Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Database {
    /// Connects (creating the SQLite file and its directory when missing) and migrates.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        migrations: &Migrations,
    ) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(StorageError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; synchronous stays FULL so an
                        // acknowledged commit survives a power cut, not only a crash. Statement
                        // journals and temporary tables live only as long as their statement:
                        // kept in memory, they cost no file writes.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                             PRAGMA temp_store = MEMORY;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StorageError::Connect)?;
        let migrator = match backend {
            Backend::Postgres => migrations.postgres,
            Backend::Sqlite => migrations.sqlite,
        };
        migrator.run(&pool).await?;
        Ok(Database { pool, backend })
    }

    /// The highest applied migration, reported by `GetServiceInfo`.
    pub async fn schema_version(&self) -> Result<i64, StorageError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// True when the database answers; readiness depends on it.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// A transaction that is going to write. On SQLite it takes the write lock at once: a
/// transaction that reads first and writes later cannot wait for another writer and fails
/// with "database is locked" instead.
pub async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Postgres => pool.begin().await,
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
    }
}

fn backend_of(url: &str) -> Result<Backend, StorageError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Postgres);
    }
    if url.starts_with("sqlite:") {
        return Ok(Backend::Sqlite);
    }
    Err(StorageError::UnsupportedUrl)
}

/// Creates the file's directory and asks SQLite to create the file when missing.
fn prepare_sqlite(url: &str) -> Result<String, StorageError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if let Some(dir) = std::path::Path::new(file).parent()
        && !dir.as_os_str().is_empty()
        && file != ":memory:"
    {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    if url.contains('?') {
        return Ok(url.to_owned());
    }
    Ok(format!("{url}?mode=rwc"))
}
