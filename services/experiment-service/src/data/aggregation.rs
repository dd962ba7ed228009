//! Folding acknowledged batches into the aggregates, one pending batch per transaction: the
//! touched units' contributions are recomputed from their own events
//! ([`crate::biz::unit_values`]), the arm statistics move by the difference, and the pending
//! row is deleted — all or nothing, so a crash at any point folds the batch exactly once later.
//! On PostgreSQL replicas take different batches (`FOR UPDATE SKIP LOCKED`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_platform::storage::Backend;

use super::{backend, decode, ingestion::ROWS_PER_STATEMENT};
use crate::biz::{
    error::StoreError,
    model::{ExperimentDefinition, MetricDefinition, MetricKind, State},
    results::Sums,
    unit_values::{Contribution, MetricPlan, UnitEvent, contribution},
};

/// A unit's place in one experiment phase.
struct Membership {
    experiment: String,
    phase: u32,
    unit: String,
    variant: String,
    first_exposed_ms: i64,
    multiple: bool,
}

/// What a (experiment, phase, metric, unit) contributes now, and in which arm.
type Counted = (String, Contribution);

/// Sums to add to one arm's statistics.
#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    n: i64,
    sum_x: f64,
    sum_x2: f64,
    sum_y: f64,
    sum_y2: f64,
    sum_xy: f64,
}

impl Delta {
    fn add(&mut self, c: Contribution, sign: f64) {
        self.n += sign as i64;
        self.sum_x += sign * c.x;
        self.sum_x2 += sign * c.x * c.x;
        self.sum_y += sign * c.y;
        self.sum_y2 += sign * c.y * c.y;
        self.sum_xy += sign * c.x * c.y;
    }
}

/// Folds the oldest pending batch; false when there is none.
pub async fn fold_next(pool: &AnyPool, database: Backend) -> Result<bool, StoreError> {
    let mut tx = super::begin_write(pool, database).await?;
    let lock = if database == Backend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!("SELECT id, tenant, project, units FROM pending_batches ORDER BY id LIMIT 1{lock}");
    let Some(row) = sqlx::query(&sql).fetch_optional(&mut *tx).await.map_err(backend)? else {
        return Ok(false);
    };
    let id: i64 = row.try_get("id").map_err(backend)?;
    let tenant: String = row.try_get("tenant").map_err(backend)?;
    let project: String = row.try_get("project").map_err(backend)?;
    let units: Vec<String> = decode(&row.try_get::<String, _>("units").map_err(backend)?)?;
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        refresh_units(&mut tx, &tenant, &project, chunk).await?;
    }
    sqlx::query("DELETE FROM pending_batches WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

/// Recomputes what `units` contribute to every experiment they are in.
async fn refresh_units(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
) -> Result<(), StoreError> {
    let memberships = memberships(conn, tenant, project, units).await?;
    if memberships.is_empty() {
        return Ok(());
    }
    let experiments: BTreeSet<&str> = memberships.iter().map(|m| m.experiment.as_str()).collect();
    let mut definitions = HashMap::new();
    for key in experiments {
        if let Some(definition) = experiment(conn, tenant, project, key).await? {
            definitions.insert(key.to_owned(), definition);
        }
    }
    let plans = plans(conn, tenant, project, definitions.values()).await?;
    let events = events_of(conn, tenant, project, units).await?;
    let before = contributions(conn, tenant, project, units).await?;
    let mut after: BTreeMap<(String, u32, String, String), Counted> = BTreeMap::new();
    for membership in &memberships {
        let Some(definition) = definitions.get(&membership.experiment) else {
            continue;
        };
        if membership.multiple || definition.lifecycle.state == State::Draft {
            continue;
        }
        let phase_end = definition
            .lifecycle
            .phases
            .iter()
            .find(|phase| phase.number == membership.phase)
            .and_then(|phase| phase.end_ms);
        let unit_events = events.get(&membership.unit).map_or(&[][..], Vec::as_slice);
        for metric in definition.spec.metric_keys() {
            let Some(plan) = plans.get(metric) else { continue };
            let value = contribution(plan, unit_events, membership.first_exposed_ms, phase_end);
            let key = (
                membership.experiment.clone(),
                membership.phase,
                metric.to_owned(),
                membership.unit.clone(),
            );
            after.insert(key, (membership.variant.clone(), value));
        }
    }
    apply(conn, tenant, project, &before, &after).await
}

/// Moves the arm statistics and the stored contributions from `before` to `after`.
async fn apply(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    before: &BTreeMap<(String, u32, String, String), Counted>,
    after: &BTreeMap<(String, u32, String, String), Counted>,
) -> Result<(), StoreError> {
    let mut deltas: BTreeMap<(String, u32, String, String), Delta> = BTreeMap::new();
    for (key, old) in before {
        if after.get(key) == Some(old) {
            continue;
        }
        let (experiment, phase, metric, unit) = key;
        deltas
            .entry((experiment.clone(), *phase, metric.clone(), old.0.clone()))
            .or_default()
            .add(old.1, -1.0);
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
    }
    for (key, new) in after {
        if before.get(key) == Some(new) {
            continue;
        }
        let (experiment, phase, metric, unit) = key;
        deltas
            .entry((experiment.clone(), *phase, metric.clone(), new.0.clone()))
            .or_default()
            .add(new.1, 1.0);
        sqlx::query(
            "INSERT INTO unit_contributions (tenant, project, experiment_key, phase, metric_key, unit, variant, x, y) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(project)
        .bind(experiment)
        .bind(i64::from(*phase))
        .bind(metric)
        .bind(unit)
        .bind(&new.0)
        .bind(new.1.x)
        .bind(new.1.y)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    for ((experiment, phase, metric, variant), delta) in deltas {
        sqlx::query(
            "INSERT INTO arm_statistics AS s (tenant, project, experiment_key, phase, metric_key, variant, n, sum_x, \
             sum_x2, sum_y, sum_y2, sum_xy) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant, project, experiment_key, phase, metric_key, variant) DO UPDATE SET \
             n = s.n + excluded.n, sum_x = s.sum_x + excluded.sum_x, sum_x2 = s.sum_x2 + excluded.sum_x2, \
             sum_y = s.sum_y + excluded.sum_y, sum_y2 = s.sum_y2 + excluded.sum_y2, sum_xy = s.sum_xy + excluded.sum_xy",
        )
        .bind(tenant)
        .bind(project)
        .bind(&experiment)
        .bind(i64::from(phase))
        .bind(&metric)
        .bind(&variant)
        .bind(delta.n)
        .bind(delta.sum_x)
        .bind(delta.sum_x2)
        .bind(delta.sum_y)
        .bind(delta.sum_y2)
        .bind(delta.sum_xy)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

fn unit_list(units: &[String], first: usize) -> String {
    (0..units.len())
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn memberships(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
) -> Result<Vec<Membership>, StoreError> {
    let sql = format!(
        "SELECT experiment_key, CAST(phase AS BIGINT) AS phase, unit, variant, first_exposed_ms, \
         CAST(multiple AS BIGINT) AS multiple \
         FROM experiment_units WHERE tenant = $1 AND project = $2 AND unit IN ({})",
        unit_list(units, 3)
    );
    let mut query = sqlx::query(&sql).bind(tenant).bind(project);
    for unit in units {
        query = query.bind(unit);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(Membership {
                experiment: row.try_get("experiment_key").map_err(backend)?,
                phase: u32::try_from(row.try_get::<i64, _>("phase").map_err(backend)?).unwrap_or(0),
                unit: row.try_get("unit").map_err(backend)?,
                variant: row.try_get("variant").map_err(backend)?,
                first_exposed_ms: row.try_get("first_exposed_ms").map_err(backend)?,
                multiple: row.try_get::<i64, _>("multiple").map_err(backend)? == 1,
            })
        })
        .collect()
}

async fn experiment(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    key: &str,
) -> Result<Option<ExperimentDefinition>, StoreError> {
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

/// How to read each metric the experiments use, ratios with their parts.
async fn plans<'a>(
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

async fn events_of(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
) -> Result<HashMap<String, Vec<UnitEvent>>, StoreError> {
    let sql = format!(
        "SELECT unit, event_name, value, occurred_ms FROM metric_events \
         WHERE tenant = $1 AND project = $2 AND unit IN ({})",
        unit_list(units, 3)
    );
    let mut query = sqlx::query(&sql).bind(tenant).bind(project);
    for unit in units {
        query = query.bind(unit);
    }
    let mut events: HashMap<String, Vec<UnitEvent>> = HashMap::new();
    for row in query.fetch_all(&mut *conn).await.map_err(backend)? {
        let unit: String = row.try_get("unit").map_err(backend)?;
        events.entry(unit).or_default().push(UnitEvent {
            name: row.try_get("event_name").map_err(backend)?,
            value: row.try_get("value").map_err(backend)?,
            occurred_ms: row.try_get("occurred_ms").map_err(backend)?,
        });
    }
    Ok(events)
}

async fn contributions(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
) -> Result<BTreeMap<(String, u32, String, String), Counted>, StoreError> {
    let sql = format!(
        "SELECT experiment_key, CAST(phase AS BIGINT) AS phase, metric_key, unit, variant, x, y FROM unit_contributions \
         WHERE tenant = $1 AND project = $2 AND unit IN ({})",
        unit_list(units, 3)
    );
    let mut query = sqlx::query(&sql).bind(tenant).bind(project);
    for unit in units {
        query = query.bind(unit);
    }
    let mut out = BTreeMap::new();
    for row in query.fetch_all(&mut *conn).await.map_err(backend)? {
        let key = (
            row.try_get("experiment_key").map_err(backend)?,
            u32::try_from(row.try_get::<i64, _>("phase").map_err(backend)?).unwrap_or(0),
            row.try_get("metric_key").map_err(backend)?,
            row.try_get("unit").map_err(backend)?,
        );
        let contribution = Contribution {
            x: row.try_get("x").map_err(backend)?,
            y: row.try_get("y").map_err(backend)?,
        };
        out.insert(key, (row.try_get("variant").map_err(backend)?, contribution));
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
            let sums = Sums {
                n: row.try_get::<i64, _>("n").map_err(backend)? as f64,
                sum_x: row.try_get("sum_x").map_err(backend)?,
                sum_x2: row.try_get("sum_x2").map_err(backend)?,
                sum_y: row.try_get("sum_y").map_err(backend)?,
                sum_y2: row.try_get("sum_y2").map_err(backend)?,
                sum_xy: row.try_get("sum_xy").map_err(backend)?,
            };
            Ok((
                row.try_get("metric_key").map_err(backend)?,
                row.try_get("variant").map_err(backend)?,
                sums,
            ))
        })
        .collect()
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
