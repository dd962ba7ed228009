//! The gRPC face of the key store (`switchyard.config.v1.ApiKeyService`): maps requests to
//! `biz::api_keys` and the directory to `WatchApiKeys` sets.

use std::sync::Arc;

use futures::StreamExt;
use switchyard_api::config::v1::{self as pb, api_key_service_server::ApiKeyService};
use switchyard_platform::{
    Shutdown,
    auth::{Principal, directory::KeyDirectory},
    page_token,
    proto_json::{timestamp, timestamp_ms},
    shutdown::end_on_shutdown,
};
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use super::{
    BoxStream, caller,
    requests::{next_token, position},
    status,
};
use crate::{
    biz::{
        api_keys::{ApiKeys, KeyCursor, KeySpec, StoredApiKey, require_key_sync},
        error::{ConfigError, ConfigResult},
    },
    data::SqlRepository,
};

const DEFAULT_PAGE_SIZE: i64 = 100;
const MAX_PAGE_SIZE: i64 = 1000;

/// Implements `switchyard.config.v1.ApiKeyService`.
#[derive(Debug, Clone)]
pub struct ApiKeyServiceApi {
    keys: Arc<ApiKeys<SqlRepository>>,
    shutdown: Shutdown,
}

impl ApiKeyServiceApi {
    pub fn new(keys: Arc<ApiKeys<SqlRepository>>, shutdown: Shutdown) -> Self {
        Self { keys, shutdown }
    }
}

fn api_key(key: &StoredApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: crate::biz::api_keys::name_of(&key.id),
        id: key.id.clone(),
        display_name: key.display_name.clone(),
        roles: key.roles.clone(),
        scopes: key.scopes.clone(),
        creator: key.creator.clone(),
        create_time: timestamp(key.created_ms),
        expire_time: key.expire_ms.and_then(timestamp),
        revoke_time: key.revoked_ms.and_then(timestamp),
        last_used_time: key.last_used_ms.and_then(timestamp),
    }
}

/// A page token holds the (created_ms, id) of the last key of the previous page.
fn cursor(token: &str) -> ConfigResult<Option<KeyCursor>> {
    let position = position(token)?;
    if position.is_empty() {
        return Ok(None);
    }
    position
        .split_once(':')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .map(Some)
        .ok_or_else(|| ConfigError::invalid("page_token", "not a token this list issued"))
}

fn key_id(name: &str) -> ConfigResult<&str> {
    name.strip_prefix("apiKeys/")
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| ConfigError::invalid("name", "expected `apiKeys/{id}`"))
}

fn key_set(directory: &KeyDirectory) -> pb::ApiKeySet {
    let (revision, access) = directory.snapshot();
    pb::ApiKeySet {
        revision,
        keys: access
            .keys
            .values()
            .map(|key| pb::ApiKeyGrant {
                id: key.record.id.clone(),
                sha256: key.record.sha256.clone(),
                tenant: key.record.tenant.clone(),
                roles: key.record.roles.clone(),
                scopes: key.record.scopes.clone(),
                expire_time: key.expire_ms.and_then(timestamp),
            })
            .collect(),
        public_environments: access.public_environments.iter().cloned().collect(),
    }
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyServiceApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreatedApiKey>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let spec = KeySpec {
            display_name: body.display_name.clone(),
            roles: body.roles.clone(),
            scopes: body.scopes.clone(),
            expire_ms: body.expire_time.as_ref().map(timestamp_ms),
        };
        let (key, secret) = self.keys.create(caller, spec).await.map_err(status)?;
        Ok(Response::new(pb::CreatedApiKey {
            api_key: Some(api_key(&key)),
            secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let limit = page_token::page_size(body.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|violation| status(ConfigError::Invalid(vec![violation])))?;
        let after = cursor(&body.page_token).map_err(status)?;
        let keys = self
            .keys
            .list(caller, after.as_ref(), body.show_inactive, limit)
            .await
            .map_err(status)?;
        let last = keys.last().map(|last| format!("{}:{}", last.created_ms, last.id));
        let next_page_token = next_token(keys.len() as i64 == limit, last);
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(api_key).collect(),
            next_page_token,
        }))
    }

    async fn revoke_api_key(&self, request: Request<pb::RevokeApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&request)?;
        let id = key_id(&request.get_ref().name).map_err(status)?;
        let key = self.keys.revoke(caller, id).await.map_err(status)?;
        Ok(Response::new(api_key(&key)))
    }

    type WatchApiKeysStream = BoxStream<pb::ApiKeySet>;

    async fn watch_api_keys(
        &self,
        request: Request<pb::WatchApiKeysRequest>,
    ) -> Result<Response<Self::WatchApiKeysStream>, Status> {
        let principal = Principal::of(&request).map_err(status)?;
        require_key_sync(principal).map_err(status)?;
        let directory = self.keys.directory().clone();
        // The first item is the current set; each later one follows a replacement.
        let sets = WatchStream::new(directory.changes()).map(move |_| Ok(key_set(&directory)));
        Ok(Response::new(Box::pin(end_on_shutdown(sets, self.shutdown.clone()))))
    }

    async fn record_api_key_use(
        &self,
        request: Request<pb::RecordApiKeyUseRequest>,
    ) -> Result<Response<pb::RecordApiKeyUseResponse>, Status> {
        let principal = Principal::of(&request).map_err(status)?;
        let uses: Vec<(String, i64)> = request
            .get_ref()
            .uses
            .iter()
            .filter_map(|used| Some((used.id.clone(), timestamp_ms(used.time.as_ref()?))))
            .collect();
        self.keys.record_uses(principal, &uses).await.map_err(status)?;
        Ok(Response::new(pb::RecordApiKeyUseResponse {}))
    }
}
