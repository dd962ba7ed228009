//! The aggregator's reads and writes: memberships, the kept per-unit rows, settled raw events,
//! and the arm statistics the rows sum to.

use std::collections::{BTreeMap, HashMap};

use sqlx::{
    Any, AnyConnection, AnyPool, Row,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use super::{
    super::{
        backend, decode, encode,
        ingestion::{ROWS_PER_STATEMENT, placeholders},
    },
    slices::{self, SliceDeltas},
};
use crate::biz::{
    dimensions::Segment,
    error::StoreError,
    holdout_comparison,
    layers::Holdout,
    model::{ExperimentDefinition, MetricDefinition, MetricKind},
    sums::Sums,
    unit_values::{Contribution, MetricPlan, UnitEvent},
};

/// A unit's place in one experiment phase.
pub struct Membership {
    pub experiment: String,
    pub phase: u32,
    pub unit: String,
    pub variant: String,
    pub first_exposed_ms: i64,
    pub multiple: bool,
    /// The attributes of its first exposure.
    pub attributes: BTreeMap<String, String>,
}

/// (experiment, phase, metric, unit): one kept row.
pub type RowKey = (String, u32, String, String);

/// What a unit contributes to one metric of one experiment phase, in which arm, computed for
/// which first exposure.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub variant: String,
    pub value: Contribution,
    pub raw: Contribution,
    pub exposed_ms: i64,
    /// The unit's slices in the experiment's dimensions.
    pub segment: Segment,
}

/// (experiment, phase, metric, arm): one row of the arm statistics.
type ArmKey = (String, u32, String, String);

/// The `ON CONFLICT … DO UPDATE SET` of a statistics table aliased `s`: the new row's sums
/// are added to the kept ones.
pub(super) const ADD_SUMS: &str = "n = s.n + excluded.n, sum_x = s.sum_x + excluded.sum_x, \
     sum_x2 = s.sum_x2 + excluded.sum_x2, sum_y = s.sum_y + excluded.sum_y, \
     sum_y2 = s.sum_y2 + excluded.sum_y2, sum_xy = s.sum_xy + excluded.sum_xy";

/// Sums to add to one arm's (or slice's) statistics.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Delta {
    pub(super) n: i64,
    pub(super) sum_x: f64,
    pub(super) sum_x2: f64,
    pub(super) sum_y: f64,
    pub(super) sum_y2: f64,
    pub(super) sum_xy: f64,
}

impl Delta {
    /// Binds n, Σx, Σx², Σy, Σy², Σxy, in that order.
    pub(super) fn bind_to<'q>(&self, query: Query<'q, Any, AnyArguments<'q>>) -> Query<'q, Any, AnyArguments<'q>> {
        query
            .bind(self.n)
            .bind(self.sum_x)
            .bind(self.sum_x2)
            .bind(self.sum_y)
            .bind(self.sum_y2)
            .bind(self.sum_xy)
    }

    pub(super) fn add(&mut self, c: Contribution, sign: f64) {
        self.n += sign as i64;
        self.sum_x += sign * c.x;
        self.sum_x2 += sign * c.x * c.x;
        self.sum_y += sign * c.y;
        self.sum_y2 += sign * c.y * c.y;
        self.sum_xy += sign * c.x * c.y;
    }
}

/// Moves the arm statistics and the kept rows from `before` to `after`; returns how many kept
/// rows changed.
pub async fn apply(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    before: &BTreeMap<RowKey, Kept>,
    after: &BTreeMap<RowKey, Kept>,
) -> Result<usize, StoreError> {
    let mut deltas: BTreeMap<ArmKey, Delta> = BTreeMap::new();
    let mut slice_deltas = SliceDeltas::new();
    for (key, old) in before {
        if after.get(key) == Some(old) {
            continue;
        }
        let (experiment, phase, metric, _) = key;
        deltas
            .entry((experiment.clone(), *phase, metric.clone(), old.variant.clone()))
            .or_default()
            .add(old.value, -1.0);
        slices::record(&mut slice_deltas, key, old, -1.0);
        if !after.contains_key(key) {
            delete_row(conn, tenant, project, key).await?;
        }
    }
    let (mut moved, mut added) = (Vec::new(), Vec::new());
    for (key, new) in after {
        let old = before.get(key);
        if old == Some(new) {
            continue;
        }
        let (experiment, phase, metric, _) = key;
        deltas
            .entry((experiment.clone(), *phase, metric.clone(), new.variant.clone()))
            .or_default()
            .add(new.value, 1.0);
        slices::record(&mut slice_deltas, key, new, 1.0);
        if old.is_some() {
            moved.push((key, new))
        } else {
            added.push((key, new))
        }
    }
    for chunk in moved.chunks(ROWS_PER_STATEMENT) {
        write_rows(conn, tenant, project, chunk, UPDATE_ROWS).await?;
    }
    for chunk in added.chunks(ROWS_PER_STATEMENT) {
        write_rows(conn, tenant, project, chunk, UPSERT_ROWS).await?;
    }
    let deltas: Vec<_> = deltas.into_iter().collect();
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        add_to_arms(conn, tenant, project, chunk).await?;
    }
    slices::apply(conn, tenant, project, slice_deltas).await?;
    Ok(moved.len() + added.len())
}

async fn delete_row(conn: &mut AnyConnection, tenant: &str, project: &str, key: &RowKey) -> Result<(), StoreError> {
    let (experiment, phase, metric, unit) = key;
    sqlx::query(
        "DELETE FROM unit_contributions WHERE tenant = $1 AND project = $2 AND experiment_key = $3 \
         AND phase = $4 AND metric_key = $5 AND unit = $6",
    )
    .bind(tenant)
    .bind(project)
    .bind(experiment)
    .bind(i64::from(*phase))
    .bind(metric)
    .bind(unit)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Rows that exist are rewritten by an UPDATE joined to their new values: INSERT … ON
/// CONFLICT DO UPDATE probes the key, fails the insert, then updates — half as much again of
/// the database's time for the same 16,000 rows (folds ran 68 → 76 batches a second). `{}`
/// is the VALUES list; its columns are those [`write_rows`] binds, named column1… by both
/// backends.
const UPDATE_ROWS: &str = "UPDATE unit_contributions AS u SET variant = v.column7, x = v.column8, \
     y = v.column9, raw_x = v.column10, raw_y = v.column11, exposed_ms = v.column12, segment = v.column13 \
     FROM (VALUES {}) AS v WHERE u.tenant = v.column1 AND u.project = v.column2 \
     AND u.experiment_key = v.column3 AND u.phase = v.column4 AND u.metric_key = v.column5 AND u.unit = v.column6";

/// New rows (an upsert all the same: nothing else writes them, but a row is never lost to a
/// race).
const UPSERT_ROWS: &str = "INSERT INTO unit_contributions (tenant, project, experiment_key, phase, metric_key, unit, \
     variant, x, y, raw_x, raw_y, exposed_ms, segment) VALUES {} \
     ON CONFLICT (tenant, project, experiment_key, phase, metric_key, unit) DO UPDATE SET \
     variant = excluded.variant, x = excluded.x, y = excluded.y, raw_x = excluded.raw_x, \
     raw_y = excluded.raw_y, exposed_ms = excluded.exposed_ms, segment = excluded.segment";

/// Writes kept rows with `statement` ([`UPDATE_ROWS`] or [`UPSERT_ROWS`]).
async fn write_rows(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    rows: &[(&RowKey, &Kept)],
    statement: &str,
) -> Result<(), StoreError> {
    let sql = statement.replace("{}", &placeholders(rows.len(), 13));
    let mut query = sqlx::query(&sql);
    for ((experiment, phase, metric, unit), kept) in rows {
        query = query
            .bind(tenant)
            .bind(project)
            .bind(experiment)
            .bind(i64::from(*phase))
            .bind(metric)
            .bind(unit)
            .bind(&kept.variant)
            .bind(kept.value.x)
            .bind(kept.value.y)
            .bind(kept.raw.x)
            .bind(kept.raw.y)
            .bind(kept.exposed_ms)
            .bind(encode(&kept.segment)?);
    }
    query.execute(&mut *conn).await.map_err(backend)?;
    Ok(())
}

async fn add_to_arms(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    deltas: &[(ArmKey, Delta)],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO arm_statistics AS s (tenant, project, experiment_key, phase, metric_key, variant, n, sum_x, \
         sum_x2, sum_y, sum_y2, sum_xy) VALUES {} \
         ON CONFLICT (tenant, project, experiment_key, phase, metric_key, variant) DO UPDATE SET {ADD_SUMS}",
        placeholders(deltas.len(), 12)
    );
    let mut query = sqlx::query(&sql);
    for ((experiment, phase, metric, variant), delta) in deltas {
        query = query
            .bind(tenant)
            .bind(project)
            .bind(experiment)
            .bind(i64::from(*phase))
            .bind(metric)
            .bind(variant);
        query = delta.bind_to(query);
    }
    query.execute(&mut *conn).await.map_err(backend)?;
    Ok(())
}

fn unit_list(units: &[String], first: usize) -> String {
    placeholder_list(units.len(), first)
}

/// `$first, $first+1, …` for `count` values.
fn placeholder_list(count: usize, first: usize) -> String {
    (0..count)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A recount of some metrics of one experiment only (a rebuild after those metrics changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Only {
    pub experiment: String,
    pub metrics: Vec<String>,
}

/// The memberships of `units` in every experiment phase of the project.
pub async fn memberships(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
) -> Result<Vec<Membership>, StoreError> {
    let mut out = Vec::new();
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT experiment_key, CAST(phase AS BIGINT) AS phase, unit, variant, first_exposed_ms, \
             CAST(multiple AS BIGINT) AS multiple, attributes \
             FROM experiment_units WHERE tenant = $1 AND project = $2 AND unit IN ({})",
            unit_list(chunk, 3)
        );
        let mut query = sqlx::query(&sql).bind(tenant).bind(project);
        for unit in chunk {
            query = query.bind(unit);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(backend)? {
            out.push(Membership {
                experiment: row.try_get("experiment_key").map_err(backend)?,
                phase: u32::try_from(row.try_get::<i64, _>("phase").map_err(backend)?).unwrap_or(0),
                unit: row.try_get("unit").map_err(backend)?,
                variant: row.try_get("variant").map_err(backend)?,
                first_exposed_ms: row.try_get("first_exposed_ms").map_err(backend)?,
                multiple: row.try_get::<i64, _>("multiple").map_err(backend)? == 1,
                attributes: decode(&row.try_get::<String, _>("attributes").map_err(backend)?)?,
            });
        }
    }
    Ok(out)
}

/// The definition an experiment's rows are counted by; for a holdout's comparison, the
/// definition it is analysed as.
pub async fn experiment(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    key: &str,
) -> Result<Option<ExperimentDefinition>, StoreError> {
    if let Some(holdout) = holdout_comparison::holdout_of(key) {
        return holdout_definition(conn, tenant, project, holdout).await;
    }
    let text: Option<String> = sqlx::query_scalar(
        "SELECT definition FROM experiments WHERE tenant = $1 AND project = $2 AND experiment_key = $3",
    )
    .bind(tenant)
    .bind(project)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    text.as_deref().map(decode).transpose()
}

async fn holdout_definition(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    key: &str,
) -> Result<Option<ExperimentDefinition>, StoreError> {
    let row = sqlx::query(
        "SELECT definition, created_ms FROM holdouts WHERE tenant = $1 AND project = $2 AND holdout_key = $3",
    )
    .bind(tenant)
    .bind(project)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let holdout: Holdout = decode(&row.try_get::<String, _>(0).map_err(backend)?)?;
    let created_ms: i64 = row.try_get(1).map_err(backend)?;
    Ok(Some(holdout_comparison::definition(&holdout, created_ms)))
}

/// How to read each metric the experiments use, ratios with their parts.
pub async fn plans<'a>(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    experiments: impl Iterator<Item = &'a ExperimentDefinition>,
) -> Result<HashMap<String, MetricPlan>, StoreError> {
    let rows = sqlx::query("SELECT metric_key, definition FROM metrics WHERE tenant = $1 AND project = $2")
        .bind(tenant)
        .bind(project)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    let mut metrics: HashMap<String, MetricDefinition> = HashMap::new();
    for row in rows {
        let key: String = row.try_get(0).map_err(backend)?;
        metrics.insert(key, decode(&row.try_get::<String, _>(1).map_err(backend)?)?);
    }
    let mut plans = HashMap::new();
    for definition in experiments {
        for key in definition.spec.metric_keys() {
            let Some(metric) = metrics.get(key) else { continue };
            let plan = match metric.kind {
                MetricKind::Ratio => match (metrics.get(&metric.numerator), metrics.get(&metric.denominator)) {
                    (Some(numerator), Some(denominator)) => MetricPlan::Ratio {
                        numerator: numerator.clone(),
                        denominator: denominator.clone(),
                    },
                    _ => continue,
                },
                _ => MetricPlan::Simple(metric.clone()),
            };
            plans.insert(key.to_owned(), plan);
        }
    }
    Ok(plans)
}

/// The raw events of `units` (only those named `names`, unless empty), leaving out those of
/// batches still pending (they add themselves when folded).
pub async fn settled_events(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
    names: &[&str],
) -> Result<HashMap<String, Vec<UnitEvent>>, StoreError> {
    let mut events: HashMap<String, Vec<UnitEvent>> = HashMap::new();
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        let named = if names.is_empty() {
            String::new()
        } else {
            format!(
                " AND event_name IN ({})",
                placeholder_list(names.len(), 3 + chunk.len())
            )
        };
        let sql = format!(
            "SELECT unit, event_name, value, occurred_ms FROM metric_events e \
             WHERE tenant = $1 AND project = $2 AND unit IN ({}){named} \
             AND NOT EXISTS (SELECT 1 FROM pending_batches p WHERE p.id = e.batch_id)",
            unit_list(chunk, 3)
        );
        let mut query = sqlx::query(&sql).bind(tenant).bind(project);
        for unit in chunk {
            query = query.bind(unit);
        }
        for name in names {
            query = query.bind(*name);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(backend)? {
            let unit: String = row.try_get("unit").map_err(backend)?;
            events.entry(unit).or_default().push(UnitEvent {
                name: row.try_get("event_name").map_err(backend)?,
                value: row.try_get("value").map_err(backend)?,
                occurred_ms: row.try_get("occurred_ms").map_err(backend)?,
            });
        }
    }
    Ok(events)
}

/// The kept rows of `units`; with `only`, just those of its experiment and metrics.
pub async fn contributions(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
    only: Option<&Only>,
) -> Result<BTreeMap<RowKey, Kept>, StoreError> {
    let mut out = BTreeMap::new();
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        let limited = only.map_or_else(String::new, |only| {
            let first = 3 + chunk.len();
            format!(
                " AND experiment_key = ${first} AND metric_key IN ({})",
                placeholder_list(only.metrics.len(), first + 1)
            )
        });
        let sql = format!(
            "SELECT experiment_key, CAST(phase AS BIGINT) AS phase, metric_key, unit, variant, x, y, raw_x, raw_y, \
             exposed_ms, segment FROM unit_contributions WHERE tenant = $1 AND project = $2 AND unit IN ({}){limited}",
            unit_list(chunk, 3)
        );
        let mut query = sqlx::query(&sql).bind(tenant).bind(project);
        for unit in chunk {
            query = query.bind(unit);
        }
        if let Some(only) = only {
            query = query.bind(&only.experiment);
            for metric in &only.metrics {
                query = query.bind(metric);
            }
        }
        for row in query.fetch_all(&mut *conn).await.map_err(backend)? {
            let key = (
                row.try_get("experiment_key").map_err(backend)?,
                u32::try_from(row.try_get::<i64, _>("phase").map_err(backend)?).unwrap_or(0),
                row.try_get("metric_key").map_err(backend)?,
                row.try_get("unit").map_err(backend)?,
            );
            let kept = Kept {
                variant: row.try_get("variant").map_err(backend)?,
                value: Contribution {
                    x: row.try_get("x").map_err(backend)?,
                    y: row.try_get("y").map_err(backend)?,
                },
                raw: Contribution {
                    x: row.try_get("raw_x").map_err(backend)?,
                    y: row.try_get("raw_y").map_err(backend)?,
                },
                exposed_ms: row.try_get("exposed_ms").map_err(backend)?,
                segment: decode(&row.try_get::<String, _>("segment").map_err(backend)?)?,
            };
            out.insert(key, kept);
        }
    }
    Ok(out)
}

/// The kept sums of one experiment phase.
pub async fn arm_statistics(
    pool: &AnyPool,
    tenant: &str,
    project: &str,
    experiment: &str,
    phase: u32,
) -> Result<Vec<(String, String, Sums)>, StoreError> {
    let rows = sqlx::query(
        "SELECT metric_key, variant, n, sum_x, sum_x2, sum_y, sum_y2, sum_xy FROM arm_statistics \
         WHERE tenant = $1 AND project = $2 AND experiment_key = $3 AND phase = $4",
    )
    .bind(tenant)
    .bind(project)
    .bind(experiment)
    .bind(i64::from(phase))
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| {
            let sums = sums_of(row)?;
            Ok((
                row.try_get("metric_key").map_err(backend)?,
                row.try_get("variant").map_err(backend)?,
                sums,
            ))
        })
        .collect()
}

/// The sums of a statistics row (`n`, `sum_x`, … columns).
pub(super) fn sums_of(row: &AnyRow) -> Result<Sums, StoreError> {
    Ok(Sums {
        n: row.try_get::<i64, _>("n").map_err(backend)? as f64,
        sum_x: row.try_get("sum_x").map_err(backend)?,
        sum_x2: row.try_get("sum_x2").map_err(backend)?,
        sum_y: row.try_get("sum_y").map_err(backend)?,
        sum_y2: row.try_get("sum_y2").map_err(backend)?,
        sum_xy: row.try_get("sum_xy").map_err(backend)?,
    })
}

/// Batches of a project acknowledged but not yet folded.
pub async fn pending(pool: &AnyPool, tenant: &str, project: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM pending_batches WHERE tenant = $1 AND project = $2")
        .bind(tenant)
        .bind(project)
        .fetch_one(pool)
        .await
        .map_err(backend)
}
