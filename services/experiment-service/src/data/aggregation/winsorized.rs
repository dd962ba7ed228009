//! Percentile capping (winsorization), which no running sum can keep: the cap depends on every
//! unit's value. It is computed at results time from the per-unit rows of the one metric (never
//! from raw events): the cap is the value at rank ⌊p·(n−1)⌋ of the sorted values, then each arm's
//! sums are taken over the capped values, in the database.

use sqlx::{AnyPool, Row};

use super::rows::sums_of;

use crate::{
    biz::{error::StoreError, repository::PhaseMetric, sums::Sums},
    data::backend,
};

const WHERE: &str = "tenant = $1 AND project = $2 AND experiment_key = $3 AND phase = $4 AND metric_key = $5";

/// The value at rank ⌊p·(n−1)⌋ of `column`, if any unit has one.
async fn cap_of(
    pool: &AnyPool,
    scope: &PhaseMetric<'_>,
    column: &str,
    percentile: f64,
) -> Result<Option<f64>, StoreError> {
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM unit_contributions WHERE {WHERE}"))
        .bind(scope.tenant)
        .bind(scope.project)
        .bind(scope.experiment)
        .bind(i64::from(scope.phase))
        .bind(scope.metric)
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    if count == 0 {
        return Ok(None);
    }
    let rank = (percentile * (count - 1) as f64).floor() as i64;
    let sql = format!("SELECT {column} FROM unit_contributions WHERE {WHERE} ORDER BY {column} LIMIT 1 OFFSET $6");
    sqlx::query_scalar(&sql)
        .bind(scope.tenant)
        .bind(scope.project)
        .bind(scope.experiment)
        .bind(i64::from(scope.phase))
        .bind(scope.metric)
        .bind(rank)
        .fetch_optional(pool)
        .await
        .map_err(backend)
}

pub async fn winsorized_statistics(
    pool: &AnyPool,
    scope: &PhaseMetric<'_>,
    percentile: f64,
    cap_y: bool,
) -> Result<Vec<(String, Sums)>, StoreError> {
    let Some(cap_x) = cap_of(pool, scope, "x", percentile).await? else {
        return Ok(Vec::new());
    };
    let cap_y = if cap_y {
        cap_of(pool, scope, "y", percentile).await?
    } else {
        None
    };
    let capped = |column: &str, slot: usize| format!("(CASE WHEN {column} > ${slot} THEN ${slot} ELSE {column} END)");
    let x = capped("x", 6);
    let y = if cap_y.is_some() {
        capped("y", 7)
    } else {
        "y".to_owned()
    };
    let sql = format!(
        "SELECT variant, COUNT(*) AS n, SUM({x}) AS sum_x, SUM({x} * {x}) AS sum_x2, SUM({y}) AS sum_y, \
         SUM({y} * {y}) AS sum_y2, SUM({x} * {y}) AS sum_xy FROM unit_contributions WHERE {WHERE} GROUP BY variant"
    );
    let mut query = sqlx::query(&sql)
        .bind(scope.tenant)
        .bind(scope.project)
        .bind(scope.experiment)
        .bind(i64::from(scope.phase))
        .bind(scope.metric)
        .bind(cap_x);
    if let Some(cap) = cap_y {
        query = query.bind(cap);
    }
    let rows = query.fetch_all(pool).await.map_err(backend)?;
    rows.iter()
        .map(|row| Ok((row.try_get("variant").map_err(backend)?, sums_of(row)?)))
        .collect()
}
