//! Folding acknowledged batches into the aggregates. Each fold takes the oldest pending
//! batches (up to [`BATCHES_PER_FOLD`]) in one transaction and deletes them there, so a crash
//! at any point folds every batch exactly once later.
//!
//! A unit whose membership is unchanged moves by what the batches' events alone add
//! ([`crate::biz::unit_values::raw_sums`]); a unit that is new to an experiment, saw another
//! arm, or turned out to have been exposed earlier is recounted from its raw events — leaving
//! out events of batches still pending, which add themselves when folded. Folds are serialised
//! (on PostgreSQL by an advisory lock, on SQLite by the write lock), which that rule needs.

mod fold;
mod rebuild;
mod rows;
mod slices;
mod winsorized;

use std::{
    collections::{BTreeSet, HashMap},
    sync::atomic::{AtomicUsize, Ordering},
};

use sqlx::{AnyPool, Row};
use switchyard_platform::storage::Backend;

use super::{backend, decode};
use crate::biz::{error::StoreError, unit_values::UnitEvent};
pub use rebuild::{rebuild_next, rebuild_progress, request_rebuild};
pub use rows::{arm_statistics, pending};
pub use slices::{dimension_statistics, unit_values_by_slice};
pub use winsorized::winsorized_statistics;

/// Pending batches folded together: fewer, larger writes when the aggregator is behind.
const BATCHES_PER_FOLD: i64 = 32;

/// One tenant's project's share of the batches being folded.
#[derive(Debug, Default)]
struct Folding {
    /// Units the batches exposed: their memberships are checked.
    exposed: BTreeSet<String>,
    /// The batches' new metric events, per unit.
    events: HashMap<String, Vec<UnitEvent>>,
    /// Units to recount from raw events whatever their rows say (a rebuild).
    recount: BTreeSet<String>,
}

/// Serialises folds across replicas (on SQLite the write transaction already does).
async fn lock_folds(conn: &mut sqlx::AnyConnection, database: Backend) -> Result<(), StoreError> {
    if database == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7321, 1)")
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Keeps PostgreSQL's planner statistics of the per-unit tables current while they grow fast.
/// Before autovacuum first analyses them, the planner takes `experiment_units` and
/// `unit_contributions` for nearly empty and reads every row of a project to find 500 units;
/// so the aggregator analyses them itself whenever it has written a quarter more rows (at
/// least 5,000) since it last did.
#[derive(Debug, Default)]
pub struct PlannerStatistics {
    written: AtomicUsize,
    analysed_at: AtomicUsize,
}

impl PlannerStatistics {
    pub(super) async fn record(&self, pool: &AnyPool, rows: usize) -> Result<(), StoreError> {
        let written = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        let analysed_at = self.analysed_at.load(Ordering::Relaxed);
        if written - analysed_at < (analysed_at / 4).max(5_000) {
            return Ok(());
        }
        self.analysed_at.store(written, Ordering::Relaxed);
        sqlx::query("ANALYZE experiment_units, unit_contributions")
            .execute(pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// Folds the oldest pending batches; false when there were none.
pub async fn fold_next(pool: &AnyPool, database: Backend, statistics: &PlannerStatistics) -> Result<bool, StoreError> {
    let mut tx = super::begin_write(pool, database).await?;
    lock_folds(&mut tx, database).await?;
    let rows = sqlx::query("SELECT id, tenant, project, units, events FROM pending_batches ORDER BY id LIMIT $1")
        .bind(BATCHES_PER_FOLD)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
    if rows.is_empty() {
        return Ok(false);
    }
    let mut projects: HashMap<(String, String), Folding> = HashMap::new();
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.try_get::<i64, _>("id").map_err(backend)?);
        let key = (
            row.try_get("tenant").map_err(backend)?,
            row.try_get("project").map_err(backend)?,
        );
        let folding = projects.entry(key).or_default();
        let units: Vec<String> = decode(&row.try_get::<String, _>("units").map_err(backend)?)?;
        folding.exposed.extend(units);
        let events: Vec<(String, String, f64, i64)> = decode(&row.try_get::<String, _>("events").map_err(backend)?)?;
        for (unit, name, value, occurred_ms) in events {
            folding.events.entry(unit).or_default().push(UnitEvent {
                name,
                value,
                occurred_ms,
            });
        }
    }
    // Deleted first, so a recount below sees only the batches still pending as pending.
    let list = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("DELETE FROM pending_batches WHERE id IN ({list})");
    let mut delete = sqlx::query(&sql);
    for id in &ids {
        delete = delete.bind(id);
    }
    delete.execute(&mut *tx).await.map_err(backend)?;
    let mut written = 0;
    for ((tenant, project), folding) in &projects {
        written += fold::fold(&mut tx, tenant, project, folding).await?;
    }
    tx.commit().await.map_err(backend)?;
    if database == Backend::Postgres {
        statistics.record(pool, written).await?;
    }
    Ok(true)
}
