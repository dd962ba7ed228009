//! An in-process Consul agent for tests, following Consul's documented HTTP API for the
//! endpoints Switchyard uses: service registration and deregistration on the agent, and
//! `GET /v1/health/service/:name` with `passing`, blocking `index`/`wait` and the
//! `X-Consul-Index` header, and the KV store's single-key `PUT`, `GET` (JSON or `?raw`)
//! and `DELETE` on `/v1/kv/:key`. Tests flip an instance's check between passing and critical.
//! This is the project's only fake: Consul cannot be installed on the build machines.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::consul::Registration;
use crate::settings::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Passing,
    Critical,
}

#[derive(Debug, Default)]
struct Catalog {
    services: BTreeMap<String, (Registration, CheckStatus)>,
    /// Raw registration bodies, to assert the payload exactly as sent.
    payloads: Vec<serde_json::Value>,
    deregistered: Vec<String>,
    /// KV entries by decoded key.
    kv: BTreeMap<String, KvEntry>,
    /// The last index given to a KV write. Kept apart from the health index so KV writes
    /// do not wake health blocking queries, which real Consul does not do either.
    kv_index: u64,
}

#[derive(Debug)]
struct KvEntry {
    value: Vec<u8>,
    create_index: u64,
    modify_index: u64,
}

/// Consul refuses KV values over 512 KiB with 413.
const KV_MAX_VALUE: usize = 512 * 1024;

/// A running fake agent.
#[derive(Clone)]
pub struct FakeConsul {
    pub address: SocketAddr,
    catalog: Arc<Mutex<Catalog>>,
    index: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for FakeConsul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeConsul").field("address", &self.address).finish()
    }
}

#[derive(Debug, Deserialize)]
struct HealthQuery {
    passing: Option<String>,
    index: Option<u64>,
    wait: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KvQuery {
    /// Present (usually with no value) for `?raw`.
    raw: Option<String>,
}

impl FakeConsul {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let fake = FakeConsul {
            address,
            catalog: Arc::default(),
            index: Arc::new(watch::channel(1).0),
        };
        let app = Router::new()
            .route("/v1/agent/service/register", put(register))
            .route("/v1/agent/service/deregister/{id}", put(deregister))
            .route("/v1/health/service/{name}", get(health))
            .route("/v1/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(fake)
    }

    /// The URL to put in `consul.address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.index.send_modify(|index| *index += 1);
    }

    /// Every registration body received, in order.
    pub fn payloads(&self) -> Vec<serde_json::Value> {
        self.lock().payloads.clone()
    }

    /// Service ids that were deregistered, in order.
    pub fn deregistered(&self) -> Vec<String> {
        self.lock().deregistered.clone()
    }

    /// Ids currently registered.
    pub fn registered_ids(&self) -> Vec<String> {
        self.lock().services.keys().cloned().collect()
    }

    /// The KV store as it is now: decoded key → value.
    pub fn kv(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock()
            .kv
            .iter()
            .map(|(key, entry)| (key.clone(), entry.value.clone()))
            .collect()
    }

    /// Registers an instance directly, as another process would.
    pub fn add(&self, registration: Registration) {
        self.lock()
            .services
            .insert(registration.id.clone(), (registration, CheckStatus::Passing));
        self.bump();
    }

    /// Sets the result of an instance's health check.
    pub fn set_check(&self, id: &str, status: CheckStatus) {
        if let Some(entry) = self.lock().services.get_mut(id) {
            entry.1 = status;
        }
        self.bump();
    }
}

async fn register(State(fake): State<FakeConsul>, Json(body): Json<serde_json::Value>) -> impl IntoResponse {
    let registration: Registration = match serde_json::from_value(body.clone()) {
        Ok(registration) => registration,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("Request decode failed: {error}")),
    };
    {
        let mut catalog = fake.lock();
        catalog.payloads.push(body);
        catalog
            .services
            .insert(registration.id.clone(), (registration, CheckStatus::Passing));
    }
    fake.bump();
    (StatusCode::OK, String::new())
}

async fn deregister(State(fake): State<FakeConsul>, Path(id): Path<String>) -> impl IntoResponse {
    let removed = {
        let mut catalog = fake.lock();
        catalog.deregistered.push(id.clone());
        catalog.services.remove(&id).is_some()
    };
    if !removed {
        return (StatusCode::NOT_FOUND, format!("Unknown service ID {id:?}"));
    }
    fake.bump();
    (StatusCode::OK, String::new())
}

async fn health(
    State(fake): State<FakeConsul>,
    Path(name): Path<String>,
    Query(query): Query<HealthQuery>,
) -> impl IntoResponse {
    let mut changes = fake.index.subscribe();
    if let Some(wanted) = query.index {
        let wait = query
            .wait
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(Duration::from_secs(300));
        let _ = tokio::time::timeout(wait, changes.wait_for(|current| *current > wanted)).await;
    }
    let index = *fake.index.borrow();
    let passing_only = query.passing.is_some();
    let entries: Vec<serde_json::Value> = fake
        .lock()
        .services
        .values()
        .filter(|(registration, status)| {
            registration.name == name && (!passing_only || *status == CheckStatus::Passing)
        })
        .map(|(registration, status)| {
            let check = if *status == CheckStatus::Passing {
                "passing"
            } else {
                "critical"
            };
            json!({
                "Node": { "Node": "fake-node", "Address": "127.0.0.1" },
                "Service": {
                    "ID": registration.id, "Service": registration.name, "Address": registration.address,
                    "Port": registration.port, "Tags": registration.tags, "Meta": registration.meta,
                },
                "Checks": [{ "CheckID": format!("service:{}", registration.id), "Status": check }],
            })
        })
        .collect();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&index.to_string()) {
        headers.insert("x-consul-index", value);
    }
    (headers, Json(entries))
}

/// `PUT /v1/kv/:key`: stores the body as it is and answers `true`.
async fn kv_put(State(fake): State<FakeConsul>, Path(key): Path<String>, body: Bytes) -> Response {
    if body.len() > KV_MAX_VALUE {
        let message = format!(
            "Request body({} bytes) too large, max size: {KV_MAX_VALUE} bytes",
            body.len()
        );
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    let mut catalog = fake.lock();
    catalog.kv_index += 1;
    let index = catalog.kv_index;
    catalog
        .kv
        .entry(key)
        .and_modify(|entry| {
            entry.value = body.to_vec();
            entry.modify_index = index;
        })
        .or_insert_with(|| KvEntry {
            value: body.to_vec(),
            create_index: index,
            modify_index: index,
        });
    Json(true).into_response()
}

/// `GET /v1/kv/:key`: 404 when absent; the bytes with `?raw`; otherwise the one-entry
/// JSON array with the value in base64, as Consul answers.
async fn kv_get(State(fake): State<FakeConsul>, Path(key): Path<String>, Query(query): Query<KvQuery>) -> Response {
    let catalog = fake.lock();
    let mut headers = HeaderMap::new();
    let index = catalog
        .kv
        .get(&key)
        .map_or(catalog.kv_index, |entry| entry.modify_index);
    if let Ok(value) = HeaderValue::from_str(&index.to_string()) {
        headers.insert("x-consul-index", value);
    }
    let Some(entry) = catalog.kv.get(&key) else {
        return (StatusCode::NOT_FOUND, headers).into_response();
    };
    if query.raw.is_some() {
        return (headers, Bytes::from(entry.value.clone())).into_response();
    }
    // Consul sends `null` rather than `""` for an empty value.
    let value = if entry.value.is_empty() {
        serde_json::Value::Null
    } else {
        base64::engine::general_purpose::STANDARD.encode(&entry.value).into()
    };
    let body = json!([{
        "Key": key, "Value": value, "Flags": 0, "LockIndex": 0,
        "CreateIndex": entry.create_index, "ModifyIndex": entry.modify_index,
    }]);
    (headers, Json(body)).into_response()
}

/// `DELETE /v1/kv/:key`: answers `true` whether or not the key existed, as Consul does.
async fn kv_delete(State(fake): State<FakeConsul>, Path(key): Path<String>) -> Response {
    let mut catalog = fake.lock();
    if catalog.kv.remove(&key).is_some() {
        catalog.kv_index += 1;
    }
    Json(true).into_response()
}
