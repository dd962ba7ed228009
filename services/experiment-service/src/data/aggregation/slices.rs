//! The per-slice statistics of dimension breakdowns: moved with the arm statistics in every
//! fold (a kept row counts in each slice of its segment), read for results.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AnyPool, Row};

use super::{
    super::{
        backend, decode,
        ingestion::{ROWS_PER_STATEMENT, placeholders},
    },
    rows::{ADD_SUMS, Delta, Kept, RowKey, sums_of},
};
use crate::biz::{dimensions::Segment, error::StoreError, repository::PhaseMetric, sums::Sums};

/// (experiment, phase, dimension, slice, metric, arm): one row of the slice statistics.
type SliceKey = (String, u32, String, String, String, String);

pub type SliceDeltas = BTreeMap<SliceKey, Delta>;

/// Counts `kept` (with `sign`) in each slice of its segment.
pub fn record(deltas: &mut SliceDeltas, key: &RowKey, kept: &Kept, sign: f64) {
    let (experiment, phase, metric, _) = key;
    for (dimension, slice) in &kept.segment {
        deltas
            .entry((
                experiment.clone(),
                *phase,
                dimension.clone(),
                slice.clone(),
                metric.clone(),
                kept.variant.clone(),
            ))
            .or_default()
            .add(kept.value, sign);
    }
}

pub async fn apply(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    deltas: SliceDeltas,
) -> Result<(), StoreError> {
    let deltas: Vec<_> = deltas.into_iter().collect();
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO dimension_statistics AS s (tenant, project, experiment_key, phase, dimension, slice, \
             metric_key, variant, n, sum_x, sum_x2, sum_y, sum_y2, sum_xy) VALUES {} \
             ON CONFLICT (tenant, project, experiment_key, phase, dimension, slice, metric_key, variant) \
             DO UPDATE SET {ADD_SUMS}",
            placeholders(chunk.len(), 14)
        );
        let mut query = sqlx::query(&sql);
        for ((experiment, phase, dimension, slice, metric, variant), delta) in chunk {
            query = query
                .bind(tenant)
                .bind(project)
                .bind(experiment)
                .bind(i64::from(*phase))
                .bind(dimension)
                .bind(slice)
                .bind(metric)
                .bind(variant);
            query = delta.bind_to(query);
        }
        query.execute(&mut *conn).await.map_err(backend)?;
    }
    Ok(())
}

/// The (dimension, slice) pairs an experiment phase already keeps, whichever rows hold them
/// (units seen in several arms too), so a kept value stays kept.
pub async fn kept_slices(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    experiment: &str,
    phase: u32,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT dimension, slice FROM dimension_statistics WHERE tenant = $1 AND project = $2 \
         AND experiment_key = $3 AND phase = $4",
    )
    .bind(tenant)
    .bind(project)
    .bind(experiment)
    .bind(i64::from(phase))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| Ok((row.try_get(0).map_err(backend)?, row.try_get(1).map_err(backend)?)))
        .collect()
}

/// The kept sums of one dimension of an experiment phase: (slice, metric, arm, sums).
pub async fn dimension_statistics(
    pool: &AnyPool,
    tenant: &str,
    project: &str,
    experiment: &str,
    phase: u32,
    dimension: &str,
) -> Result<Vec<(String, String, String, Sums)>, StoreError> {
    let rows = sqlx::query(
        "SELECT slice, metric_key, variant, n, sum_x, sum_x2, sum_y, sum_y2, sum_xy FROM dimension_statistics \
         WHERE tenant = $1 AND project = $2 AND experiment_key = $3 AND phase = $4 AND dimension = $5 AND n > 0",
    )
    .bind(tenant)
    .bind(project)
    .bind(experiment)
    .bind(i64::from(phase))
    .bind(dimension)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| {
            let sums = sums_of(row)?;
            Ok((
                row.try_get("slice").map_err(backend)?,
                row.try_get("metric_key").map_err(backend)?,
                row.try_get("variant").map_err(backend)?,
                sums,
            ))
        })
        .collect()
}

/// Every unit's (slice in `dimension`, arm, x, y) for one metric: what a percentile cap is
/// taken over when results are broken down (the running sums cannot hold a cap).
pub async fn unit_values_by_slice(
    pool: &AnyPool,
    scope: &PhaseMetric<'_>,
    dimension: &str,
) -> Result<Vec<(String, String, f64, f64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT segment, variant, x, y FROM unit_contributions WHERE tenant = $1 AND project = $2 \
         AND experiment_key = $3 AND phase = $4 AND metric_key = $5",
    )
    .bind(scope.tenant)
    .bind(scope.project)
    .bind(scope.experiment)
    .bind(i64::from(scope.phase))
    .bind(scope.metric)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let segment: Segment = decode(&row.try_get::<String, _>("segment").map_err(backend)?)?;
        let Some((_, slice)) = segment.into_iter().find(|(name, _)| name == dimension) else {
            continue;
        };
        out.push((
            slice,
            row.try_get("variant").map_err(backend)?,
            row.try_get("x").map_err(backend)?,
            row.try_get("y").map_err(backend)?,
        ));
    }
    Ok(out)
}
