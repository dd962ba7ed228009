//! What governance needs from storage; `data::governance` implements it on PostgreSQL and
//! SQLite.

use std::future::Future;

use switchyard_platform::audit::AuditEntry;

use super::{freeze::FreezeWindow, policy::ApprovalPolicy};
use crate::biz::{model::EnvKey, repository::StoreResult};

/// One override of a freeze window.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakGlassUse {
    pub project: String,
    pub environment: String,
    pub actor: String,
    pub reason: String,
    /// What was done (`config.publish`, `deployment.create`, …) to which resource.
    pub action: String,
    pub resource: String,
    /// The ids of the windows it overrode.
    pub windows: Vec<String>,
    /// Whether it also went past the environment's approval policy.
    pub approval_bypassed: bool,
    pub created_ms: i64,
}

pub trait GovernanceRepository: Send + Sync + 'static {
    /// Creates (`expected_version` 0) or replaces a freeze window; returns its new version.
    fn put_window(
        &self,
        tenant: &str,
        project: &str,
        window: &FreezeWindow,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    fn windows(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = StoreResult<Vec<(FreezeWindow, i64)>>> + Send;
    fn delete_window(
        &self,
        tenant: &str,
        project: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records an override and its audit entry in one transaction.
    fn record_break_glass(
        &self,
        tenant: &str,
        used: &BreakGlassUse,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The project's overrides since `since_ms`, newest first.
    fn break_glass_uses(
        &self,
        tenant: &str,
        project: &str,
        since_ms: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<BreakGlassUse>>> + Send;

    /// Sets (`expected_version` 0: creates) an environment's approval policy.
    fn put_policy(
        &self,
        env: &EnvKey,
        policy: &ApprovalPolicy,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    fn policy(&self, env: &EnvKey) -> impl Future<Output = StoreResult<Option<(ApprovalPolicy, i64)>>> + Send;
    /// Removes the policy: the environment is no longer protected.
    fn delete_policy(&self, env: &EnvKey, audit: &AuditEntry) -> impl Future<Output = StoreResult<()>> + Send;
}
