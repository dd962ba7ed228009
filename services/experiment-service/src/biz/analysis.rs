//! The read side of an experiment: who was exposed to which arm (read from the units
//! themselves, so it includes batches not yet folded), and the results computed from the kept
//! sums (the arms' units among them).

use std::collections::HashMap;

use super::{
    breakdown::PhaseScope,
    error::{ExperimentError, ExperimentResult},
    flags::Flags,
    holdout_comparison,
    management::{Caller, Manager},
    model::{ExperimentDefinition, ExperimentSpec, MetricDefinition},
    repository::{ExperimentRepository, PhaseMetric},
    results::{self, Inputs, Results},
    sums::Sums,
    unit_values::{MULTIPLE_ROW, UNITS_ROW},
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

    /// Results of a phase (the latest when `phase` is `None`), from the kept sums; broken
    /// down by `dimension` (one of the experiment's) when given.
    pub async fn results(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        phase: Option<u32>,
        dimension: Option<&str>,
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
        if let Some(dimension) = dimension
            && !spec.dimensions.iter().any(|known| known == dimension)
        {
            return Err(ExperimentError::invalid(
                "dimension",
                "not one of the experiment's dimensions (set `dimensions` on the experiment)",
            ));
        }
        let scope = PhaseScope {
            tenant: caller.tenant(),
            project,
            experiment: key,
            phase,
        };
        self.results_of(&scope, &experiment.definition, dimension).await
    }

    /// A holdout's own comparison (held-out units against the rest), from the kept sums.
    pub async fn holdout_results(&self, caller: Caller<'_>, project: &str, key: &str) -> ExperimentResult<Results> {
        let view = self.holdout(caller, project, key).await?;
        let definition = holdout_comparison::definition(&view.holdout, view.created_ms);
        let Some(phase) = definition.lifecycle.phases.first() else {
            return Err(ExperimentError::invalid("name", "the holdout has no comparison"));
        };
        let analysis_key = holdout_comparison::comparison_key(key);
        let scope = PhaseScope {
            tenant: caller.tenant(),
            project,
            experiment: &analysis_key,
            phase,
        };
        self.results_of(&scope, &definition, None).await
    }

    /// The experiment's metrics and their ratios' parts, by key.
    pub(super) async fn metric_definitions(
        &self,
        tenant: &str,
        project: &str,
        spec: &ExperimentSpec,
    ) -> ExperimentResult<HashMap<String, MetricDefinition>> {
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
        Ok(metrics)
    }

    /// Results of one phase of an experiment, for whoever may see them; broken down by
    /// `dimension` when given.
    pub(super) async fn results_of(
        &self,
        scope: &PhaseScope<'_>,
        definition: &ExperimentDefinition,
        dimension: Option<&str>,
    ) -> ExperimentResult<Results> {
        let PhaseScope {
            tenant,
            project,
            experiment: key,
            phase,
        } = *scope;
        let spec = &definition.spec;
        let metrics = self.metric_definitions(tenant, project, spec).await?;
        // Counted before the sums are read: a batch no longer pending here, or a rebuild no
        // longer running, is in them.
        let pending_batches = self.repository.pending_batches(tenant, project).await?;
        let rebuild = self.repository.rebuild_progress(tenant, project, key).await?;
        let mut sums: HashMap<(String, String), Sums> = HashMap::new();
        let mut units = Vec::new();
        let mut multiple_exposures = 0;
        for (metric, variant, arm) in self
            .repository
            .arm_statistics(tenant, project, key, phase.number)
            .await?
        {
            match metric.as_str() {
                UNITS_ROW => units.push((variant, arm.n as i64)),
                MULTIPLE_ROW => multiple_exposures += arm.n as i64,
                _ => {
                    sums.insert((metric, variant), arm);
                }
            }
        }
        // Percentile caps depend on every unit's value: those metrics' sums are taken over
        // the per-unit values, capped, instead of the running sums.
        for (metric_key, percentile, cap_y) in spec.percentile_capped(&metrics) {
            let scope = PhaseMetric {
                tenant,
                project,
                experiment: key,
                phase: phase.number,
                metric: metric_key,
            };
            let capped = self.repository.winsorized_statistics(&scope, percentile, cap_y).await?;
            for (variant, arm) in capped {
                sums.insert((metric_key.to_owned(), variant), arm);
            }
        }
        let mut results = results::compute(&Inputs {
            spec,
            phase,
            metrics: &metrics,
            sums: &sums,
            units: &units,
            multiple_exposures,
            pending_batches,
        });
        results.rebuild = rebuild;
        if let Some(dimension) = dimension {
            results.breakdown = Some(self.breakdown(scope, spec, &metrics, dimension).await?);
        }
        Ok(results)
    }
}
