//! Persistence for config-service: its migrations (applied at start, one set per backend)
//! and [`SqlRepository`], which implements `biz::repository::Repository` with the same SQL
//! on PostgreSQL and SQLite.

mod api_keys;
mod changes;
pub mod consul_kv;
mod definitions;
mod deployments;
mod governance;
pub mod hooks;
pub mod prometheus;
mod rows;

use sqlx::{AnyConnection, AnyPool, Row, migrate::Migrator};
use switchyard_platform::{
    audit::{self, AuditEntry, AuditFilter, AuditRecord, ChainReport},
    storage::Migrations,
};

use crate::biz::{
    model::{
        ConfigClient, ConfigDraft, ConfigFilter, EnvKey, Environment, Fetch, Project, Release, Resolution, Served,
        StoredDataKey, now_ms,
    },
    names::ConfigRef,
    repository::{ProjectImage, Publication, Repository, StoreError, StoreResult},
    sightings::Sighting,
};
use rows::{
    CONFIG_COLUMNS, ENVIRONMENT_COLUMNS, RELEASE_COLUMNS, SERVED_COLUMNS, config_of, environment_of, json, release_of,
    served_of,
};

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/config-service/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/config-service/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

/// The repository on a migrated pool.
#[derive(Debug, Clone)]
pub struct SqlRepository {
    pool: AnyPool,
}

impl SqlRepository {
    pub fn new(pool: AnyPool) -> Self {
        SqlRepository { pool }
    }
}

fn backend(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database) = &error
        && database.is_unique_violation()
    {
        return StoreError::Duplicate;
    }
    StoreError::Backend(error.to_string())
}

/// `%text%` with LIKE's wildcards in `text` escaped, so searching for `50%` finds `50%`.
fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

async fn append_audit(conn: &mut AnyConnection, entry: &AuditEntry) -> StoreResult<()> {
    audit::append(conn, entry, now_ms()).await.map_err(backend)?;
    Ok(())
}

async fn insert_environment(conn: &mut AnyConnection, tenant: &str, environment: &Environment) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO environments (tenant, project, id, position, variables, revision, compacted, version, \
         public_evaluation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(&environment.project)
    .bind(&environment.id)
    .bind(environment.position)
    .bind(json(&environment.variables))
    .bind(environment.revision)
    .bind(environment.compacted)
    .bind(environment.version)
    .bind(i64::from(environment.public_evaluation))
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn insert_config(conn: &mut AnyConnection, tenant: &str, draft: &ConfigDraft) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO configs (tenant, project, id, format, content, overlays, extends, schema_text, rules, labels, \
         secret_paths, search_text, version, updated_by, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(tenant)
    .bind(&draft.project)
    .bind(&draft.id)
    .bind(draft.format.name())
    .bind(&draft.content)
    .bind(json(&draft.overlays))
    .bind(json(&draft.extends))
    .bind(&draft.schema)
    .bind(json(&draft.rules))
    .bind(json(&draft.labels))
    .bind(json(&draft.secret_paths))
    .bind(&draft.search_text)
    .bind(draft.version)
    .bind(&draft.updated_by)
    .bind(draft.updated_ms)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    replace_bases(conn, tenant, draft).await
}

/// Rewrites the inheritance rows of a draft.
async fn replace_bases(conn: &mut AnyConnection, tenant: &str, draft: &ConfigDraft) -> StoreResult<()> {
    sqlx::query("DELETE FROM config_bases WHERE tenant = $1 AND project = $2 AND config = $3")
        .bind(tenant)
        .bind(&draft.project)
        .bind(&draft.id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    for text in &draft.extends {
        let Ok(base) = ConfigRef::parse("extends", text, &draft.project) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO config_bases (tenant, project, config, base_project, base_config) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&draft.project)
        .bind(&draft.id)
        .bind(&base.project)
        .bind(&base.config)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

async fn insert_release(conn: &mut AnyConnection, release: &Release) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO releases (tenant, project, environment, config, number, author, message, created_ms, format, \
         content, overlay, extends, resolved, content_hash, secret_paths, source, revision, imported_author, \
         imported_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(&release.env.tenant)
    .bind(&release.env.project)
    .bind(&release.env.environment)
    .bind(&release.config)
    .bind(release.number)
    .bind(&release.author)
    .bind(&release.message)
    .bind(release.created_ms)
    .bind(release.format.name())
    .bind(&release.content)
    .bind(&release.overlay)
    .bind(json(&release.extends))
    .bind(json(&release.resolved))
    .bind(&release.content_hash)
    .bind(json(&release.secret_paths))
    .bind(&release.source)
    .bind(release.revision)
    .bind(&release.imported_author)
    .bind(release.imported_ms)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Writes a change-log row and points `published` at it.
async fn insert_served(conn: &mut AnyConnection, env: &EnvKey, served: &Served) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO changes (tenant, project, environment, revision, config, release, format, resolved, \
         content_hash, secret_paths, created_ms, rollout) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(served.revision)
    .bind(&served.config)
    .bind(served.release)
    .bind(served.format.name())
    .bind(json(&served.resolved))
    .bind(&served.content_hash)
    .bind(json(&served.secret_paths))
    .bind(served.created_ms)
    .bind(rows::rollout_text(served.rollout.as_deref()))
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "INSERT INTO published (tenant, project, environment, config, revision) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, project, environment, config) DO UPDATE SET revision = excluded.revision",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(&served.config)
    .bind(served.revision)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Fails with `Stale` when a resolution was computed from a state that is no longer served.
async fn check_preconditions(conn: &mut AnyConnection, resolutions: &[Resolution]) -> StoreResult<()> {
    for precondition in resolutions.iter().flat_map(|resolution| &resolution.requires) {
        let env = &precondition.env;
        let served: Option<i64> = sqlx::query_scalar(
            "SELECT revision FROM published WHERE tenant = $1 AND project = $2 AND environment = $3 AND config = $4",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(&precondition.config)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
        if served.unwrap_or(0) != precondition.revision {
            return Err(StoreError::Stale);
        }
    }
    Ok(())
}

/// Takes the environment's next revision; the row update also locks the environment, which
/// serialises publications into it.
async fn next_revision(conn: &mut AnyConnection, env: &EnvKey) -> StoreResult<i64> {
    let row = sqlx::query(
        "UPDATE environments SET revision = revision + 1 WHERE tenant = $1 AND project = $2 AND id = $3 \
         RETURNING revision",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?
    .ok_or(StoreError::Missing)?;
    row.try_get(0).map_err(backend)
}

/// Locks the environment row (serialising writes into it) without taking a revision.
async fn lock_environment(conn: &mut AnyConnection, env: &EnvKey) -> StoreResult<()> {
    let updated =
        sqlx::query("UPDATE environments SET revision = revision WHERE tenant = $1 AND project = $2 AND id = $3")
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::Missing);
    }
    Ok(())
}

/// Change-log pruning runs once per this many revisions: the log may exceed `retain` by as
/// much, and no publication pays for a delete every time.
const PRUNE_EVERY: i64 = 64;

/// Drops change-log rows beyond the newest `retain`, except the ones still served.
async fn prune_changes(conn: &mut AnyConnection, env: &EnvKey, latest: i64, retain: i64) -> StoreResult<()> {
    let cutoff = latest - retain;
    let due = retain < PRUNE_EVERY || latest % PRUNE_EVERY == 0;
    if cutoff <= 0 || !due {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM changes WHERE tenant = $1 AND project = $2 AND environment = $3 AND revision <= $4 \
         AND revision NOT IN (SELECT revision FROM published WHERE tenant = $1 AND project = $2 AND environment = $3)",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(cutoff)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "UPDATE environments SET compacted = $4 WHERE tenant = $1 AND project = $2 AND id = $3 AND compacted < $4",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(cutoff)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The number the config's next release in `env` gets (the caller holds the environment lock
/// or accepts a unique-key conflict).
async fn next_release_number(conn: &mut AnyConnection, env: &EnvKey, config: &str) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM releases \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND config = $4",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(config)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)
}

/// Writes a publication inside the caller's transaction: each resolution takes the
/// environment's next revision (the first locks the environment row, after which the
/// preconditions are checked), the release (if any) is numbered, then the audit entries.
async fn write_publication(
    tx: &mut AnyConnection,
    publication: &Publication,
    audit: &[AuditEntry],
) -> StoreResult<(Option<Release>, Vec<Served>)> {
    let env = &publication.env;
    let created_ms = now_ms();
    let mut served = Vec::with_capacity(publication.resolutions.len());
    let mut release_out = None;
    let mut locked = false;
    for (position, resolution) in publication.resolutions.iter().enumerate() {
        let revision = next_revision(&mut *tx, env).await?;
        if !locked {
            // The environment row is locked now: publications into it are serialised, and
            // what they were resolved from can be checked before anything is written.
            check_preconditions(&mut *tx, &publication.resolutions).await?;
            locked = true;
        }
        let mut release_number = resolution.release;
        if position == 0
            && let Some(release) = &publication.release
        {
            let number = next_release_number(&mut *tx, env, &release.config).await?;
            let numbered = Release {
                number,
                revision,
                created_ms,
                ..release.clone()
            };
            insert_release(&mut *tx, &numbered).await?;
            release_number = number;
            release_out = Some(numbered);
        }
        let row = Served {
            config: resolution.config.clone(),
            revision,
            release: release_number,
            format: resolution.format,
            resolved: resolution.resolved.clone(),
            content_hash: resolution.content_hash.clone(),
            secret_paths: resolution.secret_paths.clone(),
            created_ms,
            rollout: None,
        };
        insert_served(&mut *tx, env, &row).await?;
        served.push(row);
    }
    for entry in audit {
        append_audit(&mut *tx, entry).await?;
    }
    if let Some(last) = served.last() {
        prune_changes(&mut *tx, env, last.revision, publication.retain_changes).await?;
    }
    Ok((release_out, served))
}

impl SqlRepository {
    async fn environments(&self, tenant: &str, project: &str) -> StoreResult<Vec<Environment>> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE tenant = $1 AND project = $2 ORDER BY position, id"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(environment_of).collect()
    }

    async fn project_of(&self, tenant: &str, row: &sqlx::any::AnyRow) -> StoreResult<Project> {
        let id: String = row.try_get("id").map_err(backend)?;
        Ok(Project {
            environments: self.environments(tenant, &id).await?,
            display_name: row.try_get("display_name").map_err(backend)?,
            created_ms: row.try_get("created_ms").map_err(backend)?,
            id,
        })
    }
}

impl Repository for SqlRepository {
    async fn create_project(&self, tenant: &str, project: &Project, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("INSERT INTO projects (tenant, id, display_name, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(&project.id)
            .bind(&project.display_name)
            .bind(project.created_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for environment in &project.environments {
            insert_environment(&mut tx, tenant, environment).await?;
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn project(&self, tenant: &str, id: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query("SELECT id, display_name, created_ms FROM projects WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match row {
            Some(row) => Ok(Some(self.project_of(tenant, &row).await?)),
            None => Ok(None),
        }
    }

    async fn list_projects(&self, tenant: &str, after: &str, limit: i64) -> StoreResult<Vec<Project>> {
        let rows = sqlx::query(
            "SELECT id, display_name, created_ms FROM projects WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(tenant)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut projects = Vec::with_capacity(rows.len());
        for row in &rows {
            projects.push(self.project_of(tenant, row).await?);
        }
        Ok(projects)
    }

    async fn create_environment(&self, tenant: &str, environment: &Environment, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_environment(&mut tx, tenant, environment).await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_environment(
        &self,
        tenant: &str,
        environment: &Environment,
        audit: &AuditEntry,
        reresolved: &Publication,
    ) -> StoreResult<(Environment, Vec<Served>)> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let sql = format!(
            "UPDATE environments SET variables = $4, public_evaluation = $6, version = version + 1 \
             WHERE tenant = $1 AND project = $2 AND id = $3 AND version = $5 RETURNING {ENVIRONMENT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(&environment.project)
            .bind(&environment.id)
            .bind(json(&environment.variables))
            .bind(environment.version)
            .bind(i64::from(environment.public_evaluation))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or(StoreError::Conflict)?;
        let mut updated = environment_of(&row)?;
        append_audit(&mut tx, audit).await?;
        let (_, served) = write_publication(&mut tx, reresolved, &[]).await?;
        tx.commit().await.map_err(backend)?;
        updated.revision = served.last().map_or(updated.revision, |row| row.revision);
        Ok((updated, served))
    }

    async fn create_config(&self, tenant: &str, draft: &ConfigDraft, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_config(&mut tx, tenant, draft).await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn config(&self, tenant: &str, project: &str, id: &str) -> StoreResult<Option<ConfigDraft>> {
        let sql = format!("SELECT {CONFIG_COLUMNS} FROM configs WHERE tenant = $1 AND project = $2 AND id = $3");
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(config_of).transpose()
    }

    async fn update_config(
        &self,
        tenant: &str,
        draft: &ConfigDraft,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<ConfigDraft> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let updated = sqlx::query(
            "UPDATE configs SET format = $4, content = $5, overlays = $6, extends = $7, schema_text = $8, rules = $9, \
             labels = $10, secret_paths = $11, search_text = $12, version = version + 1, updated_by = $13, \
             updated_ms = $14 WHERE tenant = $1 AND project = $2 AND id = $3 AND version = $15",
        )
        .bind(tenant)
        .bind(&draft.project)
        .bind(&draft.id)
        .bind(draft.format.name())
        .bind(&draft.content)
        .bind(json(&draft.overlays))
        .bind(json(&draft.extends))
        .bind(&draft.schema)
        .bind(json(&draft.rules))
        .bind(json(&draft.labels))
        .bind(json(&draft.secret_paths))
        .bind(&draft.search_text)
        .bind(&draft.updated_by)
        .bind(draft.updated_ms)
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        replace_bases(&mut tx, tenant, draft).await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ConfigDraft {
            version: expected_version + 1,
            ..draft.clone()
        })
    }

    async fn list_configs(&self, tenant: &str, project: &str, filter: &ConfigFilter) -> StoreResult<Vec<ConfigDraft>> {
        // Label filters are checked after the query: labels are a JSON column, and a page is
        // filled by reading on until `limit` matches are found.
        let sql = format!(
            "SELECT {CONFIG_COLUMNS} FROM configs WHERE tenant = $1 AND project = $2 AND id > $3 \
             AND substr(id, 1, length($4)) = $4 AND search_text LIKE $5 ESCAPE '\\' ORDER BY id LIMIT $6"
        );
        let mut out = Vec::new();
        let mut after = filter.after.clone();
        loop {
            let rows = sqlx::query(&sql)
                .bind(tenant)
                .bind(project)
                .bind(&after)
                .bind(&filter.name_prefix)
                .bind(like_pattern(&filter.text))
                .bind(filter.limit.max(1))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
            let exhausted = (rows.len() as i64) < filter.limit.max(1);
            for row in &rows {
                let draft = config_of(row)?;
                after = draft.id.clone();
                let matches = filter
                    .labels
                    .iter()
                    .all(|(key, value)| draft.labels.get(key) == Some(value));
                if matches {
                    out.push(draft);
                }
                if out.len() as i64 >= filter.limit {
                    return Ok(out);
                }
            }
            if exhausted {
                return Ok(out);
            }
        }
    }

    async fn environment(&self, tenant: &str, project: &str, id: &str) -> StoreResult<Option<Environment>> {
        let sql =
            format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE tenant = $1 AND project = $2 AND id = $3");
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(environment_of).transpose()
    }

    async fn direct_dependents(&self, tenant: &str, project: &str, config: &str) -> StoreResult<Vec<(String, String)>> {
        sqlx::query_as(
            "SELECT project, config FROM config_bases WHERE tenant = $1 AND base_project = $2 AND base_config = $3 \
             ORDER BY project, config",
        )
        .bind(tenant)
        .bind(project)
        .bind(config)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn publish(
        &self,
        publication: &Publication,
        audit: &[AuditEntry],
    ) -> StoreResult<(Option<Release>, Vec<Served>)> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let written = write_publication(&mut tx, publication, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(written)
    }

    async fn stage_release(&self, release: &Release, audit: &AuditEntry) -> StoreResult<Release> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Taking the environment row lock numbers staged releases in line with publications.
        lock_environment(&mut tx, &release.env).await?;
        let number = next_release_number(&mut tx, &release.env, &release.config).await?;
        let numbered = Release {
            number,
            revision: 0,
            created_ms: now_ms(),
            ..release.clone()
        };
        insert_release(&mut tx, &numbered).await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(numbered)
    }

    async fn release(&self, env: &EnvKey, config: &str, number: i64) -> StoreResult<Option<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE tenant = $1 AND project = $2 AND environment = $3 \
             AND config = $4 AND number = $5"
        );
        let row = sqlx::query(&sql)
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(config)
            .bind(number)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|row| release_of(&env.tenant, &row)).transpose()
    }

    async fn list_releases(&self, env: &EnvKey, config: &str, before: i64, limit: i64) -> StoreResult<Vec<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE tenant = $1 AND project = $2 AND environment = $3 \
             AND config = $4 AND number < $5 ORDER BY number DESC LIMIT $6"
        );
        let rows = sqlx::query(&sql)
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(config)
            .bind(if before > 0 { before } else { i64::MAX })
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(|row| release_of(&env.tenant, row)).collect()
    }

    async fn project_releases(&self, tenant: &str, project: &str) -> StoreResult<Vec<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE tenant = $1 AND project = $2 \
             ORDER BY environment, config, number"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(project)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(|row| release_of(tenant, row)).collect()
    }

    async fn served(&self, env: &EnvKey) -> StoreResult<(Environment, Vec<Served>)> {
        let environment = self
            .environment(&env.tenant, &env.project, &env.environment)
            .await?
            .ok_or(StoreError::Missing)?;
        let sql = format!(
            "SELECT {SERVED_COLUMNS} FROM changes c JOIN published p ON p.tenant = c.tenant AND p.project = c.project \
             AND p.environment = c.environment AND p.revision = c.revision \
             WHERE c.tenant = $1 AND c.project = $2 AND c.environment = $3 ORDER BY c.config"
        );
        let rows = sqlx::query(&sql)
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let served = rows.iter().map(served_of).collect::<StoreResult<Vec<_>>>()?;
        Ok((environment, served))
    }

    async fn changes_since(&self, env: &EnvKey, since: i64, limit: i64) -> StoreResult<Vec<Served>> {
        let sql = format!(
            "SELECT {SERVED_COLUMNS} FROM changes c WHERE c.tenant = $1 AND c.project = $2 AND c.environment = $3 \
             AND c.revision > $4 ORDER BY c.revision LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(served_of).collect()
    }

    async fn record_fetches(&self, fetches: &[(Fetch, i64, u64)]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for (fetch, at_ms, count) in fetches {
            rows::upsert_client(&mut tx, fetch, *at_ms).await?;
            rows::add_fetches(&mut tx, &fetch.env, &fetch.config, *count as i64).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn record_sightings(&self, sightings: &[Sighting]) -> StoreResult<()> {
        rows::record_sightings(&self.pool, sightings).await
    }

    async fn sighted_clients(&self, env: &EnvKey, config: &str, since_ms: i64, limit: i64) -> StoreResult<Vec<String>> {
        rows::sighted_clients(&self.pool, env, config, since_ms, limit).await
    }

    async fn clients(&self, env: &EnvKey, config: &str) -> StoreResult<(Vec<ConfigClient>, u64)> {
        let rows = sqlx::query(
            "SELECT service, instance, release, etag, last_fetch_ms FROM config_clients WHERE tenant = $1 \
             AND project = $2 AND environment = $3 AND config = $4 ORDER BY service, instance",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(config)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let clients = rows
            .iter()
            .map(|row| {
                Ok(ConfigClient {
                    service: row.try_get("service").map_err(backend)?,
                    instance: row.try_get("instance").map_err(backend)?,
                    release: row.try_get("release").map_err(backend)?,
                    etag: row.try_get("etag").map_err(backend)?,
                    last_fetch_ms: row.try_get("last_fetch_ms").map_err(backend)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let fetches: Option<i64> = sqlx::query_scalar(
            "SELECT fetches FROM config_fetch_counts WHERE tenant = $1 AND project = $2 AND environment = $3 \
             AND config = $4",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(config)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok((clients, fetches.unwrap_or(0).max(0) as u64))
    }

    async fn data_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<StoredDataKey>> {
        let rows = sqlx::query(
            "SELECT tenant, id, kek_id, ciphertext, created_ms FROM data_keys WHERE ($1 = '' OR tenant = $1) \
             ORDER BY created_ms, id",
        )
        .bind(tenant.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::data_key_of).collect()
    }

    async fn insert_data_key(&self, key: &StoredDataKey) -> StoreResult<()> {
        sqlx::query("INSERT INTO data_keys (id, tenant, kek_id, ciphertext, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&key.id)
            .bind(&key.tenant)
            .bind(&key.kek_id)
            .bind(&key.ciphertext)
            .bind(key.created_ms)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn rewrap_data_keys(&self, keys: &[StoredDataKey], audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for key in keys {
            sqlx::query("UPDATE data_keys SET kek_id = $2, ciphertext = $3 WHERE id = $1")
                .bind(&key.id)
                .bind(&key.kek_id)
                .bind(&key.ciphertext)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn import_project(&self, tenant: &str, image: &ProjectImage, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let project = &image.project;
        sqlx::query("INSERT INTO projects (tenant, id, display_name, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(&project.id)
            .bind(&project.display_name)
            .bind(project.created_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for environment in &project.environments {
            insert_environment(&mut tx, tenant, environment).await?;
        }
        for draft in &image.configs {
            insert_config(&mut tx, tenant, draft).await?;
        }
        for release in &image.releases {
            insert_release(&mut tx, release).await?;
        }
        for (environment, served) in &image.current {
            insert_served(&mut tx, &EnvKey::new(tenant, &project.id, environment), served).await?;
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn audit_records(&self, tenant: &str, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        audit::list(&self.pool, tenant, filter).await.map_err(backend)
    }

    async fn verify_audit(&self, tenant: &str) -> StoreResult<ChainReport> {
        audit::verify(&self.pool, tenant).await.map_err(backend)
    }
}
