//! What deployments need from storage; `data::deployments` implements it on PostgreSQL and
//! SQLite. A [`Transition`] is the unit of exactly-once: the new state, the change clients
//! are served, the events and the audit entries are written in one transaction, on condition
//! that the deployment is still at the revision the transition was computed from (and, for
//! the driver, that it still holds the lease).

use std::future::Future;

use switchyard_platform::audit::AuditEntry;

use super::{
    gates::HealthCounts,
    model::{Deployment, Event, TargetKind},
    strategy::Strategy,
};
use crate::biz::{
    model::{EnvKey, Served},
    repository::StoreResult,
};

/// How a transition changes what a config's clients are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// The deployment's release to the clients whose bucket is below this threshold (parts
    /// per million; see `threshold`); the served release stays for the others.
    Share(u32),
    /// The served release for everyone again; the rollout ends.
    Stable,
    /// This release for everyone, as the config's plain served release: the deployment's own
    /// on completion, the previous one on a revert.
    Release(i64),
}

#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// The deployment as it was read; the store refuses the write when it moved on since.
    pub from_revision: i64,
    /// The new state; its `revision` is `from_revision + 1`.
    pub deployment: &'a Deployment,
    /// Set when the driver writes: it must still hold the lease.
    pub lease_owner: Option<&'a str>,
    pub serving: Option<Serving>,
    pub events: &'a [Event],
    pub audit: &'a [AuditEntry],
    /// Change-log rows kept per environment (see `Publication::retain_changes`).
    pub retain_changes: i64,
}

/// A listing filter.
#[derive(Debug, Clone, Default)]
pub struct DeploymentFilter {
    /// Only this target (`kind`, id).
    pub target: Option<(TargetKind, String)>,
    /// Only numbers below this (keyset pagination); 0 for none.
    pub before: i64,
    pub limit: i64,
}

pub trait DeploymentRepository: Send + Sync + 'static {
    /// Creates (`expected_version` 0) or replaces a strategy; returns its new version.
    fn put_strategy(
        &self,
        tenant: &str,
        project: &str,
        strategy: &Strategy,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    fn strategy(
        &self,
        tenant: &str,
        project: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<(Strategy, i64)>>> + Send;
    fn list_strategies(&self, tenant: &str, project: &str) -> impl Future<Output = StoreResult<Vec<Strategy>>> + Send;
    fn delete_strategy(
        &self,
        tenant: &str,
        project: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Inserts a deployment, numbering it; returns it as stored.
    fn create_deployment(
        &self,
        deployment: &Deployment,
        events: &[Event],
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<Deployment>> + Send;
    fn deployment(&self, env: &EnvKey, number: i64) -> impl Future<Output = StoreResult<Option<Deployment>>> + Send;
    /// Newest first.
    fn list_deployments(
        &self,
        env: &EnvKey,
        filter: &DeploymentFilter,
    ) -> impl Future<Output = StoreResult<Vec<Deployment>>> + Send;
    /// Events after `after`, oldest first.
    fn events(
        &self,
        env: &EnvKey,
        number: i64,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<Event>>> + Send;
    /// The number of the target's active deployment, if any.
    fn active_deployment(
        &self,
        env: &EnvKey,
        kind: TargetKind,
        target: &str,
    ) -> impl Future<Output = StoreResult<Option<i64>>> + Send;

    /// Writes a transition; `Conflict` when the deployment moved on or the lease was lost,
    /// `Duplicate` when it would make a second deployment of the target active. Returns the
    /// change-log row it served, if any.
    fn transition(&self, transition: &Transition<'_>) -> impl Future<Output = StoreResult<Option<Served>>> + Send;

    /// Leases to `owner`, until `until_ms`, the deployments that need driving and whose lease
    /// expired or is already `owner`'s; returns them.
    fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<Deployment>>> + Send;
    /// Deployments leased to `owner` with events not announced yet.
    fn pending_announcements(
        &self,
        owner: &str,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<Deployment>>> + Send;
    /// Records that the events up to `sequence` were announced (by the lease holder `owner`).
    fn mark_notified(
        &self,
        deployment: &Deployment,
        sequence: i64,
        owner: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Gives up `owner`'s leases (a clean shutdown), so another replica takes over at once.
    fn release_leases(&self, owner: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Adds client-reported counts for a version, in the minute of `at_ms`.
    #[allow(clippy::too_many_arguments)]
    fn add_health(
        &self,
        env: &EnvKey,
        kind: TargetKind,
        target: &str,
        version: i64,
        at_ms: i64,
        counts: HealthCounts,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Counts reported for a version since `since_ms` (from the start of that minute).
    fn health(
        &self,
        env: &EnvKey,
        kind: TargetKind,
        target: &str,
        version: i64,
        since_ms: i64,
    ) -> impl Future<Output = StoreResult<HealthCounts>> + Send;
}
