//! Freeze windows and break-glass overrides, on PostgreSQL and SQLite.

use switchyard_platform::audit::AuditEntry;

use super::{
    SqlRepository, append_audit, backend,
    definitions::{self, Table},
    rows::{column, json, json_column},
};
use crate::biz::{
    governance::{
        freeze::FreezeWindow,
        policy::ApprovalPolicy,
        repository::{BreakGlassUse, GovernanceRepository},
    },
    model::{EnvKey, now_ms},
    repository::{StoreError, StoreResult},
};

impl GovernanceRepository for SqlRepository {
    async fn put_window(
        &self,
        tenant: &str,
        project: &str,
        window: &FreezeWindow,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<i64> {
        let key = (tenant, project, window.id.as_str());
        definitions::put(&self.pool, Table::FreezeWindows, key, window, expected_version, audit).await
    }

    async fn windows(&self, tenant: &str, project: &str) -> StoreResult<Vec<(FreezeWindow, i64)>> {
        definitions::list(&self.pool, Table::FreezeWindows, tenant, project).await
    }

    async fn delete_window(&self, tenant: &str, project: &str, id: &str, audit: &AuditEntry) -> StoreResult<()> {
        definitions::delete(&self.pool, Table::FreezeWindows, (tenant, project, id), audit).await
    }

    async fn record_break_glass(&self, tenant: &str, used: &BreakGlassUse, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO break_glass_uses (tenant, project, environment, actor, reason, action, resource, windows, \
             created_ms, approval_bypassed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(tenant)
        .bind(&used.project)
        .bind(&used.environment)
        .bind(&used.actor)
        .bind(&used.reason)
        .bind(&used.action)
        .bind(&used.resource)
        .bind(json(&used.windows))
        .bind(used.created_ms)
        .bind(i64::from(used.approval_bypassed))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn break_glass_uses(
        &self,
        tenant: &str,
        project: &str,
        since_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<BreakGlassUse>> {
        let rows = sqlx::query(
            "SELECT project, environment, actor, reason, action, resource, windows, created_ms, approval_bypassed \
             FROM break_glass_uses \
             WHERE tenant = $1 AND project = $2 AND created_ms >= $3 ORDER BY created_ms DESC, id DESC LIMIT $4",
        )
        .bind(tenant)
        .bind(project)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(BreakGlassUse {
                    project: column(row, "project")?,
                    environment: column(row, "environment")?,
                    actor: column(row, "actor")?,
                    reason: column(row, "reason")?,
                    action: column(row, "action")?,
                    resource: column(row, "resource")?,
                    windows: json_column(row, "windows")?,
                    approval_bypassed: column::<i64>(row, "approval_bypassed")? != 0,
                    created_ms: column(row, "created_ms")?,
                })
            })
            .collect()
    }

    async fn put_policy(
        &self,
        env: &EnvKey,
        policy: &ApprovalPolicy,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let version = expected_version + 1;
        let query = if expected_version == 0 {
            sqlx::query(
                "INSERT INTO approval_policies (tenant, project, environment, definition, version, updated_by, \
                 updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
        } else {
            sqlx::query(
                "UPDATE approval_policies SET definition = $4, version = $5, updated_by = $6, updated_ms = $7 \
                 WHERE tenant = $1 AND project = $2 AND environment = $3 AND version = $5 - 1",
            )
        };
        let written = query
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(json(policy))
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

    async fn policy(&self, env: &EnvKey) -> StoreResult<Option<(ApprovalPolicy, i64)>> {
        let row = sqlx::query(
            "SELECT definition, version FROM approval_policies \
             WHERE tenant = $1 AND project = $2 AND environment = $3",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| Ok((json_column(&row, "definition")?, column(&row, "version")?)))
            .transpose()
    }

    async fn delete_policy(&self, env: &EnvKey, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let deleted =
            sqlx::query("DELETE FROM approval_policies WHERE tenant = $1 AND project = $2 AND environment = $3")
                .bind(&env.tenant)
                .bind(&env.project)
                .bind(&env.environment)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::Missing);
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }
}
