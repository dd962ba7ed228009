//! What experiment-service needs from storage. Each write of a metric or an experiment carries
//! the version it expects to replace and a [`WriteContext`] for its history row and audit
//! record, applied in one transaction; ingestion stores whole batches the same way.

use std::{collections::HashSet, future::Future};

use super::{
    error::StoreError,
    ingest::{NewEvent, NewExposure},
    layers::{Holdout, Layer},
    model::{ExperimentDefinition, MetricDefinition, State, StoredExperiment, StoredMetric},
    sums::Sums,
};

/// What a write expects to find, for optimistic concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Creating: nothing with this key yet.
    Absent,
    /// Exactly this version (the etag the caller read).
    Version(i64),
}

/// Who writes, why, and what the audit trail calls it.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub tenant: String,
    pub project: String,
    pub author: String,
    pub message: String,
    pub request_id: Option<String>,
    /// `create`, `update`, `start`, `stop`, `archive`.
    pub action: &'static str,
}

/// Kept sums to recount from raw events: of an analysis (an experiment, or a holdout's
/// comparison key), the `metrics` that changed (every metric when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildRequest {
    pub analysis: String,
    pub metrics: Vec<String>,
}

/// One metric of one phase of an experiment.
#[derive(Debug, Clone, Copy)]
pub struct PhaseMetric<'a> {
    pub tenant: &'a str,
    pub project: &'a str,
    pub experiment: &'a str,
    pub phase: u32,
    pub metric: &'a str,
}

/// One entry of an experiment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentVersion {
    pub version: i64,
    pub action: String,
    pub author: String,
    pub message: String,
    pub created_ms: i64,
    pub definition: ExperimentDefinition,
}

pub trait ExperimentRepository: Send + Sync + 'static {
    /// Creates or replaces a metric and, in the same transaction, asks for the kept sums that
    /// `rebuild` names to be recounted from raw events; returns the metric's new version.
    fn write_metric(
        &self,
        context: &WriteContext,
        key: &str,
        expected: Expected,
        definition: &MetricDefinition,
        rebuild: &[RebuildRequest],
        now_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// How far the rebuild of an experiment's sums is: (units done, units in all), while one runs.
    fn rebuild_progress(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
    ) -> impl Future<Output = Result<Option<(i64, i64)>, StoreError>> + Send;

    fn metric(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredMetric>, StoreError>> + Send;

    /// Metrics by key after `after`, at most `limit`.
    fn metrics(
        &self,
        tenant: &str,
        project: &str,
        after: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<StoredMetric>, StoreError>> + Send;

    /// Creates or replaces an experiment, with a history row and, when `rebuild`, a request in
    /// the same transaction to recount its kept sums from raw events; returns its new version.
    fn write_experiment(
        &self,
        context: &WriteContext,
        key: &str,
        expected: Expected,
        definition: &ExperimentDefinition,
        rebuild: bool,
        now_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    fn experiment(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredExperiment>, StoreError>> + Send;

    /// Experiments by key after `after`, optionally in one state, at most `limit`.
    fn experiments(
        &self,
        tenant: &str,
        project: &str,
        state: Option<State>,
        after: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<StoredExperiment>, StoreError>> + Send;

    /// Creates a layer (`Exists` when the key is taken), audited.
    fn create_layer(
        &self,
        context: &WriteContext,
        key: &str,
        layer: &Layer,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A project's layers, by key, with when each was created.
    fn layers(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = Result<Vec<(String, Layer, i64)>, StoreError>> + Send;

    /// Creates a holdout (`Exists` when the key is taken), audited.
    fn create_holdout(
        &self,
        context: &WriteContext,
        key: &str,
        holdout: &Holdout,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A project's holdouts, by key, with when each was created.
    fn holdouts(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = Result<Vec<(String, Holdout, i64)>, StoreError>> + Send;

    /// Every running experiment of every tenant, as (tenant, project, key): what the
    /// guardrail check looks at.
    fn running_experiments(&self) -> impl Future<Output = Result<Vec<(String, String, String)>, StoreError>> + Send;

    /// An experiment's versions, newest first, below `before`, at most `limit`.
    fn experiment_versions(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ExperimentVersion>, StoreError>> + Send;

    /// The event names the project's metrics count.
    fn event_names(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// Stores exposures whose ids are new (and moves each unit's first exposure and
    /// multiple-arm flag), in one transaction; per exposure, whether it was new.
    fn store_exposures(
        &self,
        tenant: &str,
        project: &str,
        exposures: &[NewExposure],
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Stores events whose ids are new, in one transaction; per event, whether it was new.
    fn store_events(
        &self,
        tenant: &str,
        project: &str,
        events: &[NewEvent],
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Forgets the ids of exposures and events received before `before_ms`; how many.
    fn forget_ids(&self, before_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Units per arm of one phase (single-arm units only), and units that saw several arms.
    fn exposure_counts(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
        phase: u32,
    ) -> impl Future<Output = Result<(Vec<(String, i64)>, i64), StoreError>> + Send;

    /// Folds the oldest acknowledged batch into the aggregates; false when none is pending.
    fn fold_pending(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The kept sums of one phase: (metric, variant, sums).
    fn arm_statistics(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
        phase: u32,
    ) -> impl Future<Output = Result<Vec<(String, String, Sums)>, StoreError>> + Send;

    /// The sums of one metric of a phase with each unit's value (x, and y when `cap_y`) capped
    /// at the `percentile` of all units' values (winsorized), read from the per-unit rows:
    /// (variant, sums). The cap is the value at rank ⌊p·(n−1)⌋ of the sorted values.
    fn winsorized_statistics(
        &self,
        scope: &PhaseMetric<'_>,
        percentile: f64,
        cap_y: bool,
    ) -> impl Future<Output = Result<Vec<(String, Sums)>, StoreError>> + Send;

    /// The kept sums of one dimension of a phase: (stored slice, metric, variant, sums).
    fn dimension_statistics(
        &self,
        tenant: &str,
        project: &str,
        experiment: &str,
        phase: u32,
        dimension: &str,
    ) -> impl Future<Output = Result<Vec<(String, String, String, Sums)>, StoreError>> + Send;

    /// Every unit's (stored slice in `dimension`, variant, x, y) for one metric of a phase.
    fn unit_values_by_slice(
        &self,
        scope: &PhaseMetric<'_>,
        dimension: &str,
    ) -> impl Future<Output = Result<Vec<(String, String, f64, f64)>, StoreError>> + Send;

    /// Batches of a project acknowledged but not yet in the aggregates.
    fn pending_batches(&self, tenant: &str, project: &str) -> impl Future<Output = Result<i64, StoreError>> + Send;
}
