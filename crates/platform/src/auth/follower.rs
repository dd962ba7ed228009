//! How a service other than config-service learns of keys created and revoked at runtime
//! (and of environments made public):
//! it keeps a `WatchApiKeys` stream open to config-service and replaces its
//! [`KeyDirectory`] with every set it receives, reconnecting after a failure. Every message
//! is the whole set, so a reconnect cannot leave a revoked key behind. It also reports which
//! keys it saw used, so `last_used_time` covers every service.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use switchyard_api::config::v1::{
    ApiKeySet, ApiKeyUse, RecordApiKeyUseRequest, WatchApiKeysRequest, api_key_service_client::ApiKeyServiceClient,
};
use tonic::{Request, metadata::AsciiMetadataValue, transport::Channel};

use super::{
    ApiKeyRecord,
    directory::{Access, DirectoryKey, KeyDirectory},
};
use crate::{
    proto_json::{timestamp, timestamp_ms},
    shutdown::Shutdown,
};

/// How long to wait before reconnecting, doubling up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often uses are reported to config-service.
const USE_REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// Follows config-service's key store until shutdown.
#[derive(Debug, Clone)]
pub struct KeyFollower {
    client: ApiKeyServiceClient<Channel>,
    authorization: AsciiMetadataValue,
    directory: Arc<KeyDirectory>,
}

impl KeyFollower {
    /// `credential` is a settings key with the `switchyard:key-sync` scope.
    pub fn new(channel: Channel, credential: &str, directory: Arc<KeyDirectory>) -> Result<Self, String> {
        let authorization = format!("Bearer {credential}")
            .parse()
            .map_err(|_| "auth.key_sync_credential is not ASCII".to_owned())?;
        Ok(Self {
            client: ApiKeyServiceClient::new(channel),
            authorization,
            directory,
        })
    }

    /// Starts following and reporting in the background.
    pub fn spawn(self, shutdown: Shutdown) {
        tokio::spawn(self.clone().report_uses(shutdown.clone()));
        tokio::spawn(async move {
            tokio::select! {
                () = self.follow() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    async fn follow(self) {
        let mut retry = RETRY_FIRST;
        loop {
            match self.follow_once().await {
                Ok(()) => retry = RETRY_FIRST,
                Err(error) => {
                    tracing::warn!(%error, "following config-service's API keys; retrying");
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// One stream, until it ends or fails. Ok means it delivered at least one set.
    async fn follow_once(&self) -> Result<(), String> {
        let mut client = self.client.clone();
        let mut stream = client
            .watch_api_keys(self.request(WatchApiKeysRequest {}))
            .await
            .map_err(|status| status.message().to_owned())?
            .into_inner();
        let mut delivered = false;
        while let Some(set) = stream.next().await {
            let set = set.map_err(|status| status.message().to_owned())?;
            self.apply(set);
            delivered = true;
        }
        if delivered {
            return Ok(());
        }
        Err("the stream ended before the first key set".to_owned())
    }

    fn apply(&self, set: ApiKeySet) {
        let keys = set.keys.into_iter().map(|grant| DirectoryKey {
            expire_ms: grant.expire_time.as_ref().map(timestamp_ms),
            record: ApiKeyRecord {
                id: grant.id,
                sha256: grant.sha256,
                tenant: grant.tenant,
                roles: grant.roles,
                scopes: grant.scopes,
            },
        });
        let public = set.public_environments.into_iter().collect();
        self.directory.replace(set.revision, Access::new(keys, public));
    }

    async fn report_uses(self, shutdown: Shutdown) {
        let mut interval = tokio::time::interval(USE_REPORT_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let uses: Vec<ApiKeyUse> = self
                .directory
                .take_uses()
                .into_iter()
                .map(|(id, ms)| ApiKeyUse {
                    id,
                    time: timestamp(ms),
                })
                .collect();
            if uses.is_empty() {
                continue;
            }
            let mut client = self.client.clone();
            if let Err(status) = client
                .record_api_key_use(self.request(RecordApiKeyUseRequest { uses }))
                .await
            {
                tracing::debug!(error = %status.message(), "reporting API key uses");
            }
        }
    }
}
