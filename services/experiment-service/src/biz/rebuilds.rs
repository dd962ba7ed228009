//! Rebuilding kept sums after a metric changes. The sums were computed with the old
//! definition; the experiments that use the metric (directly, or as a part of a ratio) are
//! recounted from raw events in the background — asked for in the metric's own write
//! transaction, worked through by the aggregator in chunks, with the progress in results.

use super::{
    error::ExperimentResult, flags::Flags, management::Manager, model::MetricKind, repository::ExperimentRepository,
};

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    /// The started experiments whose sums depend on metric `key`.
    pub(super) async fn experiments_using(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> ExperimentResult<Vec<String>> {
        let mut using = Vec::new();
        for experiment in self.started_experiments(tenant, project).await? {
            let mut depends = false;
            for metric in experiment.definition.spec.metric_keys() {
                if metric == key {
                    depends = true;
                    break;
                }
                let Some(stored) = self.repository.metric(tenant, project, metric).await? else {
                    continue;
                };
                let definition = &stored.definition;
                if definition.kind == MetricKind::Ratio
                    && (definition.numerator == key || definition.denominator == key)
                {
                    depends = true;
                    break;
                }
            }
            if depends {
                using.push(experiment.key);
            }
        }
        Ok(using)
    }
}
