//! Project-scoped definitions kept as JSON with a version: deployment strategies and freeze
//! windows share one shape of table — `(tenant, project, id)`, `definition`, `version`,
//! `updated_by`, `updated_ms` — and these statements. `table` is always one of [`Table`]'s
//! names, never input.

use sqlx::{AnyConnection, AnyPool};
use switchyard_platform::audit::AuditEntry;

use super::{
    append_audit, backend,
    rows::{column, json},
};
use crate::biz::{
    model::{EnvKey, now_ms},
    repository::{StoreError, StoreResult},
};

#[derive(Debug, Clone, Copy)]
pub enum Table {
    Strategies,
    FreezeWindows,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Strategies => "strategies",
            Table::FreezeWindows => "freeze_windows",
        }
    }
}

/// Creates (`expected_version` 0) or replaces a definition; `Conflict` when the stored version
/// is not the expected one, `Duplicate` when creating one that exists.
#[allow(clippy::too_many_arguments)]
pub async fn put(
    pool: &AnyPool,
    table: Table,
    (tenant, project, id): (&str, &str, &str),
    definition: &impl serde::Serialize,
    expected_version: i64,
    audit: &AuditEntry,
) -> StoreResult<i64> {
    let table = table.name();
    let mut tx = pool.begin().await.map_err(backend)?;
    let version = expected_version + 1;
    let sql = if expected_version == 0 {
        format!(
            "INSERT INTO {table} (tenant, project, id, definition, version, updated_by, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
    } else {
        format!(
            "UPDATE {table} SET definition = $4, version = $5, updated_by = $6, updated_ms = $7 \
             WHERE tenant = $1 AND project = $2 AND id = $3 AND version = $5 - 1"
        )
    };
    let written = sqlx::query(&sql)
        .bind(tenant)
        .bind(project)
        .bind(id)
        .bind(json(definition))
        .bind(version)
        .bind(&audit.actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    if written.rows_affected() == 0 {
        return Err(StoreError::Conflict);
    }
    append_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(backend)?;
    Ok(version)
}

/// Every definition of the project, by id, with its version.
pub async fn list<T: serde::de::DeserializeOwned>(
    pool: &AnyPool,
    table: Table,
    tenant: &str,
    project: &str,
) -> StoreResult<Vec<(T, i64)>> {
    let sql = format!(
        "SELECT definition, version FROM {} WHERE tenant = $1 AND project = $2 ORDER BY id",
        table.name()
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(project)
        .fetch_all(pool)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| Ok((super::rows::json_column(row, "definition")?, column(row, "version")?)))
        .collect()
}

pub async fn get<T: serde::de::DeserializeOwned>(
    pool: &AnyPool,
    table: Table,
    (tenant, project, id): (&str, &str, &str),
) -> StoreResult<Option<(T, i64)>> {
    let sql = format!(
        "SELECT definition, version FROM {} WHERE tenant = $1 AND project = $2 AND id = $3",
        table.name()
    );
    let row = sqlx::query(&sql)
        .bind(tenant)
        .bind(project)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(backend)?;
    row.map(|row| Ok((super::rows::json_column(&row, "definition")?, column(&row, "version")?)))
        .transpose()
}

/// Deletes a definition; `Missing` when there is none.
pub async fn delete(
    pool: &AnyPool,
    table: Table,
    (tenant, project, id): (&str, &str, &str),
    audit: &AuditEntry,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let sql = format!(
        "DELETE FROM {} WHERE tenant = $1 AND project = $2 AND id = $3",
        table.name()
    );
    let deleted = sqlx::query(&sql)
        .bind(tenant)
        .bind(project)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::Missing);
    }
    append_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(backend)
}

/// The next number of a table numbered per environment (deployments, change requests); the
/// caller holds the environment's lock.
pub async fn next_number(conn: &mut AnyConnection, table: &'static str, env: &EnvKey) -> StoreResult<i64> {
    let sql = format!(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM {table} WHERE tenant = $1 AND project = $2 AND environment = $3"
    );
    sqlx::query_scalar(&sql)
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)
}
