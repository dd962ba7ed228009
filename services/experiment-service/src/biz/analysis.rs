//! The read side of an experiment: who was exposed to which arm, and the results computed
//! from the kept sums.

use std::collections::HashMap;

use super::{
    error::{ExperimentError, ExperimentResult},
    flags::Flags,
    management::{Caller, Manager},
    repository::ExperimentRepository,
    results::{self, Inputs, Results, Sums},
};

/// Units of one phase per arm; units that saw several arms are only in `multiple`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExposureCounts {
    pub phase: u32,
    pub arms: Vec<(String, i64)>,
    pub multiple: i64,
}

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    /// Units per arm of the experiment's latest phase, and units seen in several arms.
    pub async fn exposure_counts(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
    ) -> ExperimentResult<ExposureCounts> {
        let experiment = self.experiment(caller, project, key).await?;
        let Some(phase) = experiment.definition.lifecycle.phases.last() else {
            return Ok(ExposureCounts::default());
        };
        let (mut arms, multiple) = self
            .repository
            .exposure_counts(caller.tenant(), project, key, phase.number)
            .await?;
        // Every arm, in the experiment's order, zero when nobody saw it yet.
        let ordered = phase
            .arms
            .iter()
            .map(|arm| {
                let units = arms
                    .iter()
                    .position(|(variant, _)| *variant == arm.variant)
                    .map_or(0, |at| arms.swap_remove(at).1);
                (arm.variant.clone(), units)
            })
            .collect();
        Ok(ExposureCounts {
            phase: phase.number,
            arms: ordered,
            multiple,
        })
    }

    /// Results of a phase (the latest when `phase` is `None`), from the kept sums.
    pub async fn results(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        phase: Option<u32>,
    ) -> ExperimentResult<Results> {
        let experiment = self.experiment(caller, project, key).await?;
        let phases = &experiment.definition.lifecycle.phases;
        let phase = match phase {
            None => phases.last(),
            Some(number) => phases.iter().find(|phase| phase.number == number),
        };
        let Some(phase) = phase else {
            return Err(ExperimentError::invalid(
                "phase",
                "the experiment has no such phase (has it started?)",
            ));
        };
        let spec = &experiment.definition.spec;
        let tenant = caller.tenant();
        let mut metrics = HashMap::new();
        for key in spec.metric_keys() {
            if let Some(metric) = self.repository.metric(tenant, project, key).await? {
                for part in [&metric.definition.numerator, &metric.definition.denominator] {
                    if !part.is_empty()
                        && let Some(part_metric) = self.repository.metric(tenant, project, part).await?
                    {
                        metrics.insert(part.clone(), part_metric.definition);
                    }
                }
                metrics.insert(key.to_owned(), metric.definition);
            }
        }
        // Counted before the sums are read: a batch no longer pending here is in them.
        let pending_batches = self.repository.pending_batches(tenant, project).await?;
        let sums: HashMap<(String, String), Sums> = self
            .repository
            .arm_statistics(tenant, project, key, phase.number)
            .await?
            .into_iter()
            .map(|(metric, variant, sums)| ((metric, variant), sums))
            .collect();
        let (units, multiple_exposures) = self
            .repository
            .exposure_counts(tenant, project, key, phase.number)
            .await?;
        Ok(results::compute(&Inputs {
            spec,
            phase,
            metrics: &metrics,
            sums: &sums,
            units: &units,
            multiple_exposures,
            pending_batches,
        }))
    }
}
