//! Rebuilds: requested beside a metric's write, worked through by the aggregator a chunk of
//! units at a time (each recounted from raw events in one transaction, under the same lock as
//! every fold), so a crash resumes at the chunk it was in.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_platform::storage::Backend;

use super::{Folding, PlannerStatistics, fold, lock_folds, rows::Only};
use crate::{
    biz::error::StoreError,
    data::{backend, begin_write, decode, encode},
};

/// Units recounted per transaction.
const UNITS_PER_CHUNK: i64 = 2_000;

/// Asks for the experiment's sums of `metrics` (every metric when empty) to be recounted —
/// again from the first unit if one runs, then of every metric unless both ask for the same.
pub async fn request_rebuild(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    experiment: &str,
    metrics: &[String],
    now_ms: i64,
) -> Result<(), StoreError> {
    let metrics = if metrics.is_empty() {
        String::new()
    } else {
        encode(&metrics.iter().collect::<BTreeSet<_>>())?
    };
    sqlx::query(
        "INSERT INTO rebuilds (tenant, project, experiment_key, next_unit, done, total, requested_ms, metrics) \
         SELECT $1, $2, $3, '', 0, COUNT(DISTINCT unit), $4, $5 FROM experiment_units \
         WHERE tenant = $1 AND project = $2 AND experiment_key = $3 \
         ON CONFLICT (tenant, project, experiment_key) DO UPDATE SET next_unit = '', done = 0, \
         total = excluded.total, requested_ms = excluded.requested_ms, \
         metrics = CASE WHEN rebuilds.metrics = excluded.metrics THEN excluded.metrics ELSE '' END",
    )
    .bind(tenant)
    .bind(project)
    .bind(experiment)
    .bind(now_ms)
    .bind(metrics)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// (units done, units in all) of the experiment's running rebuild.
pub async fn rebuild_progress(
    pool: &AnyPool,
    tenant: &str,
    project: &str,
    experiment: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    let row =
        sqlx::query("SELECT done, total FROM rebuilds WHERE tenant = $1 AND project = $2 AND experiment_key = $3")
            .bind(tenant)
            .bind(project)
            .bind(experiment)
            .fetch_optional(pool)
            .await
            .map_err(backend)?;
    row.map(|row| Ok((row.try_get(0).map_err(backend)?, row.try_get(1).map_err(backend)?)))
        .transpose()
}

/// Recounts the next chunk of the oldest rebuild; false when none runs.
pub async fn rebuild_next(
    pool: &AnyPool,
    database: Backend,
    statistics: &PlannerStatistics,
) -> Result<bool, StoreError> {
    // Checked first without the write lock: this runs after every fold, and there is seldom
    // a rebuild.
    let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM rebuilds LIMIT 1")
        .fetch_optional(pool)
        .await
        .map_err(backend)?;
    if any.is_none() {
        return Ok(false);
    }
    let mut tx = begin_write(pool, database).await?;
    lock_folds(&mut tx, database).await?;
    let row = sqlx::query(
        "SELECT tenant, project, experiment_key, next_unit, metrics FROM rebuilds ORDER BY requested_ms LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else { return Ok(false) };
    let tenant: String = row.try_get(0).map_err(backend)?;
    let project: String = row.try_get(1).map_err(backend)?;
    let experiment: String = row.try_get(2).map_err(backend)?;
    let next: String = row.try_get(3).map_err(backend)?;
    let metrics: String = row.try_get(4).map_err(backend)?;
    let units: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT unit FROM experiment_units WHERE tenant = $1 AND project = $2 AND experiment_key = $3 \
         AND unit > $4 ORDER BY unit LIMIT $5",
    )
    .bind(&tenant)
    .bind(&project)
    .bind(&experiment)
    .bind(&next)
    .bind(UNITS_PER_CHUNK)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    let written = if metrics.is_empty() {
        let folding = Folding {
            recount: units.iter().cloned().collect::<BTreeSet<_>>(),
            ..Folding::default()
        };
        fold::fold(&mut tx, &tenant, &project, &folding).await?
    } else {
        let only = Only {
            experiment: experiment.clone(),
            metrics: decode(&metrics)?,
        };
        fold::recount_only(&mut tx, &tenant, &project, &units, &only).await?
    };
    let finished = (units.len() as i64) < UNITS_PER_CHUNK;
    let query = if finished {
        sqlx::query("DELETE FROM rebuilds WHERE tenant = $1 AND project = $2 AND experiment_key = $3")
    } else {
        sqlx::query(
            "UPDATE rebuilds SET next_unit = $4, done = done + $5 \
             WHERE tenant = $1 AND project = $2 AND experiment_key = $3",
        )
    };
    let mut query = query.bind(&tenant).bind(&project).bind(&experiment);
    if !finished {
        query = query
            .bind(units.last().cloned().unwrap_or_default())
            .bind(units.len() as i64);
    }
    query.execute(&mut *tx).await.map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    if database == Backend::Postgres {
        statistics.record(pool, written).await?;
    }
    Ok(true)
}
