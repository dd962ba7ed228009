//! Change requests, on PostgreSQL and SQLite.

use sqlx::{Row, any::AnyRow};
use switchyard_platform::audit::AuditEntry;

use super::{
    SqlRepository, append_audit, backend, definitions, lock_environment,
    rows::{column, json, json_column},
};
use crate::biz::{
    changes::{
        model::{ChangeRequest, ChangeState},
        repository::ChangeRepository,
    },
    model::EnvKey,
    repository::{StoreError, StoreResult},
};

const COLUMNS: &str = "project, environment, number, config, operation, title, description, author, base_release, \
     state, approvals, rejected_by, rejection, scheduled_ms, schedule_zone, scheduled_by, outcome, created_ms, \
     updated_ms, revision";

fn change_of(tenant: &str, row: &AnyRow) -> StoreResult<ChangeRequest> {
    let project: String = column(row, "project")?;
    let environment: String = column(row, "environment")?;
    let state: String = column(row, "state")?;
    Ok(ChangeRequest {
        env: EnvKey::new(tenant, &project, &environment),
        number: column(row, "number")?,
        config: column(row, "config")?,
        operation: json_column(row, "operation")?,
        title: column(row, "title")?,
        description: column(row, "description")?,
        author: column(row, "author")?,
        base_release: column(row, "base_release")?,
        state: ChangeState::parse(&state).ok_or_else(|| StoreError::Backend(format!("unknown state `{state}`")))?,
        approvals: json_column(row, "approvals")?,
        rejected_by: column(row, "rejected_by")?,
        rejection: column(row, "rejection")?,
        scheduled_ms: column(row, "scheduled_ms")?,
        schedule_zone: column(row, "schedule_zone")?,
        scheduled_by: column(row, "scheduled_by")?,
        outcome: column(row, "outcome")?,
        created_ms: column(row, "created_ms")?,
        updated_ms: column(row, "updated_ms")?,
        revision: column(row, "revision")?,
    })
}

impl ChangeRepository for SqlRepository {
    async fn create_change(&self, change: &ChangeRequest, audit: &AuditEntry) -> StoreResult<ChangeRequest> {
        let env = &change.env;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_environment(&mut tx, env).await?;
        let number = definitions::next_number(&mut tx, "change_requests", env).await?;
        let stored = ChangeRequest {
            number,
            ..change.clone()
        };
        let c = &stored;
        sqlx::query(&format!(
            "INSERT INTO change_requests (tenant, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        ))
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(c.number)
        .bind(&c.config)
        .bind(json(&c.operation))
        .bind(&c.title)
        .bind(&c.description)
        .bind(&c.author)
        .bind(c.base_release)
        .bind(c.state.name())
        .bind(json(&c.approvals))
        .bind(&c.rejected_by)
        .bind(&c.rejection)
        .bind(c.scheduled_ms)
        .bind(&c.schedule_zone)
        .bind(&c.scheduled_by)
        .bind(&c.outcome)
        .bind(c.created_ms)
        .bind(c.updated_ms)
        .bind(c.revision)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit(
            &mut tx,
            &AuditEntry {
                resource: c.resource(),
                ..audit.clone()
            },
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn change(&self, env: &EnvKey, number: i64) -> StoreResult<Option<ChangeRequest>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM change_requests \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND number = $4"
        ))
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(number)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| change_of(&env.tenant, &row)).transpose()
    }

    async fn list_changes(
        &self,
        env: &EnvKey,
        state: Option<ChangeState>,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<ChangeRequest>> {
        let before = if before > 0 { before } else { i64::MAX };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM change_requests \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND number < $4 AND ($5 = '' OR state = $5) \
             ORDER BY number DESC LIMIT $6"
        ))
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(before)
        .bind(state.map_or("", ChangeState::name))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(|row| change_of(&env.tenant, row)).collect()
    }

    async fn update_change(&self, change: &ChangeRequest, from_revision: i64, audit: &[AuditEntry]) -> StoreResult<()> {
        let env = &change.env;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let updated = sqlx::query(
            "UPDATE change_requests SET operation = $5, title = $6, description = $7, base_release = $8, \
             state = $9, approvals = $10, rejected_by = $11, rejection = $12, scheduled_ms = $13, \
             schedule_zone = $14, scheduled_by = $15, outcome = $16, updated_ms = $17, revision = $18 \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND number = $4 AND revision = $19",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(change.number)
        .bind(json(&change.operation))
        .bind(&change.title)
        .bind(&change.description)
        .bind(change.base_release)
        .bind(change.state.name())
        .bind(json(&change.approvals))
        .bind(&change.rejected_by)
        .bind(&change.rejection)
        .bind(change.scheduled_ms)
        .bind(&change.schedule_zone)
        .bind(&change.scheduled_by)
        .bind(&change.outcome)
        .bind(change.updated_ms)
        .bind(change.revision)
        .bind(from_revision)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        for entry in audit {
            append_audit(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn due_changes(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<ChangeRequest>> {
        let rows = sqlx::query(&format!(
            "SELECT tenant, {COLUMNS} FROM change_requests WHERE state = 'SCHEDULED' AND scheduled_ms <= $1 \
             ORDER BY scheduled_ms LIMIT $2"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant").map_err(backend)?;
                change_of(&tenant, row)
            })
            .collect()
    }
}
