//! The key store's table (`api_keys`), the same SQL on PostgreSQL and SQLite.

use sqlx::{AnyConnection, any::AnyRow};
use switchyard_platform::audit::AuditEntry;

use super::{
    SqlRepository, append_audit, backend,
    rows::{column, json, json_column},
};
use crate::biz::{
    api_keys::{ApiKeyRepository, KeyCursor, StoredApiKey},
    repository::StoreResult,
};

const COLUMNS: &str = "id, tenant, sha256, display_name, roles, scopes, creator, created_ms, expire_ms, revoked_ms, \
                       last_used_ms";

fn key_of(row: &AnyRow) -> StoreResult<StoredApiKey> {
    Ok(StoredApiKey {
        id: column(row, "id")?,
        tenant: column(row, "tenant")?,
        sha256: column(row, "sha256")?,
        display_name: column(row, "display_name")?,
        roles: json_column(row, "roles")?,
        scopes: json_column(row, "scopes")?,
        creator: column(row, "creator")?,
        created_ms: column(row, "created_ms")?,
        expire_ms: column(row, "expire_ms")?,
        revoked_ms: column(row, "revoked_ms")?,
        last_used_ms: column(row, "last_used_ms")?,
    })
}

/// The next revision of the whole store, taken inside the writing transaction.
async fn next_revision(conn: &mut AnyConnection) -> StoreResult<i64> {
    let (revision,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(revision), 0) + 1 FROM api_keys")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(revision)
}

impl ApiKeyRepository for SqlRepository {
    async fn insert_api_key(&self, key: &StoredApiKey, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let revision = next_revision(&mut tx).await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, sha256, display_name, roles, scopes, creator, created_ms, expire_ms, \
             revoked_ms, last_used_ms, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, $10)",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.sha256)
        .bind(&key.display_name)
        .bind(json(&key.roles))
        .bind(json(&key.scopes))
        .bind(&key.creator)
        .bind(key.created_ms)
        .bind(key.expire_ms)
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn api_key(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredApiKey>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(key_of).transpose()
    }

    async fn list_api_keys(
        &self,
        tenant: &str,
        after: Option<&KeyCursor>,
        include_inactive: bool,
        now_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredApiKey>> {
        let (after_ms, after_id) = after.cloned().unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant = $1 \
             AND (created_ms > $2 OR (created_ms = $2 AND id > $3)) \
             AND ($4 = 1 OR (revoked_ms IS NULL AND (expire_ms IS NULL OR expire_ms > $5))) \
             ORDER BY created_ms, id LIMIT $6"
        ))
        .bind(tenant)
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(include_inactive))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(key_of).collect()
    }

    async fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        now_ms: i64,
        audit: &AuditEntry,
    ) -> StoreResult<Option<StoredApiKey>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let revision = next_revision(&mut tx).await?;
        let changed = sqlx::query(
            "UPDATE api_keys SET revoked_ms = $3, revision = $4 WHERE tenant = $1 AND id = $2 AND revoked_ms IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms)
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if changed > 0 {
            append_audit(&mut tx, audit).await?;
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        row.as_ref().map(key_of).transpose()
    }

    async fn active_api_keys(&self, now_ms: i64) -> StoreResult<(u64, Vec<StoredApiKey>)> {
        let (revision,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(revision), 0) FROM api_keys")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE revoked_ms IS NULL AND (expire_ms IS NULL OR expire_ms > $1) \
             ORDER BY created_ms, id"
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let keys = rows.iter().map(key_of).collect::<StoreResult<Vec<_>>>()?;
        Ok((revision.max(0) as u64, keys))
    }

    async fn record_api_key_uses(&self, uses: &[(String, i64)]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for (id, used_ms) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_ms = $2 WHERE id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)",
            )
            .bind(id)
            .bind(used_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn public_environments(&self) -> StoreResult<Vec<(String, String, String)>> {
        sqlx::query_as("SELECT tenant, project, id FROM environments WHERE public_evaluation <> 0")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }
}
