//! The API key store: keys created, listed and revoked at runtime by a tenant's admin, kept
//! in the database (hashed) and mirrored into the in-memory [`KeyDirectory`] that
//! authenticates calls. Replicas of config-service learn of a change through the bus and
//! reload the set from the database; other services follow `WatchApiKeys`. Because the
//! database is the record and every reload reads the whole active set, a lost bus message
//! delays a change by at most one resync interval and never loses it.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::Notify;

use bytes::Bytes;
use futures::StreamExt;
use switchyard_platform::{
    Shutdown,
    audit::AuditEntry,
    auth::{
        AuthError, KEY_SYNC_SCOPE, Principal, Role, RoleBinding,
        directory::{Access, DirectoryKey, KeyDirectory},
        generate_api_key,
    },
    bus::ChangeBus,
    error::FieldViolation,
};

use super::{
    error::{ConfigError, ConfigResult},
    input::{MAX_DISPLAY_NAME, check_length},
    model::now_ms,
    repository::StoreResult,
    store::{Caller, digest_text},
};

/// The bus topic that tells replicas the key set changed.
pub const TOPIC: &str = "config.api-keys";
/// Scopes under this prefix belong to Switchyard's own services; keys made here cannot carry them.
const RESERVED_SCOPE_PREFIX: &str = "switchyard:";
const MAX_BINDINGS: usize = 32;
const MAX_SCOPE_LENGTH: usize = 64;

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    pub id: String,
    pub tenant: String,
    pub sha256: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub creator: String,
    pub created_ms: i64,
    pub expire_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

impl StoredApiKey {
    fn directory_key(&self) -> DirectoryKey {
        DirectoryKey {
            record: switchyard_platform::auth::ApiKeyRecord {
                id: self.id.clone(),
                sha256: self.sha256.clone(),
                tenant: self.tenant.clone(),
                roles: self.roles.clone(),
                scopes: self.scopes.clone(),
            },
            expire_ms: self.expire_ms,
        }
    }

    fn digest(&self) -> String {
        digest_text(&format!(
            "{}|{}|{}|{:?}|{:?}|{:?}",
            self.id,
            self.display_name,
            self.roles.join(","),
            self.scopes,
            self.expire_ms,
            self.revoked_ms
        ))
    }
}

/// What a new key is for and may do.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub display_name: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub expire_ms: Option<i64>,
}

/// Keyset position in a tenant's keys, oldest first: (created_ms, id) of the last key seen.
pub type KeyCursor = (i64, String);

/// What the key store needs from storage; every mutation writes its audit entry in the same
/// transaction.
pub trait ApiKeyRepository: Send + Sync + 'static {
    fn insert_api_key(&self, key: &StoredApiKey, audit: &AuditEntry) -> impl Future<Output = StoreResult<()>> + Send;
    fn api_key(&self, tenant: &str, id: &str) -> impl Future<Output = StoreResult<Option<StoredApiKey>>> + Send;
    /// The tenant's keys after `after`, oldest first; inactive ones only when asked.
    fn list_api_keys(
        &self,
        tenant: &str,
        after: Option<&KeyCursor>,
        include_inactive: bool,
        now_ms: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<StoredApiKey>>> + Send;
    /// Marks the key revoked at `now_ms` unless it already is; returns it as stored after.
    fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        now_ms: i64,
        audit: &AuditEntry,
    ) -> impl Future<Output = StoreResult<Option<StoredApiKey>>> + Send;
    /// Every tenant's keys that are neither revoked nor expired at `now_ms`, with the
    /// store's revision.
    fn active_api_keys(&self, now_ms: i64) -> impl Future<Output = StoreResult<(u64, Vec<StoredApiKey>)>> + Send;
    /// Raises `last_used_ms` of each key to the given time.
    fn record_api_key_uses(&self, uses: &[(String, i64)]) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every environment whose flags evaluate without a key, as (tenant, project, environment).
    fn public_environments(&self) -> impl Future<Output = StoreResult<Vec<(String, String, String)>>> + Send;
}

/// The use cases of the key store.
#[derive(Debug)]
pub struct ApiKeys<R> {
    repository: Arc<R>,
    directory: Arc<KeyDirectory>,
    bus: Arc<dyn ChangeBus>,
}

impl<R: ApiKeyRepository> ApiKeys<R> {
    pub fn new(repository: Arc<R>, directory: Arc<KeyDirectory>, bus: Arc<dyn ChangeBus>) -> Self {
        Self {
            repository,
            directory,
            bus,
        }
    }

    pub fn directory(&self) -> &Arc<KeyDirectory> {
        &self.directory
    }

    /// Creates a key for the caller's tenant; returns it with its secret, shown only now.
    pub async fn create(&self, caller: Caller<'_>, spec: KeySpec) -> ConfigResult<(StoredApiKey, String)> {
        caller.require(Role::Admin, "apiKeys")?;
        let now = now_ms();
        check_spec(&spec, now)?;
        let generated = generate_api_key(caller.tenant(), &[]);
        let key = StoredApiKey {
            id: generated.record.id,
            tenant: caller.tenant().to_owned(),
            sha256: generated.record.sha256,
            display_name: spec.display_name.trim().to_owned(),
            roles: spec.roles,
            scopes: spec.scopes,
            creator: caller.principal.subject.clone(),
            created_ms: now,
            expire_ms: spec.expire_ms,
            revoked_ms: None,
            last_used_ms: None,
        };
        let audit = caller.audit("apiKey.create", &name_of(&key.id), None, Some(key.digest()));
        self.repository.insert_api_key(&key, &audit).await?;
        self.announce().await?;
        Ok((key, generated.plaintext))
    }

    pub async fn list(
        &self,
        caller: Caller<'_>,
        after: Option<&KeyCursor>,
        include_inactive: bool,
        limit: i64,
    ) -> ConfigResult<Vec<StoredApiKey>> {
        caller.require(Role::Admin, "apiKeys")?;
        Ok(self
            .repository
            .list_api_keys(caller.tenant(), after, include_inactive, now_ms(), limit)
            .await?)
    }

    /// Revokes a key of the caller's tenant; it stops working everywhere. Idempotent.
    pub async fn revoke(&self, caller: Caller<'_>, id: &str) -> ConfigResult<StoredApiKey> {
        caller.require(Role::Admin, "apiKeys")?;
        let name = name_of(id);
        let before = self
            .repository
            .api_key(caller.tenant(), id)
            .await?
            .ok_or_else(|| ConfigError::NotFound(name.clone()))?;
        if before.revoked_ms.is_some() {
            return Ok(before);
        }
        let mut after = before.clone();
        after.revoked_ms = Some(now_ms());
        let audit = caller.audit("apiKey.revoke", &name, Some(before.digest()), Some(after.digest()));
        let revoked = self
            .repository
            .revoke_api_key(caller.tenant(), id, now_ms(), &audit)
            .await?
            .ok_or(ConfigError::NotFound(name))?;
        self.announce().await?;
        Ok(revoked)
    }

    /// Stores when keys were last used, as another service reports them.
    pub async fn record_uses(&self, principal: &Principal, uses: &[(String, i64)]) -> ConfigResult<()> {
        require_key_sync(principal)?;
        Ok(self.repository.record_api_key_uses(uses).await?)
    }

    /// Reads the active keys and the public environments from the database into the directory.
    pub async fn reload(&self) -> ConfigResult<()> {
        let (revision, keys) = self.repository.active_api_keys(now_ms()).await?;
        let public = self
            .repository
            .public_environments()
            .await?
            .into_iter()
            .map(|(tenant, project, environment)| {
                Access::public_entry(&tenant, &format!("projects/{project}/environments/{environment}"))
            })
            .collect();
        let keys = keys.iter().map(StoredApiKey::directory_key);
        self.directory.replace(revision, Access::new(keys, public));
        Ok(())
    }

    /// After a change: this replica reloads at once, the others when the bus tells them.
    async fn announce(&self) -> ConfigResult<()> {
        self.reload().await?;
        if let Err(error) = self.bus.publish(TOPIC, Bytes::new()).await {
            tracing::warn!(%error, "announcing an API key change; replicas catch up at their next resync");
        }
        Ok(())
    }

    /// Reloads on every bus message and every `interval`, and announces when `access_changed`
    /// says an environment was made public or private here, until shutdown.
    pub async fn follow(self: Arc<Self>, interval: Duration, access_changed: Arc<Notify>, shutdown: Shutdown) {
        let mut messages = match self.bus.subscribe(TOPIC).await {
            Ok(messages) => Some(messages),
            Err(error) => {
                tracing::warn!(%error, "cannot follow API key changes on the bus; resyncing only");
                None
            }
        };
        let mut resync = tokio::time::interval(interval);
        loop {
            let message = async {
                match messages.as_mut() {
                    Some(messages) => messages.next().await,
                    None => std::future::pending().await,
                }
            };
            let announce = tokio::select! {
                _ = message => false,
                _ = resync.tick() => false,
                () = access_changed.notified() => true,
                () = shutdown.cancelled() => return,
            };
            let reloaded = match announce {
                true => self.announce().await,
                false => self.reload().await,
            };
            if let Err(error) = reloaded {
                tracing::warn!(%error, "reloading API keys");
            }
        }
    }

    /// Stores the uses this replica saw, every `interval`, until shutdown (and once more then).
    pub async fn store_uses(self: Arc<Self>, interval: Duration, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                () = shutdown.cancelled() => true,
            };
            let uses = self.directory.take_uses();
            if !uses.is_empty()
                && let Err(error) = self.repository.record_api_key_uses(&uses).await
            {
                tracing::warn!(%error, "storing API key uses");
            }
            if stopping {
                return;
            }
        }
    }
}

/// Only Switchyard's own services, with a settings key carrying the sync scope, may read
/// every tenant's key hashes.
pub fn require_key_sync(principal: &Principal) -> ConfigResult<()> {
    if principal.scopes.iter().any(|scope| scope == KEY_SYNC_SCOPE) {
        return Ok(());
    }
    Err(AuthError::Forbidden(format!("the `{KEY_SYNC_SCOPE}` scope is required")).into())
}

pub fn name_of(id: &str) -> String {
    format!("apiKeys/{id}")
}

fn check_spec(spec: &KeySpec, now: i64) -> ConfigResult<()> {
    let mut violations = Vec::new();
    let display_name = spec.display_name.trim();
    if display_name.is_empty() {
        violations.push(FieldViolation::new("display_name", "required: say what the key is for"));
    } else if let Err(ConfigError::Invalid(mut too_long)) = check_length("display_name", display_name, MAX_DISPLAY_NAME)
    {
        violations.append(&mut too_long);
    }
    if spec.roles.is_empty() {
        violations.push(FieldViolation::new(
            "roles",
            "at least one role binding, such as `viewer` or `editor:projects/shop`",
        ));
    }
    if spec.roles.len() > MAX_BINDINGS || spec.scopes.len() > MAX_BINDINGS {
        violations.push(FieldViolation::new(
            "roles",
            format!("at most {MAX_BINDINGS} roles and {MAX_BINDINGS} scopes"),
        ));
    }
    for (index, role) in spec.roles.iter().enumerate() {
        if let Err(error) = role.parse::<RoleBinding>() {
            violations.push(FieldViolation::new(format!("roles[{index}]"), error.to_string()));
        }
    }
    for (index, scope) in spec.scopes.iter().enumerate() {
        if let Some(problem) = scope_problem(scope) {
            violations.push(FieldViolation::new(format!("scopes[{index}]"), problem));
        }
    }
    if spec.expire_ms.is_some_and(|expire| expire <= now) {
        violations.push(FieldViolation::new("expire_time", "must be in the future"));
    }
    if violations.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid(violations))
}

fn scope_problem(scope: &str) -> Option<String> {
    let well_formed = (1..=MAX_SCOPE_LENGTH).contains(&scope.len())
        && scope.starts_with(|c: char| c.is_ascii_lowercase())
        && scope
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '-' | '.' | '_'));
    if !well_formed {
        return Some(format!(
            "`{scope}`: up to {MAX_SCOPE_LENGTH} lowercase letters, digits and `:-._`, such as secrets:reveal"
        ));
    }
    if scope.starts_with(RESERVED_SCOPE_PREFIX) {
        return Some(format!(
            "`{scope}` is reserved for Switchyard's own services (settings keys only)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(roles: &[&str], scopes: &[&str]) -> KeySpec {
        KeySpec {
            display_name: "ci deploys".into(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            expire_ms: None,
        }
    }

    fn fields(result: ConfigResult<()>) -> Vec<String> {
        match result {
            Err(ConfigError::Invalid(violations)) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_spec_passes() {
        assert!(check_spec(&spec(&["editor:projects/shop"], &["secrets:reveal"]), 0).is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut bad = spec(
            &["owner", "editor:projects/../x"],
            &["switchyard:key-sync", "Bad Scope"],
        );
        bad.display_name = "x".repeat(201);
        bad.expire_ms = Some(5);
        assert_eq!(
            fields(check_spec(&bad, 10)),
            [
                "display_name",
                "roles[0]",
                "roles[1]",
                "scopes[0]",
                "scopes[1]",
                "expire_time"
            ]
        );
    }

    #[test]
    fn a_key_needs_a_role_and_a_purpose() {
        let mut bare = spec(&[], &[]);
        bare.display_name = "  ".into();
        assert_eq!(fields(check_spec(&bare, 0)), ["display_name", "roles"]);
    }
}
