//! Rebuilding kept sums after a metric changes. The sums were computed with the old
//! definition; the experiments that use the metric (directly, or as a part of a ratio), and
//! the holdout comparisons that measure it, are recounted from raw events in the background —
//! only the metrics that depend on it, asked for in the metric's own write transaction, worked
//! through by the aggregator in chunks, with the progress in results.

use std::collections::HashMap;

use super::{
    error::ExperimentResult,
    flags::Flags,
    holdout_comparison::comparison_key,
    management::Manager,
    model::{MetricDefinition, MetricKind},
    repository::{ExperimentRepository, RebuildRequest},
};

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    /// The analyses (started experiments, holdout comparisons) whose sums depend on metric
    /// `key`, each with its metrics to recount: `key` itself and the ratios built on it.
    pub(super) async fn experiments_using(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> ExperimentResult<Vec<RebuildRequest>> {
        let mut analyses: Vec<(String, Vec<String>)> = self
            .started_experiments(tenant, project)
            .await?
            .into_iter()
            .map(|experiment| {
                let metrics = experiment
                    .definition
                    .spec
                    .metric_keys()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                (experiment.key, metrics)
            })
            .collect();
        for (holdout, definition, _) in self.repository.holdouts(tenant, project).await? {
            analyses.push((comparison_key(&holdout), definition.metrics));
        }
        let mut metrics: HashMap<String, Option<MetricDefinition>> = HashMap::new();
        let mut using = Vec::new();
        for (analysis, keys) in analyses {
            let mut depending = Vec::new();
            for metric in keys {
                if !metrics.contains_key(&metric) {
                    let stored = self.repository.metric(tenant, project, &metric).await?;
                    metrics.insert(metric.clone(), stored.map(|stored| stored.definition));
                }
                let ratio_of_it = metrics.get(&metric).and_then(Option::as_ref).is_some_and(|definition| {
                    definition.kind == MetricKind::Ratio
                        && (definition.numerator == key || definition.denominator == key)
                });
                if metric == key || ratio_of_it {
                    depending.push(metric);
                }
            }
            if !depending.is_empty() {
                using.push(RebuildRequest {
                    analysis,
                    metrics: depending,
                });
            }
        }
        Ok(using)
    }
}
