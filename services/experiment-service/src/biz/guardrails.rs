//! Guardrails: a running experiment whose guardrail metric shows harm on the sequential test
//! (always valid, so checking again and again does not inflate false alarms), or whose
//! traffic fails the SRM check, stops itself. Its flag goes back to the control variant
//! through flag-service (the stop is a roll-back decided by `guardrail`), the stop is audited
//! with the figures that caused it, and a [`Notice`] goes out. A person starts it again with a
//! reason; that opens a new phase, so the figures that stopped it no longer count.
//!
//! The check runs every `guardrail_check_seconds` on each replica; the stop is an ordinary
//! versioned write, so two replicas stopping the same experiment at once leave one stop (the
//! other's write finds the version moved and gives up).

use std::{sync::Arc, time::Duration};

use switchyard_platform::{
    Shutdown,
    auth::{Credential, Principal, Role, RoleBinding},
    clock::now_ms,
};

use super::{
    breakdown::PhaseScope,
    error::{ExperimentError, ExperimentResult, StoreError},
    flags::Flags,
    management::{Caller, Manager},
    model::{Decision, DecisionKind, State},
    notices::{Notice, Notifier},
    repository::ExperimentRepository,
    results::{Comparison, Results},
};

/// Who stops an experiment on its guardrail, in its decision and audit trail.
pub const GUARDRAIL_ACTOR: &str = "guardrail";

/// How the check runs: how often, and the services' shared credential it acts with.
#[derive(Debug, Clone)]
pub struct GuardrailSettings {
    pub interval: Duration,
    pub credential: Option<String>,
}

/// Checks every running experiment every `settings.interval` until shutdown.
pub async fn run<R: ExperimentRepository, F: Flags, N: Notifier>(
    manager: Arc<Manager<R, F>>,
    notifier: N,
    settings: GuardrailSettings,
    shutdown: Shutdown,
) {
    let Some(credential) = settings.credential else {
        tracing::warn!("auth.key_sync_credential is not set: experiments cannot stop themselves on a guardrail or SRM");
        return;
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = manager.check_guardrails(&credential, &notifier).await {
            tracing::warn!(%error, "checking guardrails failed; trying again at the next check");
        }
    }
}

/// Why the results call for a stop, if they do: (cause, reason with the figures). Nothing is
/// decided while an arm has too few units: early, partial traffic (the first batch of
/// exposures all from one arm) is not evidence.
pub fn breach(results: &Results) -> Option<(&'static str, String)> {
    if results.health.too_few_units {
        return None;
    }
    if !results.health.guardrails_failing.is_empty() {
        let figures: Vec<String> = results
            .metrics
            .iter()
            .filter(|metric| results.health.guardrails_failing.contains(&metric.metric))
            .flat_map(|metric| {
                metric.arms.iter().filter_map(move |arm| {
                    arm.comparison
                        .as_ref()
                        .map(|comparison| describe(&metric.metric, &arm.variant, arm.units, comparison))
                })
            })
            .collect();
        let reason = format!(
            "guardrail {} shows harm on the sequential test: {}",
            results.health.guardrails_failing.join(", "),
            figures.join("; ")
        );
        return Some(("guardrail", reason));
    }
    if results.health.srm_detected {
        let units: Vec<String> = results
            .units
            .iter()
            .map(|(variant, units)| format!("{variant} {units}"))
            .collect();
        let reason = format!(
            "sample ratio mismatch: p = {:.3e} < 0.001 over units {}",
            results.health.srm_p_value,
            units.join(", ")
        );
        return Some(("srm", reason));
    }
    None
}

fn describe(metric: &str, variant: &str, units: i64, comparison: &Comparison) -> String {
    let p = comparison
        .p_value
        .map_or_else(|| "p undefined".to_owned(), |p| format!("p = {p:.4}"));
    format!(
        "{metric} {variant} ({units} units) effect {:.4} [{:.4}, {:.4}], {p}",
        comparison.effect, comparison.interval.0, comparison.interval.1
    )
}

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    /// Stops every running experiment whose results breach; returns how many stopped.
    pub async fn check_guardrails(&self, credential: &str, notifier: &impl Notifier) -> ExperimentResult<usize> {
        let mut stopped = 0;
        for (tenant, project, key) in self.repository.running_experiments().await? {
            match self.check_one(credential, notifier, &tenant, &project, &key).await {
                Ok(true) => stopped += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, %tenant, %project, experiment = %key, "guardrail check failed");
                }
            }
        }
        Ok(stopped)
    }

    async fn check_one(
        &self,
        credential: &str,
        notifier: &impl Notifier,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> ExperimentResult<bool> {
        let Some(current) = self.repository.experiment(tenant, project, key).await? else {
            return Ok(false);
        };
        let definition = &current.definition;
        let Some(phase) = definition.lifecycle.phases.last() else {
            return Ok(false);
        };
        if definition.lifecycle.state != State::Running {
            return Ok(false);
        }
        let scope = PhaseScope {
            tenant,
            project,
            experiment: key,
            phase,
        };
        let results = self.results_of(&scope, definition, None).await?;
        let Some((cause, reason)) = breach(&results) else {
            return Ok(false);
        };
        let principal = Principal {
            subject: GUARDRAIL_ACTOR.to_owned(),
            tenant: tenant.to_owned(),
            roles: vec![RoleBinding {
                role: Role::Publisher,
                resource: None,
            }],
            scopes: Vec::new(),
            credential: Credential::ApiKey,
        };
        let authorization = format!("Bearer {credential}");
        let caller = Caller {
            principal: &principal,
            request_id: None,
            authorization: Some(&authorization),
            act_for_tenant: Some(tenant),
        };
        let decision = Decision {
            kind: DecisionKind::RollBack,
            variant: String::new(),
            reason: reason.clone(),
            actor: String::new(),
            decided_ms: 0,
        };
        let stored = match self.stop(caller, project, key, Some(current.version), decision).await {
            Ok(stored) => stored,
            // Someone changed it meanwhile (a person, or another replica's stop): look again
            // at the next check.
            Err(ExperimentError::Store(StoreError::Stale(_)) | ExperimentError::Lifecycle(_)) => return Ok(false),
            Err(error) => return Err(error),
        };
        tracing::warn!(%tenant, %project, experiment = %key, %reason, "experiment stopped itself");
        let notice = Notice {
            kind: "experiment_stopped",
            experiment: format!("projects/{project}/experiments/{key}"),
            project: project.to_owned(),
            cause,
            reason,
            serving: definition
                .spec
                .arms
                .first()
                .map(|arm| arm.variant.clone())
                .unwrap_or_default(),
            version: stored.version,
            stopped_at_ms: now_ms(),
            webhook: definition.spec.notification_webhook.clone(),
        };
        notifier.notify(tenant, &notice).await;
        Ok(true)
    }
}
