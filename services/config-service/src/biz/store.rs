//! [`ConfigStore`]: the use cases of config-service, one method per operation, split by
//! concern across `catalog` (projects, drafts), `environments`, `publishing` (releases,
//! resolution, delivery) and `archive` (export, import); the key store is `api_keys`. This file holds what they share:
//! who may do what, and how a mutation is described to the audit trail.

use std::sync::Arc;

use tokio::sync::Notify;

use sha2::{Digest, Sha256};
use switchyard_platform::{
    audit::{AuditEntry, AuditFilter, AuditRecord, ChainReport},
    auth::{Principal, Role},
};

use super::{
    delivery::Delivery, error::ConfigResult, governance::Admission, keystore::Keystore, repository::Repository,
};

/// The scope that lets a non-admin caller read secret values in clear.
pub const REVEAL_SCOPE: &str = "secrets:reveal";

/// Who is calling, and the request to attribute changes to.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub request_id: Option<&'a str>,
    /// Why the caller overrides a freeze window (the `x-switchyard-break-glass` header).
    pub break_glass: Option<&'a str>,
    /// Set when an approved change request is being applied: the environment's approval
    /// policy has been met.
    pub change_request: Option<&'a str>,
}

impl Caller<'_> {
    pub fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    /// Requires at least `role` on `resource` in the caller's own tenant.
    pub fn require(&self, role: Role, resource: &str) -> ConfigResult<()> {
        Ok(self.principal.authorize(&self.principal.tenant, role, resource)?)
    }

    /// Requires the right to see secret values of `resource` in clear.
    pub fn require_reveal(&self, resource: &str) -> ConfigResult<()> {
        if self.principal.scopes.iter().any(|scope| scope == REVEAL_SCOPE) {
            return self.require(Role::Viewer, resource);
        }
        self.require(Role::Admin, resource)
    }

    /// An audit entry for `action` on `resource`.
    pub fn audit(&self, action: &str, resource: &str, before: Option<String>, after: Option<String>) -> AuditEntry {
        AuditEntry {
            tenant: self.principal.tenant.clone(),
            actor: self.principal.subject.clone(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            before_digest: before,
            after_digest: after,
            request_id: self.request_id.map(str::to_owned),
        }
    }
}

/// SHA-256 hex of any text, for audit digests of states that are not JSON documents.
pub fn digest_text(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Tunables of the use cases.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    pub max_page_size: i64,
    pub default_page_size: i64,
    pub max_wait: std::time::Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_page_size: 1000,
            default_page_size: 100,
            max_wait: std::time::Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
pub struct ConfigStore<R> {
    pub(super) repository: Arc<R>,
    pub(super) keystore: Arc<Keystore<R>>,
    pub(super) delivery: Arc<Delivery<R>>,
    pub(super) limits: StoreLimits,
    /// Whether a change may happen now (freeze windows).
    pub(super) admission: Arc<dyn Admission>,
    /// Signalled when an environment's evaluation access changes (made public or private),
    /// so the key store republishes it to every service.
    pub(super) access_changed: Arc<Notify>,
}

impl<R: Repository> ConfigStore<R> {
    pub fn new(
        repository: Arc<R>,
        keystore: Arc<Keystore<R>>,
        delivery: Arc<Delivery<R>>,
        admission: Arc<dyn Admission>,
        limits: StoreLimits,
    ) -> Self {
        ConfigStore {
            repository,
            keystore,
            delivery,
            admission,
            limits,
            access_changed: Arc::default(),
        }
    }

    /// Wakes whenever an environment's evaluation access changed.
    pub fn access_changes(&self) -> Arc<Notify> {
        self.access_changed.clone()
    }

    pub fn delivery(&self) -> &Arc<Delivery<R>> {
        &self.delivery
    }

    pub fn admission(&self) -> &Arc<dyn Admission> {
        &self.admission
    }

    /// A requested page size, bounded: the default when 0 or negative, at most the maximum.
    /// The service layer uses it too, to know whether a page came back full.
    pub fn page_size(&self, requested: i32) -> i64 {
        match requested {
            size if size <= 0 => self.limits.default_page_size,
            size => i64::from(size).min(self.limits.max_page_size),
        }
    }

    /// Audit records of the caller's tenant; reading the trail needs the admin role.
    pub async fn audit_records(&self, caller: Caller<'_>, filter: &AuditFilter) -> ConfigResult<Vec<AuditRecord>> {
        caller.require(Role::Admin, "audit")?;
        let filter = AuditFilter {
            limit: filter.limit.clamp(1, self.limits.max_page_size),
            ..filter.clone()
        };
        Ok(self.repository.audit_records(caller.tenant(), &filter).await?)
    }

    pub async fn verify_audit(&self, caller: Caller<'_>) -> ConfigResult<ChainReport> {
        caller.require(Role::Admin, "audit")?;
        Ok(self.repository.verify_audit(caller.tenant()).await?)
    }

    /// Re-wraps every data key under the active key-encryption key.
    pub async fn rotate_keys(&self, caller: Caller<'_>) -> ConfigResult<(u64, String)> {
        caller.require(Role::Admin, "secrets")?;
        self.keystore
            .rotate(caller.audit("secrets.rotate", "secrets", None, None))
            .await
    }
}
