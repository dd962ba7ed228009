//! [`SqlRepository`]: metrics, experiments, their history and the audit trail, with the same
//! SQL on PostgreSQL and SQLite.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool, Row, any::AnyRow};
use switchyard_platform::{
    audit::{self, AuditEntry},
    storage::{Backend, Database},
};

use super::{aggregation, backend, decode, encode, ingestion};
use crate::biz::{
    error::StoreError,
    ingest::{NewEvent, NewExposure},
    layers::{Holdout, Layer},
    model::{ExperimentDefinition, MetricDefinition, MetricKind, State, StoredExperiment, StoredMetric},
    repository::{Expected, ExperimentRepository, ExperimentVersion, PhaseMetric, RebuildRequest, WriteContext},
    sums::Sums,
};

/// The repository on a migrated pool.
#[derive(Debug, Clone)]
pub struct SqlRepository {
    pool: AnyPool,
    backend: Backend,
    partitions: std::sync::Arc<ingestion::DayPartitions>,
    statistics: std::sync::Arc<aggregation::PlannerStatistics>,
}

impl SqlRepository {
    pub fn new(database: &Database) -> Self {
        Self {
            pool: database.pool.clone(),
            backend: database.backend,
            partitions: Default::default(),
            statistics: Default::default(),
        }
    }
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The table a versioned resource lives in.
struct Table {
    name: &'static str,
    key_column: &'static str,
    /// The resource kind in names: `metrics`, `experiments`.
    collection: &'static str,
}

const METRICS: Table = Table {
    name: "metrics",
    key_column: "metric_key",
    collection: "metrics",
};

const EXPERIMENTS: Table = Table {
    name: "experiments",
    key_column: "experiment_key",
    collection: "experiments",
};

const LAYERS: Table = Table {
    name: "layers",
    key_column: "layer_key",
    collection: "layers",
};

const HOLDOUTS: Table = Table {
    name: "holdouts",
    key_column: "holdout_key",
    collection: "holdouts",
};

/// Creates a row of a create-only table (layers, holdouts), audited.
async fn create_once(
    repository: &SqlRepository,
    table: &Table,
    context: &WriteContext,
    key: &str,
    text: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut tx = super::begin_write(&repository.pool, repository.backend).await?;
    check_current(&mut tx, table, context, key, Expected::Absent).await?;
    upsert(&mut tx, table, context, key, None, text, None, now_ms).await?;
    tx.commit().await.map_err(backend)?;
    Ok(())
}

/// Every row of a create-only table in a project: (key, definition, created).
async fn all_of<T: serde::de::DeserializeOwned>(
    repository: &SqlRepository,
    table: &Table,
    tenant: &str,
    project: &str,
) -> Result<Vec<(String, T, i64)>, StoreError> {
    let sql = format!(
        "SELECT {key}, definition, created_ms FROM {name} WHERE tenant = $1 AND project = $2 ORDER BY {key}",
        key = table.key_column,
        name = table.name
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(project)
        .fetch_all(&repository.pool)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(backend)?,
                decode(&row.try_get::<String, _>(1).map_err(backend)?)?,
                row.try_get(2).map_err(backend)?,
            ))
        })
        .collect()
}

/// The current (definition, version) of a row, if any, checked against what the write expects.
async fn check_current(
    conn: &mut AnyConnection,
    table: &Table,
    context: &WriteContext,
    key: &str,
    expected: Expected,
) -> Result<Option<(String, i64)>, StoreError> {
    let sql = format!(
        "SELECT definition, version FROM {} WHERE tenant = $1 AND project = $2 AND {} = $3",
        table.name, table.key_column
    );
    let row = sqlx::query(&sql)
        .bind(&context.tenant)
        .bind(&context.project)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    let current: Option<(String, i64)> = row
        .map(|row| Ok::<_, StoreError>((row.try_get(0).map_err(backend)?, row.try_get(1).map_err(backend)?)))
        .transpose()?;
    let resource = format!("projects/{}/{}/{key}", context.project, table.collection);
    match (expected, &current) {
        (Expected::Absent, Some(_)) => Err(StoreError::Exists(resource)),
        (Expected::Version(_), None) => Err(StoreError::Missing(resource)),
        (Expected::Version(wanted), Some((_, version))) if wanted != *version => Err(StoreError::Stale(resource)),
        _ => Ok(current),
    }
}

/// Inserts or updates the row, appends the audit record, and returns the new version.
#[allow(clippy::too_many_arguments)]
async fn upsert(
    conn: &mut AnyConnection,
    table: &Table,
    context: &WriteContext,
    key: &str,
    before: Option<&(String, i64)>,
    text: &str,
    state: Option<&str>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let version = before.map_or(1, |(_, version)| version + 1);
    // `state` is a column of experiments only.
    let (state_set, state_column, state_value) = match state {
        Some(_) => (", state = $7", ", state", ", $7"),
        None => ("", "", ""),
    };
    // The update repeats the version it read: a writer that committed in between makes it
    // match nothing, and this one is told it is stale instead of overwriting.
    let sql = if before.is_some() {
        format!(
            "UPDATE {} SET definition = $4, version = $5, updated_ms = $6{state_set} \
             WHERE tenant = $1 AND project = $2 AND {} = $3 AND version = $5 - 1",
            table.name, table.key_column
        )
    } else {
        format!(
            "INSERT INTO {} (tenant, project, {}, definition, version, created_ms, updated_ms{state_column}) \
             VALUES ($1, $2, $3, $4, $5, $6, $6{state_value})",
            table.name, table.key_column
        )
    };
    let mut query = sqlx::query(&sql)
        .bind(&context.tenant)
        .bind(&context.project)
        .bind(key)
        .bind(text)
        .bind(version)
        .bind(now_ms);
    if let Some(state) = state {
        query = query.bind(state);
    }
    let written = query
        .execute(&mut *conn)
        .await
        .map_err(|error| conflict_or_backend(error, table, context, key))?;
    if written.rows_affected() == 0 {
        let resource = format!("projects/{}/{}/{key}", context.project, table.collection);
        return Err(StoreError::Stale(resource));
    }
    let entry = AuditEntry {
        tenant: context.tenant.clone(),
        actor: context.author.clone(),
        action: format!("{}.{}", table.collection, context.action),
        resource: format!("projects/{}/{}/{key}", context.project, table.collection),
        before_digest: before.map(|(text, _)| digest(text)),
        after_digest: Some(digest(text)),
        request_id: context.request_id.clone(),
    };
    audit::append(conn, &entry, now_ms).await.map_err(backend)?;
    Ok(version)
}

fn metric_of(row: &AnyRow) -> Result<StoredMetric, StoreError> {
    Ok(StoredMetric {
        key: row.try_get("metric_key").map_err(backend)?,
        definition: decode(&row.try_get::<String, _>("definition").map_err(backend)?)?,
        version: row.try_get("version").map_err(backend)?,
        created_ms: row.try_get("created_ms").map_err(backend)?,
        updated_ms: row.try_get("updated_ms").map_err(backend)?,
    })
}

fn experiment_of(row: &AnyRow) -> Result<StoredExperiment, StoreError> {
    Ok(StoredExperiment {
        key: row.try_get("experiment_key").map_err(backend)?,
        definition: decode(&row.try_get::<String, _>("definition").map_err(backend)?)?,
        version: row.try_get("version").map_err(backend)?,
        created_ms: row.try_get("created_ms").map_err(backend)?,
        updated_ms: row.try_get("updated_ms").map_err(backend)?,
    })
}

fn version_of(row: &AnyRow) -> Result<ExperimentVersion, StoreError> {
    Ok(ExperimentVersion {
        version: row.try_get("version").map_err(backend)?,
        action: row.try_get("action").map_err(backend)?,
        author: row.try_get("author").map_err(backend)?,
        message: row.try_get("message").map_err(backend)?,
        created_ms: row.try_get("created_ms").map_err(backend)?,
        definition: decode(&row.try_get::<String, _>("definition").map_err(backend)?)?,
    })
}

impl ExperimentRepository for SqlRepository {
    async fn write_metric(
        &self,
        context: &WriteContext,
        key: &str,
        expected: Expected,
        definition: &MetricDefinition,
        rebuild: &[RebuildRequest],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let text = encode(definition)?;
        let mut tx = super::begin_write(&self.pool, self.backend).await?;
        let before = check_current(&mut tx, &METRICS, context, key, expected).await?;
        let version = upsert(&mut tx, &METRICS, context, key, before.as_ref(), &text, None, now_ms).await?;
        for request in rebuild {
            aggregation::request_rebuild(
                &mut tx,
                &context.tenant,
                &context.project,
                &request.analysis,
                &request.metrics,
                now_ms,
            )
            .await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(version)
    }

    async fn rebuild_progress(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        aggregation::rebuild_progress(&self.pool, tenant, project, experiment).await
    }

    async fn metric(&self, tenant: &str, project: &str, key: &str) -> Result<Option<StoredMetric>, StoreError> {
        let row = sqlx::query(
            "SELECT metric_key, definition, version, created_ms, updated_ms FROM metrics \
             WHERE tenant = $1 AND project = $2 AND metric_key = $3",
        )
        .bind(tenant)
        .bind(project)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(metric_of).transpose()
    }

    async fn metrics(
        &self,
        tenant: &str,
        project: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredMetric>, StoreError> {
        let rows = sqlx::query(
            "SELECT metric_key, definition, version, created_ms, updated_ms FROM metrics \
             WHERE tenant = $1 AND project = $2 AND metric_key > $3 ORDER BY metric_key LIMIT $4",
        )
        .bind(tenant)
        .bind(project)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(metric_of).collect()
    }

    async fn write_experiment(
        &self,
        context: &WriteContext,
        key: &str,
        expected: Expected,
        definition: &ExperimentDefinition,
        rebuild: bool,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let text = encode(definition)?;
        let state = definition.lifecycle.state.as_str();
        let mut tx = super::begin_write(&self.pool, self.backend).await?;
        let before = check_current(&mut tx, &EXPERIMENTS, context, key, expected).await?;
        let version = upsert(
            &mut tx,
            &EXPERIMENTS,
            context,
            key,
            before.as_ref(),
            &text,
            Some(state),
            now_ms,
        )
        .await?;
        sqlx::query(
            "INSERT INTO experiment_versions (tenant, project, experiment_key, version, action, author, message, \
             definition, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&context.tenant)
        .bind(&context.project)
        .bind(key)
        .bind(version)
        .bind(context.action)
        .bind(&context.author)
        .bind(&context.message)
        .bind(&text)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if rebuild {
            aggregation::request_rebuild(&mut tx, &context.tenant, &context.project, key, &[], now_ms).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(version)
    }

    async fn experiment(&self, tenant: &str, project: &str, key: &str) -> Result<Option<StoredExperiment>, StoreError> {
        let row = sqlx::query(
            "SELECT experiment_key, definition, version, created_ms, updated_ms FROM experiments \
             WHERE tenant = $1 AND project = $2 AND experiment_key = $3",
        )
        .bind(tenant)
        .bind(project)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(experiment_of).transpose()
    }

    async fn experiments(
        &self,
        tenant: &str,
        project: &str,
        state: Option<State>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredExperiment>, StoreError> {
        let rows = sqlx::query(
            "SELECT experiment_key, definition, version, created_ms, updated_ms FROM experiments \
             WHERE tenant = $1 AND project = $2 AND ($3 = '' OR state = $3) AND experiment_key > $4 \
             ORDER BY experiment_key LIMIT $5",
        )
        .bind(tenant)
        .bind(project)
        .bind(state.map_or("", State::as_str))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(experiment_of).collect()
    }

    async fn create_layer(
        &self,
        context: &WriteContext,
        key: &str,
        layer: &Layer,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        create_once(self, &LAYERS, context, key, &encode(layer)?, now_ms).await
    }

    async fn layers(&self, tenant: &str, project: &str) -> Result<Vec<(String, Layer, i64)>, StoreError> {
        all_of(self, &LAYERS, tenant, project).await
    }

    async fn create_holdout(
        &self,
        context: &WriteContext,
        key: &str,
        holdout: &Holdout,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        create_once(self, &HOLDOUTS, context, key, &encode(holdout)?, now_ms).await
    }

    async fn holdouts(&self, tenant: &str, project: &str) -> Result<Vec<(String, Holdout, i64)>, StoreError> {
        all_of(self, &HOLDOUTS, tenant, project).await
    }

    async fn running_experiments(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, project, experiment_key FROM experiments WHERE state = $1 \
             ORDER BY tenant, project, experiment_key",
        )
        .bind(State::Running.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(backend)?,
                    row.try_get(1).map_err(backend)?,
                    row.try_get(2).map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn experiment_versions(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ExperimentVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, action, author, message, created_ms, definition FROM experiment_versions \
             WHERE tenant = $1 AND project = $2 AND experiment_key = $3 AND version < $4 \
             ORDER BY version DESC LIMIT $5",
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

    async fn event_names(&self, tenant: &str, project: &str) -> Result<HashSet<String>, StoreError> {
        let rows = sqlx::query("SELECT definition FROM metrics WHERE tenant = $1 AND project = $2")
            .bind(tenant)
            .bind(project)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut names = HashSet::new();
        for row in rows {
            let definition: MetricDefinition = decode(&row.try_get::<String, _>(0).map_err(backend)?)?;
            if definition.kind != MetricKind::Ratio {
                names.insert(definition.event);
            }
        }
        Ok(names)
    }

    async fn store_exposures(
        &self,
        tenant: &str,
        project: &str,
        exposures: &[NewExposure],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        ingestion::store_exposures(&self.pool, self.backend, tenant, project, exposures, now_ms).await
    }

    async fn store_events(
        &self,
        tenant: &str,
        project: &str,
        events: &[NewEvent],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        ingestion::store_events(
            &self.pool,
            self.backend,
            &self.partitions,
            tenant,
            project,
            events,
            now_ms,
        )
        .await
    }

    async fn forget_ids(&self, before_ms: i64) -> Result<u64, StoreError> {
        ingestion::forget_ids(&self.pool, before_ms).await
    }

    async fn exposure_counts(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
        phase: u32,
    ) -> Result<(Vec<(String, i64)>, i64), StoreError> {
        ingestion::exposure_counts(&self.pool, tenant, project, experiment, phase).await
    }

    async fn fold_pending(&self) -> Result<bool, StoreError> {
        // A chunk of a rebuild after each fold: neither starves the other.
        let folded = aggregation::fold_next(&self.pool, self.backend, &self.statistics).await?;
        let rebuilt = aggregation::rebuild_next(&self.pool, self.backend, &self.statistics).await?;
        Ok(folded || rebuilt)
    }

    async fn arm_statistics(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
        phase: u32,
    ) -> Result<Vec<(String, String, Sums)>, StoreError> {
        aggregation::arm_statistics(&self.pool, tenant, project, experiment, phase).await
    }

    async fn winsorized_statistics(
        &self,
        scope: &PhaseMetric<'_>,
        percentile: f64,
        cap_y: bool,
    ) -> Result<Vec<(String, Sums)>, StoreError> {
        aggregation::winsorized_statistics(&self.pool, scope, percentile, cap_y).await
    }

    async fn dimension_statistics(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
        phase: u32,
        dimension: &str,
    ) -> Result<Vec<(String, String, String, Sums)>, StoreError> {
        aggregation::dimension_statistics(&self.pool, tenant, project, experiment, phase, dimension).await
    }

    async fn unit_values_by_slice(
        &self,
        scope: &PhaseMetric<'_>,
        dimension: &str,
    ) -> Result<Vec<(String, String, f64, f64)>, StoreError> {
        aggregation::unit_values_by_slice(&self.pool, scope, dimension).await
    }

    async fn pending_batches(&self, tenant: &str, project: &str) -> Result<i64, StoreError> {
        aggregation::pending(&self.pool, tenant, project).await
    }
}

/// Two creators racing for one key both pass the read; the loser's insert fails on the
/// primary key, which is `Exists`, not a 500.
fn conflict_or_backend(error: sqlx::Error, table: &Table, context: &WriteContext, key: &str) -> StoreError {
    let unique = matches!(&error, sqlx::Error::Database(db) if db.is_unique_violation());
    if unique {
        return StoreError::Exists(format!("projects/{}/{}/{key}", context.project, table.collection));
    }
    backend(error)
}
