//! Row ↔ domain conversions and the small upserts that both backends write the same way.
//! JSON columns are text; a column that does not parse is reported as a backend error.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::backend;
use crate::biz::{
    document::Format,
    model::{ConfigDraft, EnvKey, Environment, Fetch, Release, Rollout, Served, StoredDataKey},
    repository::{StoreError, StoreResult},
    sightings::Sighting,
};

pub const ENVIRONMENT_COLUMNS: &str =
    "project, id, position, variables, revision, compacted, version, public_evaluation";

pub const CONFIG_COLUMNS: &str = "project, id, format, content, overlays, extends, schema_text, rules, labels, \
                                  secret_paths, search_text, version, updated_by, updated_ms";

pub const RELEASE_COLUMNS: &str = "project, environment, config, number, author, message, created_ms, format, \
                                   content, overlay, extends, resolved, content_hash, secret_paths, source, revision, \
                                   imported_author, imported_ms";

pub const SERVED_COLUMNS: &str =
    "c.config, c.revision, c.release, c.format, c.resolved, c.content_hash, c.secret_paths, c.created_ms, c.rollout";

/// Serialises a value for a JSON text column.
pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub(super) fn column<T>(row: &AnyRow, name: &str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(backend)
}

pub(super) fn json_column<T: DeserializeOwned>(row: &AnyRow, name: &str) -> StoreResult<T> {
    let text: String = column(row, name)?;
    serde_json::from_str(&text).map_err(|error| StoreError::Backend(format!("column {name}: {error}")))
}

fn format_column(row: &AnyRow) -> StoreResult<Format> {
    let name: String = column(row, "format")?;
    Format::from_name(&name).ok_or_else(|| StoreError::Backend(format!("unknown format `{name}`")))
}

pub fn environment_of(row: &AnyRow) -> StoreResult<Environment> {
    Ok(Environment {
        project: column(row, "project")?,
        id: column(row, "id")?,
        position: column(row, "position")?,
        variables: json_column(row, "variables")?,
        revision: column(row, "revision")?,
        compacted: column(row, "compacted")?,
        version: column(row, "version")?,
        public_evaluation: column::<i64>(row, "public_evaluation")? != 0,
    })
}

pub fn config_of(row: &AnyRow) -> StoreResult<ConfigDraft> {
    Ok(ConfigDraft {
        project: column(row, "project")?,
        id: column(row, "id")?,
        format: format_column(row)?,
        content: column(row, "content")?,
        overlays: json_column(row, "overlays")?,
        extends: json_column(row, "extends")?,
        schema: column(row, "schema_text")?,
        rules: json_column(row, "rules")?,
        labels: json_column(row, "labels")?,
        secret_paths: json_column(row, "secret_paths")?,
        search_text: column(row, "search_text")?,
        version: column(row, "version")?,
        updated_by: column(row, "updated_by")?,
        updated_ms: column(row, "updated_ms")?,
    })
}

pub fn release_of(tenant: &str, row: &AnyRow) -> StoreResult<Release> {
    let project: String = column(row, "project")?;
    let environment: String = column(row, "environment")?;
    Ok(Release {
        env: EnvKey::new(tenant, &project, &environment),
        config: column(row, "config")?,
        number: column(row, "number")?,
        author: column(row, "author")?,
        message: column(row, "message")?,
        created_ms: column(row, "created_ms")?,
        format: format_column(row)?,
        content: column(row, "content")?,
        overlay: column(row, "overlay")?,
        extends: json_column(row, "extends")?,
        resolved: json_column(row, "resolved")?,
        content_hash: column(row, "content_hash")?,
        secret_paths: json_column(row, "secret_paths")?,
        source: column(row, "source")?,
        revision: column(row, "revision")?,
        imported_author: column(row, "imported_author")?,
        imported_ms: column(row, "imported_ms")?,
    })
}

pub fn served_of(row: &AnyRow) -> StoreResult<Served> {
    Ok(Served {
        config: column(row, "config")?,
        revision: column(row, "revision")?,
        release: column(row, "release")?,
        format: format_column(row)?,
        resolved: json_column(row, "resolved")?,
        content_hash: column(row, "content_hash")?,
        secret_paths: json_column(row, "secret_paths")?,
        created_ms: column(row, "created_ms")?,
        rollout: rollout_column(row)?,
    })
}

/// The `rollout` column as stored: the candidate side of a config under deployment.
#[derive(Debug, Serialize, Deserialize)]
struct RolloutRow {
    deployment: i64,
    share: u32,
    seed: String,
    release: i64,
    format: String,
    resolved: Value,
    content_hash: String,
    secret_paths: Vec<String>,
}

/// The `rollout` column's text for a served row (NULL without one).
pub fn rollout_text(rollout: Option<&Rollout>) -> Option<String> {
    rollout.map(|rollout| {
        json(&RolloutRow {
            deployment: rollout.deployment,
            share: rollout.share,
            seed: rollout.seed.clone(),
            release: rollout.release,
            format: rollout.format.name().to_owned(),
            resolved: rollout.resolved.clone(),
            content_hash: rollout.content_hash.clone(),
            secret_paths: rollout.secret_paths.clone(),
        })
    })
}

fn rollout_column(row: &AnyRow) -> StoreResult<Option<Box<Rollout>>> {
    let Some(text) = column::<Option<String>>(row, "rollout")? else {
        return Ok(None);
    };
    let stored: RolloutRow =
        serde_json::from_str(&text).map_err(|error| StoreError::Backend(format!("column rollout: {error}")))?;
    let format = Format::from_name(&stored.format)
        .ok_or_else(|| StoreError::Backend(format!("unknown format `{}`", stored.format)))?;
    Ok(Some(Box::new(Rollout {
        deployment: stored.deployment,
        share: stored.share,
        seed: stored.seed,
        release: stored.release,
        format,
        resolved: stored.resolved,
        content_hash: stored.content_hash,
        secret_paths: stored.secret_paths,
    })))
}

pub fn data_key_of(row: &AnyRow) -> StoreResult<StoredDataKey> {
    Ok(StoredDataKey {
        tenant: column(row, "tenant")?,
        id: column(row, "id")?,
        kek_id: column(row, "kek_id")?,
        ciphertext: column(row, "ciphertext")?,
        created_ms: column(row, "created_ms")?,
    })
}

pub async fn upsert_client(conn: &mut AnyConnection, fetch: &Fetch, at_ms: i64) -> StoreResult<()> {
    let env = &fetch.env;
    sqlx::query(
        "INSERT INTO config_clients (tenant, project, environment, config, service, instance, release, etag, \
         last_fetch_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant, project, environment, config, service, instance) \
         DO UPDATE SET release = excluded.release, etag = excluded.etag, last_fetch_ms = excluded.last_fetch_ms",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(&fetch.config)
    .bind(&fetch.service)
    .bind(&fetch.instance)
    .bind(fetch.release)
    .bind(&fetch.etag)
    .bind(at_ms)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

pub async fn add_fetches(conn: &mut AnyConnection, env: &EnvKey, config: &str, count: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO config_fetch_counts (tenant, project, environment, config, fetches) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, project, environment, config) \
         DO UPDATE SET fetches = config_fetch_counts.fetches + excluded.fetches",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(config)
    .bind(count)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Upserts client sightings, a transaction per batch of rows.
pub async fn record_sightings(pool: &sqlx::AnyPool, sightings: &[Sighting]) -> StoreResult<()> {
    for batch in sightings.chunks(500) {
        let mut tx = pool.begin().await.map_err(backend)?;
        for sighting in batch {
            let env = &sighting.env;
            sqlx::query(
                "INSERT INTO client_sightings (tenant, project, environment, config, client_id, seen_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant, project, environment, config, client_id) \
                 DO UPDATE SET seen_ms = excluded.seen_ms",
            )
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(&sighting.config)
            .bind(&sighting.client_id)
            .bind(sighting.seen_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
    }
    Ok(())
}

pub async fn sighted_clients(
    pool: &sqlx::AnyPool,
    env: &EnvKey,
    config: &str,
    since_ms: i64,
    limit: i64,
) -> StoreResult<Vec<String>> {
    sqlx::query_scalar(
        "SELECT client_id FROM client_sightings WHERE tenant = $1 AND project = $2 AND environment = $3 \
         AND config = $4 AND seen_ms >= $5 LIMIT $6",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(config)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(backend)
}
