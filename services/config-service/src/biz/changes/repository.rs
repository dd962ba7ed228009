//! What change requests need from storage; `data::changes` implements it.

use std::future::Future;

use switchyard_platform::audit::AuditEntry;

use super::model::{ChangeRequest, ChangeState};
use crate::biz::{model::EnvKey, repository::StoreResult};

pub trait ChangeRepository: Send + Sync + 'static {
    /// Inserts a change request, numbering it within its environment.
    fn create_change(
        &self,
        change: &ChangeRequest,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<ChangeRequest>> + Send;
    fn change(&self, env: &EnvKey, number: i64) -> impl Future<Output = StoreResult<Option<ChangeRequest>>> + Send;
    /// Newest first; only `state` when given; numbers below `before` (0: no bound).
    fn list_changes(
        &self,
        env: &EnvKey,
        state: Option<ChangeState>,
        before: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<ChangeRequest>>> + Send;
    /// Stores `change` (whose `revision` is `from_revision + 1`); `Conflict` when it moved on.
    fn update_change(
        &self,
        change: &ChangeRequest,
        from_revision: i64,
        audit: &[AuditEntry],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Scheduled changes due at `now_ms`, of every tenant.
    fn due_changes(&self, now_ms: i64, limit: i64) -> impl Future<Output = StoreResult<Vec<ChangeRequest>>> + Send;
}
