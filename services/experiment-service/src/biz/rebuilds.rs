//! Rebuilding kept sums after a metric changes. The sums were computed with the old
//! definition; the experiments that use the metric (directly, or as a part of a ratio), and
//! the holdout comparisons that measure it, are recounted from raw events in the background —
//! asked for in the metric's own write transaction, worked through by the aggregator in
//! chunks, with the progress in results.

use std::collections::HashMap;

use super::{
    error::ExperimentResult,
    flags::Flags,
    holdout_comparison::comparison_key,
    management::Manager,
    model::{MetricDefinition, MetricKind},
    repository::ExperimentRepository,
};

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    /// The analysis keys (started experiments, holdout comparisons) whose sums depend on metric
    /// `key`.
    pub(super) async fn experiments_using(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> ExperimentResult<Vec<String>> {
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
            let mut depends = false;
            for metric in &keys {
                if metric == key {
                    depends = true;
                    break;
                }
                if !metrics.contains_key(metric) {
                    let stored = self.repository.metric(tenant, project, metric).await?;
                    metrics.insert(metric.clone(), stored.map(|stored| stored.definition));
                }
                let ratio_of_it = metrics.get(metric).and_then(Option::as_ref).is_some_and(|definition| {
                    definition.kind == MetricKind::Ratio
                        && (definition.numerator == key || definition.denominator == key)
                });
                if ratio_of_it {
                    depends = true;
                    break;
                }
            }
            if depends {
                using.push(analysis);
            }
        }
        Ok(using)
    }
}
