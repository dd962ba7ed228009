//! Telling the outside that something happened: a JSON message published on a realtime
//! channel (realtime-gateway's `Publish`, found through discovery, with the services' shared
//! credential acting for the tenant) and a JSON POST to a webhook over plain HTTP. Services
//! use it for their notices ($experiments, $deployments); callers decide what to retry.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use switchyard_api::realtime::v1::{
    PublishRequest, publish_request::Payload, realtime_service_client::RealtimeServiceClient,
};
use tonic::{Request, metadata::MetadataValue};

use crate::{auth::ACT_FOR_TENANT_HEADER, discovery::Discovery, proto_json::to_proto_value};

/// How long a webhook may take to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a webhook's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

/// A webhook's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct Announcer {
    discovery: Discovery,
    credential: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Announcer {
    /// `credential` is `auth.key_sync_credential`: without it nothing is published on channels.
    pub fn new(discovery: Discovery, credential: Option<String>) -> Self {
        Announcer {
            discovery,
            credential,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Whether channel publications can be sent at all: the credential is set and discovery
    /// knows a realtime-gateway. Without either, callers skip the channel instead of retrying.
    pub fn publishes(&self) -> bool {
        self.credential.is_some() && self.discovery.channel("realtime-gateway").is_ok()
    }

    /// Publishes `body` on `channel` of `tenant`; the gateway keeps one publication per
    /// `idempotency_key`, so a retry lands once.
    pub async fn publish(
        &self,
        tenant: &str,
        channel: &str,
        idempotency_key: &str,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let credential = self
            .credential
            .as_deref()
            .ok_or("auth.key_sync_credential is not set")?;
        let transport = self
            .discovery
            .channel("realtime-gateway")
            .map_err(|error| error.to_string())?;
        let mut request = Request::new(PublishRequest {
            channel: channel.to_owned(),
            payload: Some(Payload::Data(to_proto_value(body))),
            idempotency_key: idempotency_key.to_owned(),
            tags: Default::default(),
        });
        let bad = |_| "credential or tenant is not a header value".to_owned();
        let authorization = MetadataValue::try_from(format!("Bearer {credential}")).map_err(bad)?;
        request.metadata_mut().insert("authorization", authorization);
        request
            .metadata_mut()
            .insert(ACT_FOR_TENANT_HEADER, MetadataValue::try_from(tenant).map_err(bad)?);
        RealtimeServiceClient::new(transport)
            .publish(request)
            .await
            .map(drop)
            .map_err(|status| format!("{}: {}", status.code(), status.message()))
    }

    /// POSTs `body` to `url` and returns the answer, whatever its status.
    pub async fn call(&self, url: &str, body: &serde_json::Value) -> Result<Answer, String> {
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|error| error.to_string())?;
        let response = tokio::time::timeout(WEBHOOK_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs()))?
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Ok(Answer { status, body })
    }

    /// POSTs `body` to `url`; anything but a 2xx answer is an error.
    pub async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let answer = self.call(url, body).await?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        Err(format!("answered {}", answer.status))
    }
}

/// Runs `attempt` up to `attempts` times, waiting `backoff · n` after the n-th failure;
/// returns the last error.
pub async fn retried<F, Fut>(attempts: u32, backoff: Duration, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut last = String::new();
    for n in 1..=attempts.max(1) {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(error) => last = error,
        }
        if n < attempts {
            tokio::time::sleep(backoff * n).await;
        }
    }
    Err(last)
}
