//! An experiment-service on loopback, on SQLite or on a fresh PostgreSQL database, with one
//! API key per role in tenant `acme` and an admin of tenant `other`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use experiment_service::conf::{Settings, defaults};
use serde_json::Value;
use switchyard_platform::{Running, Shutdown, auth::generate_api_key, testing};

#[derive(Debug, Clone)]
pub struct Keys {
    pub admin: String,
    pub publisher: String,
    pub editor: String,
    pub viewer: String,
    pub other_tenant: String,
}

pub struct Service {
    pub running: Running,
    pub shutdown: Shutdown,
    pub keys: Keys,
    pub settings: Settings,
    _dir: tempfile::TempDir,
}

/// Where the service keeps its data: each test runs on both.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn settings(dir: &std::path::Path) -> (Settings, Keys) {
    let mut settings = testing::local(defaults(), dir);
    let mut add = |tenant: &str, roles: &[&str]| {
        let key = generate_api_key(tenant, roles);
        settings.auth.api_keys.push(key.record);
        key.plaintext
    };
    let keys = Keys {
        admin: add("acme", &["admin"]),
        publisher: add("acme", &["publisher"]),
        editor: add("acme", &["editor"]),
        viewer: add("acme", &["viewer"]),
        other_tenant: add("other", &["admin"]),
    };
    (settings, keys)
}

pub async fn service(backend: Backend) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = settings(dir.path());
    if let Backend::Postgres = backend {
        settings.storage.url = testing::fresh_postgres_database().await;
    }
    start(settings, keys, dir).await
}

/// A fresh process on the same database (and data directory) as `previous`, which is stopped.
pub async fn restart(previous: Service) -> Service {
    let Service {
        running,
        shutdown,
        keys,
        settings,
        _dir: dir,
    } = previous;
    shutdown.trigger();
    running.wait().await;
    start(settings, keys, dir).await
}

async fn start(settings: Settings, keys: Keys, dir: tempfile::TempDir) -> Service {
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
