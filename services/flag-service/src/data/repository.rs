//! [`SqlRepository`]: flags, segments, versions and the audit trail with the same SQL on
//! PostgreSQL and SQLite.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool, Row, any::AnyRow};
use switchyard_platform::audit::{self, AuditEntry, AuditFilter, AuditRecord};

use crate::biz::{
    error::StoreError,
    model::ProjectFlags,
    repository::{
        Changeset, Committed, EnvironmentUsage, Expected, FlagRepository, FlagVersion, StoredFlag, StoredSegment,
        UsageRow,
    },
    schedule::{ScheduleStatus, ScheduledChange},
};

/// The repository on a migrated pool.
#[derive(Debug, Clone)]
pub struct SqlRepository {
    pool: AnyPool,
}

impl SqlRepository {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Backend(format!("a stored definition does not parse: {error}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Backend(error.to_string()))
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

const FLAG_COLUMNS: &str = "flag_key, definition, version, created_ms, updated_ms";

fn flag_of(row: &AnyRow) -> Result<StoredFlag, StoreError> {
    Ok(StoredFlag {
        key: row.try_get("flag_key").map_err(backend)?,
        definition: decode(&row.try_get::<String, _>("definition").map_err(backend)?)?,
        version: row.try_get("version").map_err(backend)?,
        created_ms: row.try_get("created_ms").map_err(backend)?,
        updated_ms: row.try_get("updated_ms").map_err(backend)?,
    })
}

const SCHEDULE_COLUMNS: &str = "tenant, id, project, flag_key, due_ms, time_zone, local_time, environments, author, \
     message, status, created_ms, applied_ms, applied_version, failure";

fn scheduled_of(row: &AnyRow) -> Result<ScheduledChange, StoreError> {
    let status: String = row.try_get("status").map_err(backend)?;
    Ok(ScheduledChange {
        id: row.try_get("id").map_err(backend)?,
        tenant: row.try_get("tenant").map_err(backend)?,
        project: row.try_get("project").map_err(backend)?,
        flag: row.try_get("flag_key").map_err(backend)?,
        due_ms: row.try_get("due_ms").map_err(backend)?,
        time_zone: row.try_get("time_zone").map_err(backend)?,
        local_time: row.try_get("local_time").map_err(backend)?,
        environments: decode(&row.try_get::<String, _>("environments").map_err(backend)?)?,
        author: row.try_get("author").map_err(backend)?,
        message: row.try_get("message").map_err(backend)?,
        status: ScheduleStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("unknown status {status}")))?,
        created_ms: row.try_get("created_ms").map_err(backend)?,
        applied_ms: row.try_get("applied_ms").map_err(backend)?,
        applied_version: row.try_get("applied_version").map_err(backend)?,
        failure: row.try_get("failure").map_err(backend)?,
    })
}

fn version_of(row: &AnyRow) -> Result<FlagVersion, StoreError> {
    Ok(FlagVersion {
        version: row.try_get("version").map_err(backend)?,
        definition: decode(&row.try_get::<String, _>("definition").map_err(backend)?)?,
        author: row.try_get("author").map_err(backend)?,
        message: row.try_get("message").map_err(backend)?,
        created_ms: row.try_get("created_ms").map_err(backend)?,
    })
}

/// The current (definition text, version) of a row, if any.
async fn current(
    conn: &mut AnyConnection,
    table: &str,
    key_column: &str,
    changeset: &Changeset,
    key: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    let sql =
        format!("SELECT definition, version FROM {table} WHERE tenant = $1 AND project = $2 AND {key_column} = $3");
    let row = sqlx::query(&sql)
        .bind(&changeset.tenant)
        .bind(&changeset.project)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    row.map(|row| {
        Ok((
            row.try_get("definition").map_err(backend)?,
            row.try_get("version").map_err(backend)?,
        ))
    })
    .transpose()
}

/// Every (key, definition) of a project in `table` (flags or segments), decoded.
async fn definitions<T: serde::de::DeserializeOwned>(
    conn: &mut AnyConnection,
    table: &str,
    key_column: &str,
    tenant: &str,
    project: &str,
) -> Result<std::collections::BTreeMap<String, T>, StoreError> {
    let sql = format!("SELECT {key_column} AS item_key, definition FROM {table} WHERE tenant = $1 AND project = $2");
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(project)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            let key: String = row.try_get("item_key").map_err(backend)?;
            Ok((key, decode(&row.try_get::<String, _>("definition").map_err(backend)?)?))
        })
        .collect()
}

fn check_expected(expected: Expected, current: Option<i64>, resource: &str) -> Result<(), StoreError> {
    match (expected, current) {
        (Expected::Absent, Some(_)) => Err(StoreError::Exists(resource.to_owned())),
        (Expected::Version(_), None) => Err(StoreError::Missing(resource.to_owned())),
        (Expected::Version(wanted), Some(version)) if wanted != version => Err(StoreError::Stale(resource.to_owned())),
        _ => Ok(()),
    }
}

fn audit_entry(changeset: &Changeset, resource: String, before: Option<&str>, after: Option<&str>) -> AuditEntry {
    AuditEntry {
        tenant: changeset.tenant.clone(),
        actor: changeset.author.clone(),
        action: changeset.action.to_owned(),
        resource,
        before_digest: before.map(digest),
        after_digest: after.map(digest),
        request_id: changeset.request_id.clone(),
    }
}

impl FlagRepository for SqlRepository {
    async fn commit(&self, changeset: &Changeset, now_ms: i64) -> Result<Committed, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("INSERT INTO flag_projects (tenant, project, revision) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING")
            .bind(&changeset.tenant)
            .bind(&changeset.project)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Moving the revision takes the project's row lock: writes to one project serialise here.
        let moved = sqlx::query(
            "UPDATE flag_projects SET revision = revision + 1 WHERE tenant = $1 AND project = $2 AND revision = $3",
        )
        .bind(&changeset.tenant)
        .bind(&changeset.project)
        .bind(changeset.expected_revision)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::ProjectMoved);
        }

        let mut flag_versions = Vec::with_capacity(changeset.flags.len());
        for write in &changeset.flags {
            let resource = format!("projects/{}/flags/{}", changeset.project, write.key);
            let before = current(&mut tx, "flags", "flag_key", changeset, &write.key).await?;
            check_expected(write.expected, before.as_ref().map(|(_, version)| *version), &resource)?;
            let text = encode(&write.definition)?;
            let version = before.as_ref().map_or(1, |(_, version)| version + 1);
            let sql = if before.is_some() {
                "UPDATE flags SET definition = $4, version = $5, updated_ms = $6 \
                 WHERE tenant = $1 AND project = $2 AND flag_key = $3"
            } else {
                "INSERT INTO flags (tenant, project, flag_key, definition, version, created_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)"
            };
            sqlx::query(sql)
                .bind(&changeset.tenant)
                .bind(&changeset.project)
                .bind(&write.key)
                .bind(&text)
                .bind(version)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query(
                "INSERT INTO flag_versions (tenant, project, flag_key, version, definition, author, message, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&changeset.tenant)
            .bind(&changeset.project)
            .bind(&write.key)
            .bind(version)
            .bind(&text)
            .bind(&changeset.author)
            .bind(&changeset.message)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let entry = audit_entry(
                changeset,
                resource,
                before.as_ref().map(|(text, _)| text.as_str()),
                Some(&text),
            );
            audit::append(&mut tx, &entry, now_ms).await.map_err(backend)?;
            flag_versions.push(version);
        }

        for write in &changeset.segments {
            let resource = format!("projects/{}/segments/{}", changeset.project, write.key);
            let before = current(&mut tx, "segments", "segment_key", changeset, &write.key).await?;
            check_expected(write.expected, before.as_ref().map(|(_, version)| *version), &resource)?;
            let after = write.definition.as_ref().map(encode).transpose()?;
            let query = match (&after, &before) {
                (None, _) => {
                    sqlx::query("DELETE FROM segments WHERE tenant = $1 AND project = $2 AND segment_key = $3")
                }
                (Some(_), Some(_)) => sqlx::query(
                    "UPDATE segments SET definition = $4, version = $5, updated_ms = $6 \
                     WHERE tenant = $1 AND project = $2 AND segment_key = $3",
                ),
                (Some(_), None) => sqlx::query(
                    "INSERT INTO segments (tenant, project, segment_key, definition, version, created_ms, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                ),
            };
            let version = before.as_ref().map_or(1, |(_, version)| version + 1);
            let query = query.bind(&changeset.tenant).bind(&changeset.project).bind(&write.key);
            let query = match &after {
                Some(text) => query.bind(text.clone()).bind(version).bind(now_ms),
                None => query,
            };
            query.execute(&mut *tx).await.map_err(backend)?;
            let entry = audit_entry(
                changeset,
                resource,
                before.as_ref().map(|(text, _)| text.as_str()),
                after.as_deref(),
            );
            audit::append(&mut tx, &entry, now_ms).await.map_err(backend)?;
        }
        if let Some(id) = &changeset.scheduled {
            let applied = sqlx::query(
                "UPDATE scheduled_changes SET status = 'applied', applied_ms = $3, applied_version = $4 \
                 WHERE tenant = $1 AND id = $2 AND status = 'pending'",
            )
            .bind(&changeset.tenant)
            .bind(id)
            .bind(now_ms)
            .bind(flag_versions.first().copied())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if applied.rows_affected() == 0 {
                return Err(StoreError::Stale(format!("scheduled change {id}")));
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(Committed {
            flag_versions,
            revision: changeset.expected_revision + 1,
        })
    }

    async fn project(&self, tenant: &str, project: &str) -> Result<(ProjectFlags, i64), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM flag_projects WHERE tenant = $1 AND project = $2")
                .bind(tenant)
                .bind(project)
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)?;
        let flags = ProjectFlags {
            flags: definitions(&mut conn, "flags", "flag_key", tenant, project).await?,
            segments: definitions(&mut conn, "segments", "segment_key", tenant, project).await?,
        };
        Ok((flags, revision.unwrap_or(0)))
    }

    async fn flag(&self, tenant: &str, project: &str, key: &str) -> Result<Option<StoredFlag>, StoreError> {
        let sql = format!("SELECT {FLAG_COLUMNS} FROM flags WHERE tenant = $1 AND project = $2 AND flag_key = $3");
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(flag_of).transpose()
    }

    async fn flags(
        &self,
        tenant: &str,
        project: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredFlag>, StoreError> {
        let sql = format!(
            "SELECT {FLAG_COLUMNS} FROM flags WHERE tenant = $1 AND project = $2 AND flag_key > $3 \
             ORDER BY flag_key LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(flag_of).collect()
    }

    async fn versions(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<FlagVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, definition, author, message, created_ms FROM flag_versions \
             WHERE tenant = $1 AND project = $2 AND flag_key = $3 AND version < $4 ORDER BY version DESC LIMIT $5",
        )
        .bind(tenant)
        .bind(project)
        .bind(key)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(version_of).collect()
    }

    async fn version(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        version: i64,
    ) -> Result<Option<FlagVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT version, definition, author, message, created_ms FROM flag_versions \
             WHERE tenant = $1 AND project = $2 AND flag_key = $3 AND version = $4",
        )
        .bind(tenant)
        .bind(project)
        .bind(key)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(version_of).transpose()
    }

    async fn segments(&self, tenant: &str, project: &str) -> Result<Vec<StoredSegment>, StoreError> {
        let rows = sqlx::query(
            "SELECT segment_key, definition, version, updated_ms FROM segments \
             WHERE tenant = $1 AND project = $2 ORDER BY segment_key",
        )
        .bind(tenant)
        .bind(project)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(StoredSegment {
                    key: row.try_get("segment_key").map_err(backend)?,
                    definition: decode(&row.try_get::<String, _>("definition").map_err(backend)?)?,
                    version: row.try_get("version").map_err(backend)?,
                    updated_ms: row.try_get("updated_ms").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn schedule(&self, change: &ScheduledChange, request_id: Option<&str>) -> Result<(), StoreError> {
        let environments = encode(&change.environments)?;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO scheduled_changes (tenant, id, project, flag_key, due_ms, time_zone, local_time, environments, \
             author, message, status, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11)",
        )
        .bind(&change.tenant)
        .bind(&change.id)
        .bind(&change.project)
        .bind(&change.flag)
        .bind(change.due_ms)
        .bind(&change.time_zone)
        .bind(&change.local_time)
        .bind(&environments)
        .bind(&change.author)
        .bind(&change.message)
        .bind(change.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let entry = AuditEntry {
            tenant: change.tenant.clone(),
            actor: change.author.clone(),
            action: "flags.schedule".to_owned(),
            resource: format!(
                "projects/{}/flags/{}/scheduledChanges/{}",
                change.project, change.flag, change.id
            ),
            before_digest: None,
            after_digest: Some(digest(&environments)),
            request_id: request_id.map(str::to_owned),
        };
        audit::append(&mut tx, &entry, change.created_ms)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn scheduled(&self, tenant: &str, project: &str, flag: &str) -> Result<Vec<ScheduledChange>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM scheduled_changes WHERE tenant = $1 AND project = $2 AND flag_key = $3 \
             ORDER BY due_ms, id"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .bind(flag)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(scheduled_of).collect()
    }

    async fn scheduled_change(&self, tenant: &str, id: &str) -> Result<Option<ScheduledChange>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM scheduled_changes WHERE tenant = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(scheduled_of).transpose()
    }

    async fn settle_scheduled(
        &self,
        tenant: &str,
        id: &str,
        status: ScheduleStatus,
        failure: Option<&str>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let settled = sqlx::query(
            "UPDATE scheduled_changes SET status = $3, failure = $4, applied_ms = $5 \
             WHERE tenant = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(status.as_str())
        .bind(failure)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if settled.rows_affected() == 0 {
            return Err(StoreError::Stale(format!("scheduled change {id}")));
        }
        let entry = AuditEntry {
            tenant: tenant.to_owned(),
            actor: actor.to_owned(),
            action: format!("flags.schedule.{}", status.as_str()),
            resource: format!("scheduledChanges/{id}"),
            before_digest: None,
            after_digest: failure.map(digest),
            request_id: None,
        };
        audit::append(&mut tx, &entry, now_ms).await.map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<ScheduledChange>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM scheduled_changes WHERE status = 'pending' AND due_ms <= $1 \
             ORDER BY due_ms, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(scheduled_of).collect()
    }

    async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for row in rows {
            sqlx::query(
                "INSERT INTO flag_usage (tenant, project, environment, flag_key, variant, evaluations, last_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (tenant, project, environment, flag_key, variant) DO UPDATE SET \
                 evaluations = flag_usage.evaluations + excluded.evaluations, \
                 last_ms = CASE WHEN excluded.last_ms > flag_usage.last_ms THEN excluded.last_ms ELSE flag_usage.last_ms END",
            )
            .bind(&row.tenant)
            .bind(&row.project)
            .bind(&row.environment)
            .bind(&row.flag)
            .bind(&row.variant)
            .bind(row.evaluations)
            .bind(row.last_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn usage(&self, tenant: &str, project: &str, key: &str) -> Result<Vec<EnvironmentUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT environment, variant, evaluations, last_ms FROM flag_usage \
             WHERE tenant = $1 AND project = $2 AND flag_key = $3 ORDER BY environment, variant",
        )
        .bind(tenant)
        .bind(project)
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut usage: Vec<EnvironmentUsage> = Vec::new();
        for row in rows {
            let environment: String = row.try_get("environment").map_err(backend)?;
            let variant: String = row.try_get("variant").map_err(backend)?;
            let evaluations: i64 = row.try_get("evaluations").map_err(backend)?;
            let last_ms: i64 = row.try_get("last_ms").map_err(backend)?;
            match usage.last_mut() {
                Some(current) if current.environment == environment => {
                    current.evaluations.push((variant, evaluations));
                    current.last_ms = current.last_ms.max(last_ms);
                }
                _ => usage.push(EnvironmentUsage {
                    environment,
                    evaluations: vec![(variant, evaluations)],
                    last_ms,
                }),
            }
        }
        Ok(usage)
    }

    async fn last_evaluations(&self, tenant: &str, project: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT flag_key, MAX(last_ms) AS last_ms FROM flag_usage WHERE tenant = $1 AND project = $2 GROUP BY flag_key",
        )
        .bind(tenant)
        .bind(project)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("flag_key").map_err(backend)?,
                    row.try_get("last_ms").map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn audit(&self, tenant: &str, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list(&self.pool, tenant, filter).await.map_err(backend)
    }

    async fn revisions(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT tenant, project, revision FROM flag_projects")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("tenant").map_err(backend)?,
                    row.try_get("project").map_err(backend)?,
                    row.try_get("revision").map_err(backend)?,
                ))
            })
            .collect()
    }
}
