//! Results broken down by a dimension: each shown slice's kept sums analysed on their own, as
//! the totals are (percentile caps taken over all units, so slices compare with the total).

use std::collections::{BTreeMap, HashMap};

use super::{
    dimensions::{Slice, SliceSums, top_slices, winsorized_slices},
    error::ExperimentResult,
    flags::Flags,
    management::Manager,
    model::{ExperimentSpec, MetricDefinition, Phase},
    repository::{ExperimentRepository, PhaseMetric},
    results::{self, Breakdown, Inputs, SliceResult},
    unit_values::{MULTIPLE_ROW, UNITS_ROW},
};

/// One phase of one experiment (or holdout comparison) of a tenant's project.
#[derive(Debug, Clone, Copy)]
pub struct PhaseScope<'a> {
    pub tenant: &'a str,
    pub project: &'a str,
    pub experiment: &'a str,
    pub phase: &'a Phase,
}

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    pub(super) async fn breakdown(
        &self,
        scope: &PhaseScope<'_>,
        spec: &ExperimentSpec,
        metrics: &HashMap<String, MetricDefinition>,
        dimension: &str,
    ) -> ExperimentResult<Breakdown> {
        let rows = self
            .repository
            .dimension_statistics(
                scope.tenant,
                scope.project,
                scope.experiment,
                scope.phase.number,
                dimension,
            )
            .await?;
        let mut slices: BTreeMap<Slice, SliceSums> = BTreeMap::new();
        for (stored, metric, variant, sums) in rows {
            slices
                .entry(Slice::from_stored(&stored))
                .or_default()
                .insert((metric, variant), sums);
        }
        self.cap_slices(scope, spec, metrics, dimension, &mut slices).await?;
        let slices = top_slices(slices, UNITS_ROW)
            .into_iter()
            .map(|(slice, sums)| analyse_slice(spec, scope.phase, metrics, slice, &sums))
            .collect();
        Ok(Breakdown {
            dimension: dimension.to_owned(),
            slices,
        })
    }

    /// Replaces the running sums of percentile-capped metrics with sums over capped values.
    async fn cap_slices(
        &self,
        scope: &PhaseScope<'_>,
        spec: &ExperimentSpec,
        metrics: &HashMap<String, MetricDefinition>,
        dimension: &str,
        slices: &mut BTreeMap<Slice, SliceSums>,
    ) -> ExperimentResult<()> {
        for (key, percentile, cap_y) in spec.percentile_capped(metrics) {
            let unit_scope = PhaseMetric {
                tenant: scope.tenant,
                project: scope.project,
                experiment: scope.experiment,
                phase: scope.phase.number,
                metric: key,
            };
            let values = self.repository.unit_values_by_slice(&unit_scope, dimension).await?;
            for sums in slices.values_mut() {
                sums.retain(|(metric, _), _| metric != key);
            }
            for ((stored, variant), sums) in winsorized_slices(values, percentile, cap_y) {
                slices
                    .entry(Slice::from_stored(&stored))
                    .or_default()
                    .insert((key.to_owned(), variant), sums);
            }
        }
        Ok(())
    }
}

fn analyse_slice(
    spec: &ExperimentSpec,
    phase: &Phase,
    metrics: &HashMap<String, MetricDefinition>,
    slice: Slice,
    sums: &SliceSums,
) -> SliceResult {
    let units: Vec<(String, i64)> = sums
        .iter()
        .filter(|((metric, _), _)| metric == UNITS_ROW)
        .map(|((_, variant), sums)| (variant.clone(), sums.n as i64))
        .collect();
    let multiple_exposures = sums
        .iter()
        .filter(|((metric, _), _)| metric == MULTIPLE_ROW)
        .map(|(_, sums)| sums.n as i64)
        .sum();
    let results = results::compute(&Inputs {
        spec,
        phase,
        metrics,
        sums,
        units: &units,
        multiple_exposures,
        pending_batches: 0,
    });
    SliceResult {
        slice,
        units: results.units,
        metrics: results.metrics,
        srm_p_value: results.health.srm_p_value,
    }
}
