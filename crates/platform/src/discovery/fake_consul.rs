//! An in-process Consul agent for tests, following Consul's documented HTTP API for the
//! endpoints Switchyard uses: service registration and deregistration on the agent, and
//! `GET /v1/health/service/:name` with `passing`, blocking `index`/`wait` and the
//! `X-Consul-Index` header. Tests flip an instance's check between passing and critical.
//! This is the project's only fake: Consul cannot be installed on the build machines.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, put},
};
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
}

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
