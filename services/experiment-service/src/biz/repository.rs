//! What experiment management needs from storage. Each write is one [`Write`]: the new
//! definition, the version it expects to replace, and the history row and audit record that
//! go with it, applied in one transaction.

use std::future::Future;

use super::{
    error::StoreError,
    model::{ExperimentDefinition, MetricDefinition, State, StoredExperiment, StoredMetric},
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
    /// Creates or replaces a metric; returns its new version.
    fn write_metric(
        &self,
        context: &WriteContext,
        key: &str,
        expected: Expected,
        definition: &MetricDefinition,
        now_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

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

    /// Creates or replaces an experiment, with a history row; returns its new version.
    fn write_experiment(
        &self,
        context: &WriteContext,
        key: &str,
        expected: Expected,
        definition: &ExperimentDefinition,
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

    /// An experiment's versions, newest first, below `before`, at most `limit`.
    fn experiment_versions(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ExperimentVersion>, StoreError>> + Send;
}
