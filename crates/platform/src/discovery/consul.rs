//! A small Consul HTTP API client: agent service registration with a gRPC health check,
//! deregistration, healthy-instance lookups with blocking queries, and single-key KV
//! reads and writes (config-service mirrors published configs there). It runs on the
//! hyper stack already in the tree rather than consulrs, whose only release (2021) is built
//! on reqwest 0.11 / http 0.2 and cannot list healthy instances.

use std::{collections::BTreeMap, fmt::Write as _, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde::{Deserialize, Serialize};

use crate::settings::ConsulSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    #[error("consul request failed: {0}")]
    Transport(String),
    #[error("consul answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("consul sent an unreadable answer: {0}")]
    Decode(String),
    /// Consul answered a KV write with `false`: it accepted the request but stored nothing.
    #[error("consul did not write key `{0}`")]
    NotWritten(String),
}

/// What this instance registers: `Port` is the gRPC port, the HTTP port goes in `Meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Registration {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub check: HealthCheck,
}

/// A gRPC health check that Consul runs against the instance (grpc.health.v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    #[serde(rename = "GRPC")]
    pub grpc: String,
    #[serde(rename = "GRPCUseTLS")]
    pub grpc_use_tls: bool,
    pub interval: String,
    pub deregister_critical_service_after: String,
}

/// One healthy instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    pub id: String,
    pub address: SocketAddr,
    pub http_port: Option<u16>,
}

/// One answer of a blocking query: the instances and the index to wait on next.
#[derive(Debug, Clone)]
pub struct HealthyInstances {
    pub instances: Vec<Instance>,
    pub index: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: NodeEntry,
    service: ServiceEntry,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeEntry {
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceEntry {
    #[serde(rename = "ID")]
    id: String,
    address: String,
    port: u16,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

/// The Consul agent this process talks to.
#[derive(Clone)]
pub struct ConsulClient {
    base: String,
    token: Option<String>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for ConsulClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ConsulClient {
    pub fn new(settings: &ConsulSettings) -> Self {
        let http = Client::builder(TokioExecutor::new()).build_http();
        ConsulClient {
            base: settings.address.trim_end_matches('/').to_owned(),
            token: settings.token.clone(),
            http,
        }
    }

    /// `PUT /v1/agent/service/register`.
    pub async fn register(&self, registration: &Registration) -> Result<(), ConsulError> {
        let body = serde_json::to_vec(registration).map_err(|error| ConsulError::Decode(error.to_string()))?;
        self.send(http::Method::PUT, "/v1/agent/service/register", body).await?;
        Ok(())
    }

    /// `PUT /v1/agent/service/deregister/:id`.
    pub async fn deregister(&self, id: &str) -> Result<(), ConsulError> {
        self.send(
            http::Method::PUT,
            &format!("/v1/agent/service/deregister/{id}"),
            Vec::new(),
        )
        .await?;
        Ok(())
    }

    /// `GET /v1/health/service/:name?passing=true`, blocking until the index moves past
    /// `index` or `wait` elapses (a blocking query). Pass 0 to return at once.
    pub async fn healthy(&self, service: &str, index: u64, wait: &str) -> Result<HealthyInstances, ConsulError> {
        let mut path = format!("/v1/health/service/{service}?passing=true");
        if index > 0 {
            path.push_str(&format!("&index={index}&wait={wait}"));
        }
        let (headers, body) = self.send(http::Method::GET, &path, Vec::new()).await?;
        let entries: Vec<HealthEntry> =
            serde_json::from_slice(&body).map_err(|error| ConsulError::Decode(error.to_string()))?;
        let index = headers
            .get("x-consul-index")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut instances: Vec<Instance> = entries.into_iter().filter_map(instance).collect();
        instances.sort();
        Ok(HealthyInstances { instances, index })
    }

    /// `PUT /v1/kv/:key` with the value as the raw body. Consul stores the bytes as they
    /// are (no JSON, no base64), so the Go services read back exactly what was written.
    /// Consul answers `true` or `false`; `false` means nothing was stored and is an error.
    pub async fn kv_put(&self, key: &str, value: &[u8]) -> Result<(), ConsulError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        let (_, body) = self
            .request(http::Method::PUT, &path, value.to_vec(), "application/octet-stream")
            .await?;
        let written: bool = serde_json::from_slice(&body).map_err(|error| ConsulError::Decode(error.to_string()))?;
        if written {
            Ok(())
        } else {
            Err(ConsulError::NotWritten(key.to_owned()))
        }
    }

    /// `DELETE /v1/kv/:key`. Consul answers success for a key that does not exist, so
    /// deleting is idempotent.
    pub async fn kv_delete(&self, key: &str) -> Result<(), ConsulError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        self.send(http::Method::DELETE, &path, Vec::new()).await?;
        Ok(())
    }

    /// `GET /v1/kv/:key?raw`: the stored bytes as the body, which spares decoding Consul's
    /// JSON-and-base64 form. Consul answers 404 for a missing key, which is `None` here.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, ConsulError> {
        let path = format!("/v1/kv/{}?raw", encode_key(key));
        match self.send(http::Method::GET, &path, Vec::new()).await {
            Ok((_, body)) => Ok(Some(body.to_vec())),
            Err(ConsulError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A request with a JSON body (or none), which is what every endpoint but KV takes.
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(http::HeaderMap, Bytes), ConsulError> {
        self.request(method, path, body, "application/json").await
    }

    /// Every call goes through here: base address, ACL token, and non-2xx as
    /// [`ConsulError::Status`]. `content_type` is only sent when there is a body.
    async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> Result<(http::HeaderMap, Bytes), ConsulError> {
        let has_body = !body.is_empty();
        let mut request = http::Request::new(Full::new(Bytes::from(body)));
        if has_body {
            request
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
        }
        *request.method_mut() = method;
        *request.uri_mut() = format!("{}{path}", self.base)
            .parse()
            .map_err(|error: http::uri::InvalidUri| ConsulError::Transport(error.to_string()))?;
        if let Some(token) = &self.token
            && let Ok(value) = http::HeaderValue::from_str(token)
        {
            request.headers_mut().insert("x-consul-token", value);
        }
        let response = self
            .http
            .request(request)
            .await
            .map_err(|error| ConsulError::Transport(error.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|error| ConsulError::Transport(error.to_string()))?
            .to_bytes();
        if !parts.status.is_success() {
            return Err(ConsulError::Status {
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(&body).into(),
            });
        }
        Ok((parts.headers, body))
    }
}

/// Percent-encodes a KV key for the URL path. `/` stays as it is, since Consul keys nest
/// on it the way the Go services list and read them; in each segment the RFC 3986
/// unreserved characters stay and every other byte (spaces, `?`, `#`, `%`, non-ASCII) is
/// escaped, so Consul decodes the exact key back. A leading `/` is dropped, as Consul's
/// own Go client does, because `/v1/kv//key` is a different, redirected path.
fn encode_key(key: &str) -> String {
    let key = key.strip_prefix('/').unwrap_or(key);
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// The service address falls back to the node address, as Consul documents.
fn instance(entry: HealthEntry) -> Option<Instance> {
    let host = if entry.service.address.is_empty() {
        entry.node.address
    } else {
        entry.service.address
    };
    let address = format!("{host}:{}", entry.service.port).parse().ok()?;
    let http_port = entry
        .service
        .meta
        .as_ref()
        .and_then(|meta| meta.get("http_port"))
        .and_then(|p| p.parse().ok());
    Some(Instance {
        id: entry.service.id,
        address,
        http_port,
    })
}

/// Blocking-query loop: publishes the healthy instances of `service` on a watch channel
/// every time they change. Errors back off (1 s doubling to 30 s) and keep the last
/// known set, so a Consul restart does not empty the balancer.
pub fn watch_healthy(
    client: ConsulClient,
    service: String,
    wait: String,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::sync::watch::Receiver<Vec<Instance>> {
    let (sender, receiver) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(async move {
        let mut index = 0u64;
        let mut backoff = Duration::from_secs(1);
        loop {
            let answer = tokio::select! {
                _ = shutdown.cancelled() => return,
                answer = client.healthy(&service, index, &wait) => answer,
            };
            match answer {
                Ok(answer) => {
                    backoff = Duration::from_secs(1);
                    // Consul: an index that goes backwards must reset the wait to zero.
                    index = if answer.index < index { 0 } else { answer.index.max(1) };
                    sender.send_if_modified(|current| {
                        let changed = *current != answer.instances;
                        *current = answer.instances;
                        changed
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, service, "consul watch failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::encode_key;

    #[test]
    fn keys_keep_slashes_and_escape_everything_else() {
        assert_eq!(
            encode_key("switchyard/acme/shop/prod/app"),
            "switchyard/acme/shop/prod/app"
        );
        assert_eq!(encode_key("/a/b"), "a/b");
        assert_eq!(encode_key("a b/c?d#e%f+g"), "a%20b/c%3Fd%23e%25f%2Bg");
        assert_eq!(encode_key("ü/~-._"), "%C3%BC/~-._");
    }
}
