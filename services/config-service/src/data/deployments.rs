//! Strategies, deployments, their events and client health reports, on PostgreSQL and SQLite.

use sqlx::{AnyConnection, Row, any::AnyRow};
use switchyard_platform::audit::AuditEntry;

use super::{
    SqlRepository, append_audit, backend,
    definitions::{self, Table},
    insert_served, next_revision, prune_changes,
    rows::{RELEASE_COLUMNS, SERVED_COLUMNS, column, json, json_column, release_of, served_of},
};
use crate::biz::{
    deployments::{
        gates::HealthCounts,
        model::{Deployment, Event, EventKind, State, TargetKind},
        repository::{DeploymentFilter, DeploymentRepository, Serving, Transition},
        strategy::Strategy,
    },
    model::{EnvKey, Release, Rollout, Served, now_ms},
    repository::{StoreError, StoreResult},
};

/// The columns a deployment is inserted with.
const DEPLOYMENT_COLUMNS: &str = "project, environment, number, kind, target, version, previous, strategy, gates, \
     seed, state, step, share, step_started_ms, due_ms, paused_left_ms, reason, tallies, description, created_by, \
     created_ms, updated_ms, ended_ms, revision, pre_start_webhook, webhooks, break_glass";

/// The columns a deployment is read with: the inserted ones and the announcement cursor.
const READ_COLUMNS: &str = "project, environment, number, kind, target, version, previous, strategy, gates, \
     seed, state, step, share, step_started_ms, due_ms, paused_left_ms, reason, tallies, description, created_by, \
     created_ms, updated_ms, ended_ms, revision, pre_start_webhook, webhooks, break_glass, event_sequence, \
     notified_sequence";

/// What a driver looks after, as SQL: deployments still moving, and events not announced yet.
const NEEDS_DRIVER: &str = "(state IN ('QUEUED', 'VALIDATING', 'DEPLOYING', 'PAUSED', 'BAKING', 'ROLLING_BACK') \
     OR notified_sequence < event_sequence)";

fn deployment_of(tenant: &str, row: &AnyRow) -> StoreResult<Deployment> {
    let project: String = column(row, "project")?;
    let environment: String = column(row, "environment")?;
    let kind: String = column(row, "kind")?;
    let state: String = column(row, "state")?;
    let share: i64 = column(row, "share")?;
    Ok(Deployment {
        env: EnvKey::new(tenant, &project, &environment),
        number: column(row, "number")?,
        kind: TargetKind::parse(&kind).ok_or_else(|| StoreError::Backend(format!("unknown kind `{kind}`")))?,
        target: column(row, "target")?,
        version: column(row, "version")?,
        previous: column(row, "previous")?,
        strategy: json_column(row, "strategy")?,
        gates: json_column(row, "gates")?,
        seed: column(row, "seed")?,
        state: State::parse(&state).ok_or_else(|| StoreError::Backend(format!("unknown state `{state}`")))?,
        step: column(row, "step")?,
        share: u32::try_from(share).unwrap_or(0),
        step_started_ms: column(row, "step_started_ms")?,
        due_ms: column(row, "due_ms")?,
        paused_left_ms: column(row, "paused_left_ms")?,
        reason: column(row, "reason")?,
        tallies: json_column(row, "tallies")?,
        description: column(row, "description")?,
        created_by: column(row, "created_by")?,
        created_ms: column(row, "created_ms")?,
        updated_ms: column(row, "updated_ms")?,
        ended_ms: column(row, "ended_ms")?,
        revision: column(row, "revision")?,
        pre_start_webhook: column(row, "pre_start_webhook")?,
        webhooks: json_column(row, "webhooks")?,
        break_glass: column::<i64>(row, "break_glass")? != 0,
        event_sequence: column(row, "event_sequence")?,
        notified_sequence: column(row, "notified_sequence")?,
    })
}

fn event_of(row: &AnyRow) -> StoreResult<Event> {
    let kind: String = column(row, "kind")?;
    let state: String = column(row, "state")?;
    let share: i64 = column(row, "share")?;
    Ok(Event {
        sequence: column(row, "sequence")?,
        kind: EventKind::parse(&kind).ok_or_else(|| StoreError::Backend(format!("unknown event `{kind}`")))?,
        state: State::parse(&state).ok_or_else(|| StoreError::Backend(format!("unknown state `{state}`")))?,
        share: u32::try_from(share).unwrap_or(0),
        actor: column(row, "actor")?,
        detail: column(row, "detail")?,
        created_ms: column(row, "created_ms")?,
    })
}

async fn insert_events(conn: &mut AnyConnection, deployment: &Deployment, events: &[Event]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let env = &deployment.env;
    let last: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(sequence), 0) FROM deployment_events \
         WHERE tenant = $1 AND project = $2 AND environment = $3 AND deployment = $4",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(deployment.number)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    for (offset, event) in events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deployment_events (tenant, project, environment, deployment, sequence, kind, state, share, \
             actor, detail, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(deployment.number)
        .bind(last + 1 + offset as i64)
        .bind(event.kind.name())
        .bind(event.state.name())
        .bind(i64::from(event.share))
        .bind(&event.actor)
        .bind(&event.detail)
        .bind(event.created_ms)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    sqlx::query(
        "UPDATE deployments SET event_sequence = $5 \
         WHERE tenant = $1 AND project = $2 AND environment = $3 AND number = $4",
    )
    .bind(&env.tenant)
    .bind(&env.project)
    .bind(&env.environment)
    .bind(deployment.number)
    .bind(last + events.len() as i64)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The config's current change-log row.
async fn current_served(conn: &mut AnyConnection, env: &EnvKey, config: &str) -> StoreResult<Served> {
    let sql = format!(
        "SELECT {SERVED_COLUMNS} FROM changes c JOIN published p ON p.tenant = c.tenant AND p.project = c.project \
         AND p.environment = c.environment AND p.revision = c.revision \
         WHERE p.tenant = $1 AND p.project = $2 AND p.environment = $3 AND p.config = $4"
    );
    let row = sqlx::query(&sql)
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(config)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .ok_or(StoreError::Missing)?;
    served_of(&row)
}

async fn release_row(conn: &mut AnyConnection, env: &EnvKey, config: &str, number: i64) -> StoreResult<Release> {
    let sql = format!(
        "SELECT {RELEASE_COLUMNS} FROM releases \
         WHERE tenant = $1 AND project = $2 AND environment = $3 AND config = $4 AND number = $5"
    );
    let row = sqlx::query(&sql)
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(config)
        .bind(number)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .ok_or(StoreError::Missing)?;
    release_of(&env.tenant, &row)
}

/// The change-log row a serving change makes, from the config's current one.
async fn served_for(conn: &mut AnyConnection, deployment: &Deployment, serving: Serving) -> StoreResult<Served> {
    let env = &deployment.env;
    let current = current_served(&mut *conn, env, &deployment.target).await?;
    let row = match serving {
        Serving::Share(share) => {
            let release = release_row(&mut *conn, env, &deployment.target, deployment.version).await?;
            let rollout = Rollout {
                deployment: deployment.number,
                share,
                seed: deployment.seed.clone(),
                release: release.number,
                format: release.format,
                resolved: release.resolved,
                content_hash: release.content_hash,
                secret_paths: release.secret_paths,
            };
            Served {
                rollout: Some(Box::new(rollout)),
                ..current
            }
        }
        Serving::Stable => Served {
            rollout: None,
            ..current
        },
        Serving::Release(number) => {
            let release = release_row(&mut *conn, env, &deployment.target, number).await?;
            Served {
                release: release.number,
                format: release.format,
                resolved: release.resolved,
                content_hash: release.content_hash,
                secret_paths: release.secret_paths,
                rollout: None,
                ..current
            }
        }
    };
    Ok(row)
}

async fn write_serving(conn: &mut AnyConnection, transition: &Transition<'_>, serving: Serving) -> StoreResult<Served> {
    let deployment = transition.deployment;
    let env = &deployment.env;
    let revision = next_revision(&mut *conn, env).await?;
    let mut row = served_for(&mut *conn, deployment, serving).await?;
    row.revision = revision;
    row.created_ms = now_ms();
    insert_served(&mut *conn, env, &row).await?;
    if matches!(serving, Serving::Release(_)) {
        // A staged release becomes current for the first time: it gets the revision it did at.
        sqlx::query(
            "UPDATE releases SET revision = $6 WHERE tenant = $1 AND project = $2 AND environment = $3 \
             AND config = $4 AND number = $5 AND revision = 0",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(&deployment.target)
        .bind(row.release)
        .bind(revision)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    prune_changes(&mut *conn, env, revision, transition.retain_changes).await?;
    Ok(row)
}

async fn update_deployment(conn: &mut AnyConnection, transition: &Transition<'_>) -> StoreResult<()> {
    let d = transition.deployment;
    let owner = transition.lease_owner.unwrap_or("");
    let result = sqlx::query(
        "UPDATE deployments SET version = $5, previous = $6, state = $7, step = $8, share = $9, \
         step_started_ms = $10, due_ms = $11, paused_left_ms = $12, reason = $13, tallies = $14, updated_ms = $15, \
         ended_ms = $16, revision = $17 \
         WHERE tenant = $1 AND project = $2 AND environment = $3 AND number = $4 AND revision = $18 \
         AND ($19 = '' OR (lease_owner = $19 AND lease_until_ms >= $20))",
    )
    .bind(&d.env.tenant)
    .bind(&d.env.project)
    .bind(&d.env.environment)
    .bind(d.number)
    .bind(d.version)
    .bind(d.previous)
    .bind(d.state.name())
    .bind(d.step)
    .bind(i64::from(d.share))
    .bind(d.step_started_ms)
    .bind(d.due_ms)
    .bind(d.paused_left_ms)
    .bind(&d.reason)
    .bind(json(&d.tallies))
    .bind(d.updated_ms)
    .bind(d.ended_ms)
    .bind(d.revision)
    .bind(transition.from_revision)
    .bind(owner)
    .bind(now_ms())
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if result.rows_affected() == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

impl DeploymentRepository for SqlRepository {
    async fn put_strategy(
        &self,
        tenant: &str,
        project: &str,
        strategy: &Strategy,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<i64> {
        let key = (tenant, project, strategy.id.as_str());
        definitions::put(&self.pool, Table::Strategies, key, strategy, expected_version, audit).await
    }

    async fn strategy(&self, tenant: &str, project: &str, id: &str) -> StoreResult<Option<(Strategy, i64)>> {
        definitions::get(&self.pool, Table::Strategies, (tenant, project, id)).await
    }

    async fn list_strategies(&self, tenant: &str, project: &str) -> StoreResult<Vec<Strategy>> {
        let listed = definitions::list(&self.pool, Table::Strategies, tenant, project).await?;
        Ok(listed.into_iter().map(|(strategy, _)| strategy).collect())
    }

    async fn delete_strategy(&self, tenant: &str, project: &str, id: &str, audit: &AuditEntry) -> StoreResult<()> {
        definitions::delete(&self.pool, Table::Strategies, (tenant, project, id), audit).await
    }

    async fn create_deployment(
        &self,
        deployment: &Deployment,
        events: &[Event],
        audit: &AuditEntry,
    ) -> StoreResult<Deployment> {
        let env = &deployment.env;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        super::lock_environment(&mut tx, env).await?;
        let number = definitions::next_number(&mut tx, "deployments", env).await?;
        let stored = Deployment {
            number,
            ..deployment.clone()
        };
        let d = &stored;
        sqlx::query(&format!(
            "INSERT INTO deployments (tenant, {DEPLOYMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
        ))
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(d.number)
        .bind(d.kind.name())
        .bind(&d.target)
        .bind(d.version)
        .bind(d.previous)
        .bind(json(&d.strategy))
        .bind(json(&d.gates))
        .bind(&d.seed)
        .bind(d.state.name())
        .bind(d.step)
        .bind(i64::from(d.share))
        .bind(d.step_started_ms)
        .bind(d.due_ms)
        .bind(d.paused_left_ms)
        .bind(&d.reason)
        .bind(json(&d.tallies))
        .bind(&d.description)
        .bind(&d.created_by)
        .bind(d.created_ms)
        .bind(d.updated_ms)
        .bind(d.ended_ms)
        .bind(d.revision)
        .bind(&d.pre_start_webhook)
        .bind(json(&d.webhooks))
        .bind(i64::from(d.break_glass))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_events(&mut tx, d, events).await?;
        append_audit(
            &mut tx,
            &AuditEntry {
                resource: d.resource(),
                ..audit.clone()
            },
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn deployment(&self, env: &EnvKey, number: i64) -> StoreResult<Option<Deployment>> {
        let sql = format!(
            "SELECT {READ_COLUMNS} FROM deployments \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND number = $4"
        );
        let row = sqlx::query(&sql)
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(number)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|row| deployment_of(&env.tenant, &row)).transpose()
    }

    async fn list_deployments(&self, env: &EnvKey, filter: &DeploymentFilter) -> StoreResult<Vec<Deployment>> {
        let (kind, target) = filter
            .target
            .as_ref()
            .map(|(kind, target)| (kind.name(), target.as_str()))
            .unwrap_or(("", ""));
        let before = if filter.before > 0 { filter.before } else { i64::MAX };
        let sql = format!(
            "SELECT {READ_COLUMNS} FROM deployments \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND number < $4 \
             AND ($5 = '' OR (kind = $5 AND target = $6)) ORDER BY number DESC LIMIT $7"
        );
        let rows = sqlx::query(&sql)
            .bind(&env.tenant)
            .bind(&env.project)
            .bind(&env.environment)
            .bind(before)
            .bind(kind)
            .bind(target)
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(|row| deployment_of(&env.tenant, row)).collect()
    }

    async fn events(&self, env: &EnvKey, number: i64, after: i64, limit: i64) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT sequence, kind, state, share, actor, detail, created_ms FROM deployment_events \
             WHERE tenant = $1 AND project = $2 AND environment = $3 AND deployment = $4 AND sequence > $5 \
             ORDER BY sequence LIMIT $6",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(number)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(event_of).collect()
    }

    async fn active_deployment(&self, env: &EnvKey, kind: TargetKind, target: &str) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT number FROM deployments WHERE tenant = $1 AND project = $2 AND environment = $3 AND kind = $4 \
             AND target = $5 AND state IN ('VALIDATING', 'DEPLOYING', 'PAUSED', 'BAKING', 'ROLLING_BACK')",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(kind.name())
        .bind(target)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)
    }

    async fn transition(&self, transition: &Transition<'_>) -> StoreResult<Option<Served>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        update_deployment(&mut tx, transition).await?;
        let served = match &transition.serving {
            Some(serving) => Some(write_serving(&mut tx, transition, *serving).await?),
            None => None,
        };
        insert_events(&mut tx, transition.deployment, transition.events).await?;
        for entry in transition.audit {
            append_audit(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(served)
    }

    async fn claim(&self, owner: &str, now_ms: i64, until_ms: i64, limit: i64) -> StoreResult<Vec<Deployment>> {
        let sql = format!(
            "UPDATE deployments SET lease_owner = $1, lease_until_ms = $2 \
             WHERE {NEEDS_DRIVER} AND (lease_until_ms < $3 OR lease_owner = $1) \
             AND (tenant, project, environment, number) IN (SELECT tenant, project, environment, number \
                 FROM deployments WHERE {NEEDS_DRIVER} AND (lease_until_ms < $3 OR lease_owner = $1) \
                 ORDER BY lease_until_ms LIMIT $4) \
             RETURNING tenant, {READ_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(until_ms)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant").map_err(backend)?;
                deployment_of(&tenant, row)
            })
            .collect()
    }

    async fn pending_announcements(&self, owner: &str, limit: i64) -> StoreResult<Vec<Deployment>> {
        let sql = format!(
            "SELECT tenant, {READ_COLUMNS} FROM deployments \
             WHERE lease_owner = $1 AND notified_sequence < event_sequence ORDER BY updated_ms LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant").map_err(backend)?;
                deployment_of(&tenant, row)
            })
            .collect()
    }

    async fn mark_notified(&self, deployment: &Deployment, sequence: i64, owner: &str) -> StoreResult<()> {
        let env = &deployment.env;
        sqlx::query(
            "UPDATE deployments SET notified_sequence = $5 WHERE tenant = $1 AND project = $2 AND environment = $3 \
             AND number = $4 AND notified_sequence < $5 AND lease_owner = $6",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(deployment.number)
        .bind(sequence)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<()> {
        sqlx::query("UPDATE deployments SET lease_until_ms = 0 WHERE lease_owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn add_health(
        &self,
        env: &EnvKey,
        kind: TargetKind,
        target: &str,
        version: i64,
        at_ms: i64,
        counts: HealthCounts,
    ) -> StoreResult<()> {
        let ok = i64::try_from(counts.ok).unwrap_or(i64::MAX);
        let errors = i64::try_from(counts.errors).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO health_reports (tenant, project, environment, kind, target, version, minute_ms, ok, errors) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, project, environment, kind, target, version, minute_ms) \
             DO UPDATE SET ok = health_reports.ok + excluded.ok, errors = health_reports.errors + excluded.errors",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(kind.name())
        .bind(target)
        .bind(version)
        .bind(at_ms - at_ms.rem_euclid(60_000))
        .bind(ok)
        .bind(errors)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn health(
        &self,
        env: &EnvKey,
        kind: TargetKind,
        target: &str,
        version: i64,
        since_ms: i64,
    ) -> StoreResult<HealthCounts> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(ok), 0) AS BIGINT) AS ok, CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors \
             FROM health_reports WHERE tenant = $1 AND project = $2 AND environment = $3 AND kind = $4 \
             AND target = $5 AND version = $6 AND minute_ms >= $7",
        )
        .bind(&env.tenant)
        .bind(&env.project)
        .bind(&env.environment)
        .bind(kind.name())
        .bind(target)
        .bind(version)
        .bind(since_ms - since_ms.rem_euclid(60_000))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let ok: i64 = column(&row, "ok")?;
        let errors: i64 = column(&row, "errors")?;
        Ok(HealthCounts {
            ok: u64::try_from(ok).unwrap_or(0),
            errors: u64::try_from(errors).unwrap_or(0),
        })
    }
}
