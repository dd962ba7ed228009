//! Data keys for secret values: one active data key per tenant, wrapped under the settings'
//! key-encryption key and stored; unwrapped keys are cached in memory so that opening a
//! secret on the read path costs one AES-GCM decryption and no I/O.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use serde_json::Value;
use switchyard_platform::audit::AuditEntry;

use super::{
    error::{ConfigError, ConfigResult},
    model::{StoredDataKey, now_ms},
    repository::Repository,
    secrets::{self, DataKey, Keyring, SecretError, WrappedKey},
};

#[derive(Debug)]
pub struct Keystore<R> {
    repository: Arc<R>,
    keyring: Option<Keyring>,
    /// Data key id → unwrapped key.
    keys: RwLock<HashMap<String, Arc<DataKey>>>,
    /// Tenant → the data key new secrets are sealed with.
    active: RwLock<HashMap<String, Arc<DataKey>>>,
}

fn wrapped(stored: &StoredDataKey) -> WrappedKey {
    WrappedKey {
        id: stored.id.clone(),
        kek_id: stored.kek_id.clone(),
        ciphertext: stored.ciphertext.clone(),
    }
}

impl<R: Repository> Keystore<R> {
    /// `keyring` is `None` when no key-encryption key is configured: configs with secrets
    /// are then refused rather than stored in clear.
    pub fn new(repository: Arc<R>, keyring: Option<Keyring>) -> Self {
        Keystore {
            repository,
            keyring,
            keys: RwLock::new(HashMap::new()),
            active: RwLock::new(HashMap::new()),
        }
    }

    fn keyring(&self) -> ConfigResult<&Keyring> {
        self.keyring.as_ref().ok_or_else(|| {
            ConfigError::FailedPrecondition(
                "this config holds secrets but no key-encryption key is configured: set [service] secret_keys"
                    .to_owned(),
            )
        })
    }

    /// Loads and unwraps every stored data key (all tenants, or one).
    async fn load(&self, tenant: Option<&str>) -> ConfigResult<()> {
        let Some(keyring) = &self.keyring else {
            return Ok(());
        };
        let stored = self.repository.data_keys(tenant).await?;
        let mut keys = self.keys.write().unwrap_or_else(|poison| poison.into_inner());
        let mut active = self.active.write().unwrap_or_else(|poison| poison.into_inner());
        for key in stored {
            let unwrapped = Arc::new(keyring.unwrap_key(&wrapped(&key))?);
            // Keys come oldest first, so the newest of a tenant ends up active.
            active.insert(key.tenant.clone(), unwrapped.clone());
            keys.insert(key.id.clone(), unwrapped);
        }
        Ok(())
    }

    /// The data key that seals the tenant's new secrets, created on first use.
    async fn active_key(&self, tenant: &str) -> ConfigResult<Arc<DataKey>> {
        if let Some(key) = self.cached_active(tenant) {
            return Ok(key);
        }
        self.load(Some(tenant)).await?;
        if let Some(key) = self.cached_active(tenant) {
            return Ok(key);
        }
        let (key, wrapped) = self.keyring()?.new_data_key()?;
        self.repository
            .insert_data_key(&StoredDataKey {
                tenant: tenant.to_owned(),
                id: wrapped.id,
                kek_id: wrapped.kek_id,
                ciphertext: wrapped.ciphertext,
                created_ms: now_ms(),
            })
            .await?;
        let key = Arc::new(key);
        self.write_keys().insert(key.id().to_owned(), key.clone());
        self.active
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(tenant.to_owned(), key.clone());
        Ok(key)
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<DataKey>>> {
        self.keys.write().unwrap_or_else(|poison| poison.into_inner())
    }

    fn cached_active(&self, tenant: &str) -> Option<Arc<DataKey>> {
        let active = self.active.read().unwrap_or_else(|poison| poison.into_inner());
        active.get(tenant).cloned()
    }

    fn cached(&self, id: &str) -> Option<Arc<DataKey>> {
        let keys = self.keys.read().unwrap_or_else(|poison| poison.into_inner());
        keys.get(id).cloned()
    }

    /// Seals a whole text (a draft holding secrets).
    pub async fn seal_text(&self, tenant: &str, text: &str) -> ConfigResult<String> {
        let key = self.active_key(tenant).await?;
        Ok(key.encrypt(text.as_bytes())?)
    }

    /// Opens a text sealed by [`Self::seal_text`]; other texts come back unchanged.
    pub async fn open_text(&self, text: &str) -> ConfigResult<String> {
        let Some(id) = secrets::sealed_key_id(text) else {
            return Ok(text.to_owned());
        };
        let key = self.key(id).await?;
        let plain = key.decrypt(text)?;
        String::from_utf8(plain).map_err(|_| ConfigError::Secrets(SecretError::Malformed("not UTF-8".to_owned())))
    }

    async fn key(&self, id: &str) -> ConfigResult<Arc<DataKey>> {
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        // Another replica may have created it since we loaded.
        self.load(None).await?;
        self.cached(id)
            .ok_or_else(|| ConfigError::Secrets(SecretError::UnknownKey(id.to_owned())))
    }

    /// Seals the values at `paths` in place.
    pub async fn seal_document(&self, tenant: &str, document: &mut Value, paths: &[String]) -> ConfigResult<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let key = self.active_key(tenant).await?;
        secrets::seal(document, paths, &key)?;
        Ok(())
    }

    /// Opens every sealed value in place, from cached keys; loads keys once when one is missing.
    pub async fn open_document(&self, document: &mut Value) -> ConfigResult<()> {
        let attempt = secrets::open(document, &|id| self.cached(id));
        match attempt {
            Err(SecretError::UnknownKey(_)) => {
                self.load(None).await?;
                secrets::open(document, &|id| self.cached(id))?;
                Ok(())
            }
            other => Ok(other?),
        }
    }

    /// Re-wraps the audit entry's tenant's data keys under the active key-encryption key, in
    /// one transaction.
    pub async fn rotate(&self, audit: AuditEntry) -> ConfigResult<(u64, String)> {
        let keyring = self.keyring()?;
        let stored = self.repository.data_keys(Some(&audit.tenant)).await?;
        let mut rewrapped = Vec::with_capacity(stored.len());
        for key in &stored {
            let fresh = keyring.rewrap(&wrapped(key))?;
            rewrapped.push(StoredDataKey {
                kek_id: fresh.kek_id,
                ciphertext: fresh.ciphertext,
                ..key.clone()
            });
        }
        self.repository.rewrap_data_keys(&rewrapped, &audit).await?;
        Ok((rewrapped.len() as u64, keyring.active_id().to_owned()))
    }
}
