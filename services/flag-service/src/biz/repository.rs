//! What flag management needs from storage. Every write goes through one [`Changeset`], which
//! the repository applies in one transaction together with the version history, the project
//! revision that replicas follow, and the audit records.

use std::future::Future;

use switchyard_platform::audit::{AuditFilter, AuditRecord};

use super::{
    error::StoreError,
    model::{FlagDefinition, ProjectFlags, SegmentDefinition},
    schedule::{ScheduleStatus, ScheduledChange},
};

/// A stored flag.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlag {
    pub key: String,
    pub definition: FlagDefinition,
    pub version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One entry of a flag's history.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagVersion {
    pub version: i64,
    pub definition: FlagDefinition,
    pub author: String,
    pub message: String,
    pub created_ms: i64,
}

/// A stored segment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSegment {
    pub key: String,
    pub definition: SegmentDefinition,
    pub version: i64,
    pub updated_ms: i64,
}

/// Evaluations of one flag in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentUsage {
    pub environment: String,
    /// Variant → evaluations (`""`: no variant served).
    pub evaluations: Vec<(String, i64)>,
    pub last_ms: i64,
}

/// Counts to add for one flag variant in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub tenant: String,
    pub project: String,
    pub environment: String,
    pub flag: String,
    pub variant: String,
    pub evaluations: i64,
    pub last_ms: i64,
}

/// What a write expects to find, for optimistic concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Creating: nothing with this key yet.
    Absent,
    /// Exactly this version (the etag the caller read).
    Version(i64),
    /// Whatever is there, or nothing (imports).
    Any,
}

#[derive(Debug, Clone)]
pub struct FlagWrite {
    pub key: String,
    pub expected: Expected,
    pub definition: FlagDefinition,
}

#[derive(Debug, Clone)]
pub struct SegmentWrite {
    pub key: String,
    pub expected: Expected,
    /// `None` deletes the segment.
    pub definition: Option<SegmentDefinition>,
}

/// Writes to one project, applied together or not at all.
#[derive(Debug, Clone)]
pub struct Changeset {
    pub tenant: String,
    pub project: String,
    pub author: String,
    pub message: String,
    pub request_id: Option<String>,
    /// The audit action, such as `flags.update`.
    pub action: &'static str,
    /// The project revision the write was validated against; the commit fails with
    /// `ProjectMoved` if the project has moved on since.
    pub expected_revision: i64,
    /// The pending scheduled change this write applies; the commit marks it applied, or fails
    /// with `Stale` when it is no longer pending (another replica applied it).
    pub scheduled: Option<String>,
    pub flags: Vec<FlagWrite>,
    pub segments: Vec<SegmentWrite>,
}

/// What a committed changeset produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new version of each written flag, in changeset order.
    pub flag_versions: Vec<i64>,
    /// The project's new revision.
    pub revision: i64,
}

pub trait FlagRepository: Send + Sync + 'static {
    fn commit(&self, changeset: &Changeset, now_ms: i64) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Every flag and segment of a project, with its revision (0 when it has none).
    fn project(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = Result<(ProjectFlags, i64), StoreError>> + Send;

    fn flag(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredFlag>, StoreError>> + Send;

    /// Flags by key after `after`, at most `limit`.
    fn flags(
        &self,
        tenant: &str,
        project: &str,
        after: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<StoredFlag>, StoreError>> + Send;

    /// A flag's versions, newest first, below `before`, at most `limit`.
    fn versions(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<FlagVersion>, StoreError>> + Send;

    fn version(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        version: i64,
    ) -> impl Future<Output = Result<Option<FlagVersion>, StoreError>> + Send;

    fn segments(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = Result<Vec<StoredSegment>, StoreError>> + Send;

    /// Stores a pending scheduled change (and its audit record).
    fn schedule(
        &self,
        change: &ScheduledChange,
        request_id: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A flag's scheduled changes, soonest first.
    fn scheduled(
        &self,
        tenant: &str,
        project: &str,
        flag: &str,
    ) -> impl Future<Output = Result<Vec<ScheduledChange>, StoreError>> + Send;

    fn scheduled_change(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<ScheduledChange>, StoreError>> + Send;

    /// Moves a pending change to `status` (cancelled or failed, with `failure`); `Stale` when it
    /// is no longer pending.
    fn settle_scheduled(
        &self,
        tenant: &str,
        id: &str,
        status: ScheduleStatus,
        failure: Option<&str>,
        actor: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Pending changes due by `now_ms`, of every tenant, oldest first.
    fn due(&self, now_ms: i64, limit: i64) -> impl Future<Output = Result<Vec<ScheduledChange>, StoreError>> + Send;

    /// Adds evaluation counts and moves last-evaluated times forward.
    fn record_usage(&self, rows: &[UsageRow]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A flag's evaluations per environment.
    fn usage(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<EnvironmentUsage>, StoreError>> + Send;

    /// The last evaluation of each flag of a project that was ever evaluated.
    fn last_evaluations(
        &self,
        tenant: &str,
        project: &str,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;

    fn audit(
        &self,
        tenant: &str,
        filter: &AuditFilter,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// Every project's revision, for replicas to see what moved.
    fn revisions(&self) -> impl Future<Output = Result<Vec<(String, String, i64)>, StoreError>> + Send;
}
