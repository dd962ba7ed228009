//! One pool from a URL, migrated at start, with the same SQL on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use switchyard_platform::storage::{Backend, Database};

async fn round_trip(url: &str, backend: Backend) {
    let database = Database::connect(url, 4, Duration::from_secs(5), &support::MIGRATIONS)
        .await
        .unwrap();
    assert_eq!(database.backend, backend);
    assert_eq!(database.schema_version().await.unwrap(), 1);
    assert!(database.ping().await);

    sqlx::query("INSERT INTO probe (id, note) VALUES ($1, $2)")
        .bind(1_i32)
        .bind("it's ' quoted; DROP TABLE probe; --")
        .execute(&database.pool)
        .await
        .unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM probe WHERE id = $1")
        .bind(1_i32)
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert_eq!(note, "it's ' quoted; DROP TABLE probe; --");

    // Migrating again is a no-op: a restart keeps the data.
    drop(database);
    let again = Database::connect(url, 4, Duration::from_secs(5), &support::MIGRATIONS)
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM probe")
        .fetch_one(&again.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn sqlite_file_is_created_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/test.db", dir.path().display());
    round_trip(&url, Backend::Sqlite).await;
    assert!(dir.path().join("nested/dir/test.db").exists());
}

#[tokio::test]
async fn postgres_is_migrated() {
    let url = support::fresh_postgres_database().await;
    round_trip(&url, Backend::Postgres).await;
}

#[tokio::test]
async fn unsupported_urls_are_rejected() {
    let error = Database::connect("mysql://x", 1, Duration::from_secs(1), &support::MIGRATIONS)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("postgres:// or sqlite://"));
}
