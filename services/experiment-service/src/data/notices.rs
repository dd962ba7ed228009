//! [`RealtimeNotifier`]: notices to realtime-gateway's `Publish` (found through discovery,
//! with the services' shared credential acting for the tenant) on `$experiments:{project}`,
//! and as a JSON POST to the experiment's webhook over plain HTTP. Each is tried up to three
//! times; the idempotency key makes a retried publish land once.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use switchyard_api::realtime::v1::{
    PublishRequest, publish_request::Payload, realtime_service_client::RealtimeServiceClient,
};
use switchyard_platform::{auth::ACT_FOR_TENANT_HEADER, discovery::Discovery, proto_json::to_proto_value};
use tonic::{Request, metadata::MetadataValue};

use crate::biz::notices::{Notice, Notifier};

const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(500);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RealtimeNotifier {
    discovery: Discovery,
    credential: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl RealtimeNotifier {
    pub fn new(discovery: Discovery, credential: Option<String>) -> Self {
        Self {
            discovery,
            credential,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn publish(&self, tenant: &str, notice: &Notice, body: &serde_json::Value) -> Result<(), String> {
        let credential = self
            .credential
            .as_deref()
            .ok_or("auth.key_sync_credential is not set")?;
        let channel = self
            .discovery
            .channel("realtime-gateway")
            .map_err(|error| error.to_string())?;
        let mut request = Request::new(PublishRequest {
            channel: format!("$experiments:{}", notice.project),
            payload: Some(Payload::Data(to_proto_value(body))),
            idempotency_key: format!("{}@{}", notice.experiment, notice.version),
            tags: Default::default(),
        });
        let bad = |_| "credential or tenant is not a header value".to_owned();
        let authorization = MetadataValue::try_from(format!("Bearer {credential}")).map_err(bad)?;
        request.metadata_mut().insert("authorization", authorization);
        request
            .metadata_mut()
            .insert(ACT_FOR_TENANT_HEADER, MetadataValue::try_from(tenant).map_err(bad)?);
        RealtimeServiceClient::new(channel)
            .publish(request)
            .await
            .map(drop)
            .map_err(|status| format!("{}: {}", status.code(), status.message()))
    }

    async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|error| error.to_string())?;
        let response = tokio::time::timeout(WEBHOOK_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(format!("answered {}", response.status()))
    }
}

/// Runs `attempt` up to [`ATTEMPTS`] times; logs the last failure.
async fn retried<F, Fut>(what: &str, notice: &Notice, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Ok(()) => return,
            Err(error) if n == ATTEMPTS => {
                tracing::warn!(%error, experiment = %notice.experiment, "{what} failed; the stop stands and is audited");
            }
            Err(_) => tokio::time::sleep(BACKOFF * n).await,
        }
    }
}

impl Notifier for RealtimeNotifier {
    async fn notify(&self, tenant: &str, notice: &Notice) {
        let body = match serde_json::to_value(notice) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "a notice did not serialize");
                return;
            }
        };
        retried("publishing the notice to $experiments", notice, || {
            self.publish(tenant, notice, &body)
        })
        .await;
        if !notice.webhook.is_empty() {
            retried("posting the notice to the webhook", notice, || {
                self.post(&notice.webhook, &body)
            })
            .await;
        }
    }
}
