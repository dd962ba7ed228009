//! The experiment's side of its flag: checking the flag fits, writing the assignment rule
//! into it when the experiment starts or changes, the decision when it stops, and answering
//! `Assign` with the same rule. If flag-service refuses a rewrite, the experiment is put back
//! as it was, so the two never disagree about whether it runs.

use switchyard_platform::auth::Role;

use super::{
    assignment,
    error::{ExperimentError, ExperimentResult},
    flags::{FlagCredentials, FlagView, Flags, TargetingChange},
    management::{Caller, Manager, experiment_resource},
    model::{ExperimentSpec, State, StoredExperiment},
    repository::{Expected, ExperimentRepository},
};

/// The credentials to pass on to flag-service.
fn authorization<'a>(caller: Caller<'a>) -> ExperimentResult<FlagCredentials<'a>> {
    let authorization = caller
        .authorization
        .ok_or_else(|| ExperimentError::invalid("authorization", "credentials are needed to change the flag"))?;
    Ok(FlagCredentials {
        authorization,
        act_for_tenant: caller.act_for_tenant,
    })
}

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    /// Makes the flag serve what `stored` says; if flag-service refuses, puts the experiment
    /// back as `previous` was (recorded as a `revert` version) and reports why.
    pub(super) async fn sync_flag_or_revert(
        &self,
        caller: Caller<'_>,
        project: &str,
        previous: &StoredExperiment,
        stored: StoredExperiment,
    ) -> ExperimentResult<StoredExperiment> {
        let Err(error) = self.sync_flag(caller, project, &stored).await else {
            return Ok(stored);
        };
        let why = format!("the flag was not changed: {error}");
        let reverted = self
            .write(
                caller,
                project,
                &stored.key,
                Expected::Version(stored.version),
                previous.definition.clone(),
                "revert",
                &why,
                Some(previous),
            )
            .await;
        if let Err(revert_error) = reverted {
            tracing::error!(%revert_error, experiment = %stored.key, "could not revert after the flag refused");
        }
        Err(error)
    }

    /// Writes the experiment's rule into its flag: the assignment while it runs, the decision
    /// once stopped. Drafts and archived experiments leave the flag alone.
    async fn sync_flag(&self, caller: Caller<'_>, project: &str, stored: &StoredExperiment) -> ExperimentResult<()> {
        let definition = &stored.definition;
        let spec = &definition.spec;
        let lifecycle = &definition.lifecycle;
        let original = |environment: &str| lifecycle.original_targeting.get(environment).cloned().flatten();
        let (targeting, experiment) = match (lifecycle.state, &lifecycle.decision) {
            (State::Running, _) => {
                let rules = spec
                    .environments
                    .iter()
                    .map(|environment| {
                        let rule = assignment::running_rule(
                            spec,
                            &lifecycle.phases,
                            &lifecycle.exclusions,
                            original(environment).as_ref(),
                        );
                        (environment.clone(), Some(rule).filter(|rule| !rule.is_null()))
                    })
                    .collect();
                (rules, Some(stored.key.clone()))
            }
            (State::Stopped, Some(decision)) => {
                let rules = spec
                    .environments
                    .iter()
                    .map(|environment| {
                        let rule = assignment::decided_rule(
                            spec,
                            &lifecycle.exclusions,
                            decision,
                            original(environment).as_ref(),
                        );
                        (environment.clone(), rule)
                    })
                    .collect();
                (rules, None)
            }
            _ => return Ok(()),
        };
        let change = TargetingChange {
            targeting,
            experiment,
            message: format!("experiment {}: {}", stored.key, lifecycle.state.as_str()),
        };
        self.flags
            .rewrite(authorization(caller)?, project, &spec.flag, &change)
            .await?;
        Ok(())
    }

    /// The experiment's flag, checked to carry its arms and have rules in its environments.
    pub(super) async fn flag_for(
        &self,
        caller: Caller<'_>,
        project: &str,
        spec: &ExperimentSpec,
    ) -> ExperimentResult<FlagView> {
        let flag = self.flags.read(authorization(caller)?, project, &spec.flag).await?;
        for arm in &spec.arms {
            if !flag.variants.contains(&arm.variant) {
                return Err(ExperimentError::FlagMismatch(format!(
                    "`{}` is not a variant of flag `{}` (it has {})",
                    arm.variant,
                    spec.flag,
                    flag.variants.join(", ")
                )));
            }
        }
        for environment in &spec.environments {
            if !flag.targeting.contains_key(environment) {
                return Err(ExperimentError::FlagMismatch(format!(
                    "flag `{}` has no rules in environment `{environment}`: give it rules there first",
                    spec.flag
                )));
            }
        }
        Ok(flag)
    }

    /// The arm `context` gets, as every flagd provider computes it from the flag (`None`: not
    /// in the experiment now), with the phase.
    pub async fn assign(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        context: &flag_engine::Context,
    ) -> ExperimentResult<Option<(String, u32)>> {
        let resource = experiment_resource(project, key);
        caller.require(Role::SdkServer, &resource)?;
        let experiment = self
            .repository
            .experiment(caller.tenant(), project, key)
            .await?
            .ok_or(ExperimentError::NotFound(resource))?;
        let lifecycle = &experiment.definition.lifecycle;
        let (State::Running, Some(phase)) = (lifecycle.state, lifecycle.phases.last()) else {
            return Ok(None);
        };
        let arm = assignment::assign(
            &experiment.definition.spec,
            &lifecycle.phases,
            &lifecycle.exclusions,
            context,
        );
        Ok(arm.map(|arm| (arm, phase.number)))
    }
}
