//! What the domain needs from storage. `data::SqlRepository` implements it on PostgreSQL and
//! SQLite; every method is scoped by tenant, and every mutation takes the audit entries to
//! write in the same transaction.

use std::future::Future;

use switchyard_platform::audit::{AuditEntry, AuditFilter, AuditRecord, ChainReport};

use super::model::{
    ConfigClient, ConfigDraft, ConfigFilter, EnvKey, Environment, Fetch, Project, Release, Resolution, Served,
    StoredDataKey,
};
use super::sightings::Sighting;

/// Why storage refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Duplicate,
    /// The stored version is not the expected one.
    #[error("changed concurrently")]
    Conflict,
    #[error("not found")]
    Missing,
    /// A publication's precondition no longer holds: what it was resolved from changed.
    #[error("resolved from a state that changed meanwhile")]
    Stale,
    #[error("storage: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A publication: the release to insert (if any) and the resolutions that become current,
/// in order; each resolution takes the environment's next revision.
#[derive(Debug, Clone)]
pub struct Publication {
    pub env: EnvKey,
    /// `number` and `revision` are assigned by the store.
    pub release: Option<Release>,
    pub resolutions: Vec<Resolution>,
    /// Keep at most this many change-log rows per environment (current rows are always kept).
    pub retain_changes: i64,
}

/// A whole project for import: written in one transaction or not at all.
#[derive(Debug, Clone)]
pub struct ProjectImage {
    pub project: Project,
    pub configs: Vec<ConfigDraft>,
    pub releases: Vec<Release>,
    pub current: Vec<(String, Served)>,
}

pub trait Repository: Send + Sync + 'static {
    fn create_project(
        &self,
        tenant: &str,
        project: &Project,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn project(&self, tenant: &str, id: &str) -> impl Future<Output = StoreResult<Option<Project>>> + Send;
    fn list_projects(
        &self,
        tenant: &str,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<Project>>> + Send;

    fn environment(
        &self,
        tenant: &str,
        project: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<Environment>>> + Send;
    fn create_environment(
        &self,
        tenant: &str,
        environment: &Environment,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Replaces the variables when the stored version equals `environment.version` and makes
    /// the documents re-resolved with them current, in one transaction; returns the new state
    /// and the served rows.
    fn update_environment(
        &self,
        tenant: &str,
        environment: &Environment,
        audit: &AuditEntry,
        reresolved: &Publication,
    ) -> impl Future<Output = StoreResult<(Environment, Vec<Served>)>> + Send;

    fn create_config(
        &self,
        tenant: &str,
        draft: &ConfigDraft,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn config(
        &self,
        tenant: &str,
        project: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<ConfigDraft>>> + Send;
    /// Replaces the draft when the stored version equals `expected_version`; returns it with its new version.
    fn update_config(
        &self,
        tenant: &str,
        draft: &ConfigDraft,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<ConfigDraft>> + Send;
    fn list_configs(
        &self,
        tenant: &str,
        project: &str,
        filter: &ConfigFilter,
    ) -> impl Future<Output = StoreResult<Vec<ConfigDraft>>> + Send;

    /// Configs whose `extends` names `project`/`config` directly, as (project, config).
    fn direct_dependents(
        &self,
        tenant: &str,
        project: &str,
        config: &str,
    ) -> impl Future<Output = StoreResult<Vec<(String, String)>>> + Send;

    /// Writes a publication atomically; returns the inserted release (numbered) and the served rows.
    fn publish(
        &self,
        publication: &Publication,
        audit: &[AuditEntry],
    ) -> impl Future<Output = StoreResult<(Option<Release>, Vec<Served>)>> + Send;
    /// Inserts a release (numbered by the store) that is not served: `revision` stays 0 until
    /// a deployment completes it.
    fn stage_release(&self, release: &Release, audit: &AuditEntry)
    -> impl Future<Output = StoreResult<Release>> + Send;
    fn release(
        &self,
        env: &EnvKey,
        config: &str,
        number: i64,
    ) -> impl Future<Output = StoreResult<Option<Release>>> + Send;
    /// Newest first, numbers below `before` (0 for no bound).
    fn list_releases(
        &self,
        env: &EnvKey,
        config: &str,
        before: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<Release>>> + Send;
    /// Every release of a project, for export.
    fn project_releases(&self, tenant: &str, project: &str) -> impl Future<Output = StoreResult<Vec<Release>>> + Send;
    /// What the environment serves now, with its revision and compaction point.
    fn served(&self, env: &EnvKey) -> impl Future<Output = StoreResult<(Environment, Vec<Served>)>> + Send;
    /// Change-log rows after `since`, oldest first.
    fn changes_since(
        &self,
        env: &EnvKey,
        since: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<Served>>> + Send;

    fn record_fetches(&self, fetches: &[(Fetch, i64, u64)]) -> impl Future<Output = StoreResult<()>> + Send;
    /// Notes client ids seen reading configs (their latest sighting wins).
    fn record_sightings(&self, sightings: &[Sighting]) -> impl Future<Output = StoreResult<()>> + Send;
    /// Client ids seen reading `config` since `since_ms` (at most `limit`).
    fn sighted_clients(
        &self,
        env: &EnvKey,
        config: &str,
        since_ms: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    fn clients(&self, env: &EnvKey, config: &str)
    -> impl Future<Output = StoreResult<(Vec<ConfigClient>, u64)>> + Send;

    fn data_keys(&self, tenant: Option<&str>) -> impl Future<Output = StoreResult<Vec<StoredDataKey>>> + Send;
    fn insert_data_key(&self, key: &StoredDataKey) -> impl Future<Output = StoreResult<()>> + Send;
    fn rewrap_data_keys(
        &self,
        keys: &[StoredDataKey],
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn import_project(
        &self,
        tenant: &str,
        image: &ProjectImage,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn audit_records(
        &self,
        tenant: &str,
        filter: &AuditFilter,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;
    fn verify_audit(&self, tenant: &str) -> impl Future<Output = StoreResult<ChainReport>> + Send;
}

/// `NotFound` unless the tenant has `project`.
pub async fn require_project<R: Repository>(
    repository: &R,
    tenant: &str,
    project: &str,
) -> Result<(), super::error::ConfigError> {
    match repository.project(tenant, project).await? {
        Some(_) => Ok(()),
        None => Err(super::error::ConfigError::NotFound(format!("projects/{project}"))),
    }
}
