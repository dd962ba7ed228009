//! An experiment-service on loopback, on SQLite or on a fresh PostgreSQL database, beside a
//! real flag-service (in-process, SQLite) it writes experiment rules into; one API key per
//! role in tenant `acme`, an SDK server key, and an admin of tenant `other`, known to both.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod recount;

use experiment_service::conf::{Settings, defaults};
use serde_json::Value;
use switchyard_platform::{
    Running, Shutdown,
    auth::{ApiKeyRecord, generate_api_key},
    testing,
};

#[derive(Debug, Clone)]
pub struct Keys {
    pub admin: String,
    pub publisher: String,
    pub editor: String,
    pub viewer: String,
    pub sdk_server: String,
    /// An SDK server key bound to `projects/shop/environments/prod` (what a flagd provider
    /// sends as its selector).
    pub sdk_prod: String,
    pub other_tenant: String,
    /// The services' shared credential (`auth.key_sync_credential` of both services).
    pub services: String,
}

pub struct Service {
    pub running: Running,
    pub shutdown: Shutdown,
    pub keys: Keys,
    pub settings: Settings,
    pub flags: FlagService,
    _dir: tempfile::TempDir,
}

/// The flag-service beside it.
pub struct FlagService {
    pub running: Running,
    pub shutdown: Shutdown,
}

/// Where the service keeps its data: each test runs on both.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn settings(dir: &std::path::Path) -> (Settings, Keys, Vec<ApiKeyRecord>) {
    let mut settings = testing::local(defaults(), dir);
    let mut records = Vec::new();
    let mut add = |tenant: &str, roles: &[&str]| {
        let key = generate_api_key(tenant, roles);
        records.push(key.record);
        key.plaintext
    };
    let keys = Keys {
        admin: add("acme", &["admin"]),
        publisher: add("acme", &["publisher"]),
        editor: add("acme", &["editor"]),
        viewer: add("acme", &["viewer"]),
        sdk_server: add("acme", &["sdk-server"]),
        sdk_prod: add("acme", &["sdk-server:projects/shop/environments/prod"]),
        other_tenant: add("other", &["admin"]),
        services: generate_api_key("switchyard-services", &[]).plaintext,
    };
    settings.auth.api_keys = records.clone();
    shares_the_services_credential(&mut settings.auth, &mut settings.peers, &keys.services);
    // Guardrails are checked every second (the default is a minute).
    settings.service.guardrail_check_seconds = 1;
    (settings, keys, records)
}

/// Gives a service the services' shared credential. It would follow config-service's key
/// store with it; there is none here, so that follower finds nothing to follow and the keys
/// in settings are the ones known.
fn shares_the_services_credential(
    auth: &mut switchyard_platform::auth::AuthSettings,
    peers: &mut std::collections::BTreeMap<String, Vec<String>>,
    credential: &str,
) {
    auth.key_sync_credential = Some(credential.to_owned());
    peers.insert("config-service".to_owned(), vec!["http://127.0.0.1:9".to_owned()]);
}

async fn flag_service(dir: &std::path::Path, keys: Vec<ApiKeyRecord>, services: &str) -> FlagService {
    let mut settings = testing::local(flag_service::conf::defaults(), &dir.join("flags"));
    settings.auth.api_keys = keys;
    // Providers in these tests evaluate thousands of units as one principal.
    settings.limits.per_principal_rps = 1_000_000;
    shares_the_services_credential(&mut settings.auth, &mut settings.peers, services);
    let shutdown = Shutdown::new();
    let running = match flag_service::start(settings, shutdown.clone()).await {
        Ok(running) => running,
        Err(error) => panic!("flag-service did not start: {error}"),
    };
    FlagService { running, shutdown }
}

pub async fn service(backend: Backend) -> Service {
    let (settings, keys, flags, dir) = prepared(backend).await;
    start(settings, keys, flags, dir).await
}

/// Settings for an experiment-service beside a running flag-service, not yet started (for
/// tests that run it as its own process).
pub async fn prepared(backend: Backend) -> (Settings, Keys, FlagService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys, records) = settings(dir.path());
    if let Backend::Postgres = backend {
        settings.storage.url = testing::fresh_postgres_database().await;
    }
    let flags = flag_service(dir.path(), records, &keys.services).await;
    settings.peers.insert(
        "flag-service".to_owned(),
        vec![format!("http://{}", flags.running.grpc_addr)],
    );
    (settings, keys, flags, dir)
}

/// A fresh process on the same database (and data directory) as `previous`, which is stopped.
pub async fn restart(previous: Service) -> Service {
    let Service {
        running,
        shutdown,
        keys,
        settings,
        flags,
        _dir: dir,
    } = previous;
    shutdown.trigger();
    running.wait().await;
    start(settings, keys, flags, dir).await
}

/// Starts experiment-service with `settings` (from [`prepared`], adjusted).
pub async fn start(settings: Settings, keys: Keys, flags: FlagService, dir: tempfile::TempDir) -> Service {
    let shutdown = Shutdown::new();
    let running = match experiment_service::start(settings.clone(), shutdown.clone()).await {
        Ok(running) => running,
        Err(error) => panic!("experiment-service did not start: {error}"),
    };
    Service {
        running,
        shutdown,
        keys,
        settings,
        flags,
        _dir: dir,
    }
}

/// Runs each named `async fn(Backend)` of the file as two tests, on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::support::Backend::Sqlite).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::support::Backend::Postgres).await;
            })*
        }
    };
}

impl Service {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
        self.flags.shutdown.trigger();
        self.flags.running.wait().await;
    }

    /// Creates flag `key` in project `shop` with string variants named `variants` (the first
    /// the default) and rules in `prod`.
    pub async fn create_flag(&self, key: &str, variants: &[&str]) {
        let values: serde_json::Map<String, Value> = variants
            .iter()
            .map(|variant| ((*variant).to_owned(), Value::String((*variant).to_owned())))
            .collect();
        let body = serde_json::json!({"flagId": key, "flag": {"variants": values,
            "environments": {"prod": {"enabled": true, "defaultVariant": variants[0]}}}});
        let url = format!("http://{}/v1/projects/shop/flags", self.flags.running.http_addr);
        let response = testing::http_as("POST", &url, Some(&self.keys.editor), &[], body.to_string()).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }

    /// Reads a flag from flag-service.
    pub async fn flag(&self, key: &str) -> Value {
        let url = format!("http://{}/v1/projects/shop/flags/{key}", self.flags.running.http_addr);
        testing::http_as("GET", &url, Some(&self.keys.viewer), &[], "")
            .await
            .json()
    }

    /// Calls `method path` with `key` and a JSON body (empty for none): status and JSON.
    pub async fn call(&self, key: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
        let url = format!("http://{}{path}", self.running.http_addr);
        let response = testing::http_as(
            method,
            &url,
            Some(key),
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await;
        let value = if response.text().is_empty() {
            Value::Null
        } else {
            response.json()
        };
        (response.status, value)
    }

    pub fn grpc(&self) -> tonic::transport::Channel {
        testing::grpc_channel(&self.running)
    }
}

/// A gRPC request carrying `key` as its bearer credential.
pub fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = tonic::metadata::MetadataValue::try_from(format!("Bearer {key}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// The value at quantile `p` of `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The field violations of an error body, as (field, description).
pub fn violations(body: &Value) -> Vec<(String, String)> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|detail| detail["fieldViolations"].as_array().cloned().unwrap_or_default())
        .map(|violation| {
            (
                violation["field"].as_str().unwrap_or_default().to_owned(),
                violation["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
