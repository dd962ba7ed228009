//! Storing exposures and metric events: ids first (`INSERT … ON CONFLICT DO NOTHING
//! RETURNING` tells which are new), then the new rows in multi-row inserts, all in one
//! transaction, so an acknowledged batch is durable and a replayed one adds nothing.

use std::collections::{BTreeMap, HashSet};

use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_platform::storage::Backend;

use super::{backend, encode};

use crate::biz::{
    error::StoreError,
    ingest::{NewEvent, NewExposure},
};

/// Rows per INSERT statement: well under either backend's bound-parameter limit.
pub(super) const ROWS_PER_STATEMENT: usize = 500;
const DAY_MS: i64 = 86_400_000;

/// `($1, $2, …), ($n+1, …)` for `rows` rows of `columns` columns.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(row * columns + column + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// An id's key in `ingested_ids`: tenant, kind and id joined by U+001F (see migration 0012).
fn id_key(tenant: &str, kind: &str, id: &str) -> String {
    format!("{tenant}\u{1f}{kind}\u{1f}{id}")
}

/// Records the ids; per id, whether it is the first of its id in the batch and new to the store.
async fn claim_ids(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: &str,
    ids: &[&str],
    now_ms: i64,
) -> Result<Vec<bool>, StoreError> {
    let keys: Vec<String> = ids.iter().map(|id| id_key(tenant, kind, id)).collect();
    let mut new = HashSet::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO ingested_ids (id_key, received_ms) VALUES {} ON CONFLICT DO NOTHING RETURNING id_key",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(key).bind(now_ms);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(backend)? {
            new.insert(row.try_get::<String, _>(0).map_err(backend)?);
        }
    }
    // A key stays in `new` only for its first occurrence in the batch.
    Ok(keys.into_iter().map(|key| new.remove(&key)).collect())
}

/// Forgets the ids received before `before_ms`, a bounded number per statement so no
/// transaction holds many rows; returns how many it forgot.
pub async fn forget_ids(pool: &AnyPool, before_ms: i64) -> Result<u64, StoreError> {
    const PER_STATEMENT: i64 = 10_000;
    let mut forgotten = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM ingested_ids WHERE id_key IN \
             (SELECT id_key FROM ingested_ids WHERE received_ms < $1 LIMIT $2)",
        )
        .bind(before_ms)
        .bind(PER_STATEMENT)
        .execute(pool)
        .await
        .map_err(backend)?
        .rows_affected();
        forgotten += deleted;
        if deleted < PER_STATEMENT.unsigned_abs() {
            return Ok(forgotten);
        }
    }
}

pub async fn store_exposures(
    pool: &AnyPool,
    database: Backend,
    tenant: &str,
    project: &str,
    exposures: &[NewExposure],
    now_ms: i64,
) -> Result<Vec<bool>, StoreError> {
    if exposures.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = super::begin_write(pool, database).await?;
    let ids: Vec<&str> = exposures.iter().map(|exposure| exposure.id.as_str()).collect();
    let stored = claim_ids(&mut tx, tenant, "exposure", &ids, now_ms).await?;
    let fresh: Vec<&NewExposure> = exposures
        .iter()
        .zip(&stored)
        .filter(|(_, new)| **new)
        .map(|(e, _)| e)
        .collect();
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO exposures (tenant, project, experiment_key, phase, unit, variant, environment, exposed_ms, \
             attributes, event_id) VALUES {}",
            placeholders(chunk.len(), 10)
        );
        let mut query = sqlx::query(&sql);
        for exposure in chunk {
            query = query
                .bind(tenant)
                .bind(project)
                .bind(&exposure.experiment)
                .bind(i64::from(exposure.phase))
                .bind(&exposure.unit)
                .bind(&exposure.variant)
                .bind(&exposure.environment)
                .bind(exposure.exposed_ms)
                .bind(&exposure.attributes)
                .bind(&exposure.id);
        }
        query.execute(&mut *tx).await.map_err(backend)?;
    }
    upsert_units(&mut tx, tenant, project, &fresh).await?;
    if !fresh.is_empty() {
        let units = fresh.iter().map(|exposure| exposure.unit.as_str());
        enqueue(&mut tx, tenant, project, units, &[], now_ms).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(stored)
}

/// A unit's first exposure in a phase as this batch has it.
struct UnitExposure<'a> {
    variant: &'a str,
    first_ms: i64,
    multiple: bool,
    attributes: &'a str,
}

/// Merges the batch per unit first (one statement may not touch a row twice), then upserts:
/// the earliest exposure's arm and attributes win, and a second arm marks the unit.
async fn upsert_units(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    exposures: &[&NewExposure],
) -> Result<(), StoreError> {
    let mut units: BTreeMap<(&str, u32, &str), UnitExposure> = BTreeMap::new();
    for exposure in exposures {
        let key = (exposure.experiment.as_str(), exposure.phase, exposure.unit.as_str());
        let entry = units.entry(key).or_insert(UnitExposure {
            variant: &exposure.variant,
            first_ms: exposure.exposed_ms,
            multiple: false,
            attributes: &exposure.attributes,
        });
        entry.multiple |= entry.variant != exposure.variant;
        if exposure.exposed_ms < entry.first_ms {
            entry.first_ms = exposure.exposed_ms;
            entry.variant = &exposure.variant;
            entry.attributes = &exposure.attributes;
        }
    }
    let units: Vec<_> = units.into_iter().collect();
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO experiment_units AS u (tenant, project, experiment_key, phase, unit, variant, \
             first_exposed_ms, multiple, attributes) VALUES {} \
             ON CONFLICT (tenant, project, experiment_key, phase, unit) DO UPDATE SET \
             multiple = CASE WHEN u.multiple = 1 OR excluded.multiple = 1 OR u.variant <> excluded.variant \
                        THEN 1 ELSE 0 END, \
             variant = CASE WHEN excluded.first_exposed_ms < u.first_exposed_ms THEN excluded.variant ELSE u.variant END, \
             attributes = CASE WHEN excluded.first_exposed_ms < u.first_exposed_ms THEN excluded.attributes \
                          ELSE u.attributes END, \
             first_exposed_ms = CASE WHEN excluded.first_exposed_ms < u.first_exposed_ms \
                                THEN excluded.first_exposed_ms ELSE u.first_exposed_ms END",
            placeholders(chunk.len(), 9)
        );
        let mut query = sqlx::query(&sql);
        for ((experiment, phase, unit), exposure) in chunk {
            query = query
                .bind(tenant)
                .bind(project)
                .bind(*experiment)
                .bind(i64::from(*phase))
                .bind(*unit)
                .bind(exposure.variant)
                .bind(exposure.first_ms)
                .bind(i32::from(exposure.multiple))
                .bind(exposure.attributes);
        }
        query.execute(&mut *conn).await.map_err(backend)?;
    }
    Ok(())
}

/// The days whose `metric_events` partition this process knows to exist.
#[derive(Debug, Default)]
pub struct DayPartitions {
    known: tokio::sync::Mutex<HashSet<i64>>,
}

impl DayPartitions {
    /// Makes sure each day has its partition before a batch writes into it. Creation runs in its
    /// own transaction under an advisory lock, so replicas and concurrent batches never race on
    /// the catalog (`CREATE TABLE IF NOT EXISTS` alone is not safe against that).
    async fn ensure(&self, pool: &AnyPool, days: impl Iterator<Item = i64>) -> Result<(), StoreError> {
        let mut known = self.known.lock().await;
        for day in days {
            if known.contains(&day) {
                continue;
            }
            let mut tx = pool.begin().await.map_err(backend)?;
            sqlx::query("SELECT pg_advisory_xact_lock(7321, 0)")
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            ensure_day_partition(&mut tx, day).await?;
            tx.commit().await.map_err(backend)?;
            known.insert(day);
        }
        Ok(())
    }
}

pub async fn store_events(
    pool: &AnyPool,
    database: Backend,
    partitions: &DayPartitions,
    tenant: &str,
    project: &str,
    events: &[NewEvent],
    now_ms: i64,
) -> Result<Vec<bool>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if database == Backend::Postgres {
        let days: HashSet<i64> = events
            .iter()
            .map(|event| event.occurred_ms.div_euclid(DAY_MS))
            .collect();
        partitions.ensure(pool, days.into_iter()).await?;
    }
    let mut tx = super::begin_write(pool, database).await?;
    let ids: Vec<&str> = events.iter().map(|event| event.id.as_str()).collect();
    let stored = claim_ids(&mut tx, tenant, "event", &ids, now_ms).await?;
    let fresh: Vec<&NewEvent> = events
        .iter()
        .zip(&stored)
        .filter(|(_, new)| **new)
        .map(|(e, _)| e)
        .collect();
    if fresh.is_empty() {
        tx.commit().await.map_err(backend)?;
        return Ok(stored);
    }
    let batch = enqueue(&mut tx, tenant, project, std::iter::empty(), &fresh, now_ms).await?;
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO metric_events (tenant, project, event_name, unit, value, occurred_ms, day, environment, \
             event_id, batch_id) VALUES {}",
            placeholders(chunk.len(), 10)
        );
        let mut query = sqlx::query(&sql);
        for event in chunk {
            query = query
                .bind(tenant)
                .bind(project)
                .bind(&event.name)
                .bind(&event.unit)
                .bind(event.value)
                .bind(event.occurred_ms)
                .bind(event.occurred_ms.div_euclid(DAY_MS))
                .bind(&event.environment)
                .bind(&event.id)
                .bind(batch);
        }
        query.execute(&mut *tx).await.map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(stored)
}

/// Leaves the batch for the aggregator, in the batch's own transaction; returns its id.
async fn enqueue<'a>(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: impl Iterator<Item = &'a str>,
    events: &[&NewEvent],
    now_ms: i64,
) -> Result<i64, StoreError> {
    let units: std::collections::BTreeSet<&str> = units.collect();
    let events: Vec<(&str, &str, f64, i64)> = events
        .iter()
        .map(|event| (event.unit.as_str(), event.name.as_str(), event.value, event.occurred_ms))
        .collect();
    let units = encode(&units)?;
    let events = encode(&events)?;
    sqlx::query_scalar(
        "INSERT INTO pending_batches (tenant, project, units, events, created_ms) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(tenant)
    .bind(project)
    .bind(units)
    .bind(events)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)
}

/// Creates the day's partition of `metric_events` when missing; the name is built from an
/// integer only.
async fn ensure_day_partition(conn: &mut AnyConnection, day: i64) -> Result<(), StoreError> {
    let suffix = if day < 0 { format!("m{}", -day) } else { day.to_string() };
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS metric_events_d{suffix} PARTITION OF metric_events \
         FOR VALUES FROM ({day}) TO ({})",
        day + 1
    );
    sqlx::query(&sql).execute(&mut *conn).await.map_err(backend)?;
    Ok(())
}

pub async fn exposure_counts(
    pool: &AnyPool,
    tenant: &str,
    project: &str,
    experiment: &str,
    phase: u32,
) -> Result<(Vec<(String, i64)>, i64), StoreError> {
    let rows = sqlx::query(
        "SELECT variant, CAST(multiple AS BIGINT) AS multiple, COUNT(*) AS units FROM experiment_units \
         WHERE tenant = $1 AND project = $2 AND experiment_key = $3 AND phase = $4 \
         GROUP BY variant, multiple ORDER BY variant",
    )
    .bind(tenant)
    .bind(project)
    .bind(experiment)
    .bind(i64::from(phase))
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    let mut arms = Vec::new();
    let mut multiple = 0;
    for row in rows {
        let variant: String = row.try_get("variant").map_err(backend)?;
        let flagged: i64 = row.try_get("multiple").map_err(backend)?;
        let units: i64 = row.try_get("units").map_err(backend)?;
        if flagged == 1 {
            multiple += units;
        } else {
            arms.push((variant, units));
        }
    }
    Ok((arms, multiple))
}
