//! The sources of `$config` and `$flags` channels: config-service's `Watch` and flag-service's
//! `flagd.sync.v1.SyncFlags`, over gRPC channels found through discovery.

use futures::{StreamExt, stream::BoxStream};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard_api::{
    config::v1::{Format, ResolvedConfig, WatchRequest, WatchResponse, config_service_client::ConfigServiceClient},
    flagd::sync::v1::{SyncFlagsRequest, SyncFlagsResponse, flag_sync_service_client::FlagSyncServiceClient},
};
use tonic::{Request, metadata::AsciiMetadataValue, transport::Channel};

use crate::biz::live::{Change, Feed, LiveSource, Position};

/// Watches config-service and flag-service with the gateway's watch key.
#[derive(Debug, Clone)]
pub struct GrpcLiveSource {
    pub config: Option<Channel>,
    pub flags: Option<Channel>,
    /// `Bearer <key>`, sent with every watch.
    pub authorization: Option<AsciiMetadataValue>,
}

impl GrpcLiveSource {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        request
    }
}

fn status(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl LiveSource for GrpcLiveSource {
    async fn watch(
        &self,
        feed: &Feed,
        since: Option<&Position>,
    ) -> Result<BoxStream<'static, Result<Change, String>>, String> {
        match feed {
            Feed::Config { project, environment } => {
                let channel = self.config.clone().ok_or("config-service is not known to discovery")?;
                let since_revision = match since {
                    Some(Position::Revision(revision)) => *revision,
                    _ => 0,
                };
                let request = self.request(WatchRequest {
                    parent: format!("projects/{project}/environments/{environment}"),
                    since_revision,
                    client_service: "realtime-gateway".to_owned(),
                    ..Default::default()
                });
                let stream = ConfigServiceClient::new(channel).watch(request).await.map_err(status)?;
                Ok(stream
                    .into_inner()
                    .map(|item| item.map_err(status).map(config_change))
                    .boxed())
            }
            Feed::Flags { project, environment } => {
                let channel = self.flags.clone().ok_or("flag-service is not known to discovery")?;
                let request = self.request(SyncFlagsRequest {
                    provider_id: "realtime-gateway".to_owned(),
                    selector: format!("projects/{project}/environments/{environment}"),
                });
                let stream = FlagSyncServiceClient::new(channel)
                    .sync_flags(request)
                    .await
                    .map_err(status)?;
                Ok(stream
                    .into_inner()
                    .map(|item| item.map_err(status).and_then(flags_change))
                    .boxed())
            }
        }
    }
}

/// `{"revision": N, "snapshot": bool, "configs": [{"name", "release", "revision", "etag",
/// "format", "deleted", "content"}]}`; content is the resolved document as JSON (secrets
/// stay masked), or its text for plain-text configs.
fn config_change(response: WatchResponse) -> Change {
    let configs: Vec<Value> = response.configs.iter().map(config_json).collect();
    let data = json!({"revision": response.revision, "snapshot": response.snapshot, "configs": configs});
    Change {
        position: Position::Revision(response.revision),
        data: data.to_string().into(),
        snapshot: response.snapshot,
    }
}

fn config_json(config: &ResolvedConfig) -> Value {
    let format = Format::try_from(config.format).map_or("FORMAT_UNSPECIFIED", |format| format.as_str_name());
    let content = serde_json::from_str::<Value>(&config.text).unwrap_or_else(|_| Value::String(config.text.clone()));
    json!({
        "name": config.name,
        "release": config.release,
        "revision": config.revision,
        "etag": config.etag,
        "format": format,
        "deleted": config.deleted,
        "content": if config.deleted { Value::Null } else { content },
    })
}

/// `{"digest": "<sha-256 prefix>", "flags": {…}}`: the flagd document of the environment.
fn flags_change(response: SyncFlagsResponse) -> Result<Change, String> {
    let mut document: Value = serde_json::from_str(&response.flag_configuration)
        .map_err(|error| format!("flag-service sent a document that is not JSON: {error}"))?;
    let digest = hex::encode(&Sha256::digest(response.flag_configuration.as_bytes())[..12]);
    let data = json!({
        "digest": digest,
        "flags": document.get_mut("flags").map(Value::take).unwrap_or_else(|| json!({})),
        "metadata": document.get_mut("metadata").map(Value::take).unwrap_or(Value::Null),
    });
    Ok(Change {
        position: Position::Digest(digest),
        data: data.to_string().into(),
        // Every sync message is the whole document; a digest that differs is always news.
        snapshot: false,
    })
}
