//! A presence-service on loopback (memory, or Redis + PostgreSQL as replicas share them)
//! with keys for each role, and a fake-free gateway node: a client of the real
//! `ReportConnections` stream, as realtime-gateway is.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use presence_service::conf::{Settings, defaults};
use serde_json::Value;
use switchyard_api::presence::v1::{
    self as pb, connection_event::Kind, presence_service_client::PresenceServiceClient,
};
use switchyard_platform::{
    Running, Shutdown,
    auth::{KEY_SYNC_SCOPE, generate_api_key},
    testing,
};
use tokio::sync::mpsc;
use tonic::{Request, Streaming, metadata::MetadataValue, transport::Channel};

pub type Client = PresenceServiceClient<Channel>;

#[derive(Debug, Clone)]
pub struct Keys {
    pub admin: String,
    pub editor: String,
    pub viewer: String,
    pub other_tenant: String,
    /// The services' shared credential, which gateways report with.
    pub service: String,
}

pub struct Service {
    pub running: Running,
    pub shutdown: Shutdown,
    pub keys: Keys,
    pub settings: Settings,
    pub dir: tempfile::TempDir,
}

/// Settings with one key per role; a lost connection lingers `grace_ms`.
pub fn settings(dir: &std::path::Path, grace_ms: u64) -> (Settings, Keys) {
    let mut settings = testing::local(defaults(), dir);
    let mut add = |tenant: &str, roles: &[&str]| {
        let key = generate_api_key(tenant, roles);
        settings.auth.api_keys.push(key.record);
        key.plaintext
    };
    let admin = add("acme", &["admin"]);
    let editor = add("acme", &["editor"]);
    let viewer = add("acme", &["viewer"]);
    let other_tenant = add("other", &["admin"]);
    // What `auth.key_sync_credential` becomes on every service: a key with the services' scope.
    let mut shared = generate_api_key("switchyard-services", &[]);
    shared.record.scopes = vec![KEY_SYNC_SCOPE.to_owned()];
    settings.auth.api_keys.push(shared.record);
    let service = shared.plaintext;
    settings.service.offline_grace_ms = grace_ms;
    settings.service.cleanup_interval_ms = 50;
    settings.service.last_seen_flush_ms = 100;
    (
        settings,
        Keys {
            admin,
            editor,
            viewer,
            other_tenant,
            service,
        },
    )
}

pub async fn start_with(settings: Settings, keys: Keys, dir: tempfile::TempDir) -> Service {
    let shutdown = Shutdown::new();
    let running = match presence_service::start(settings.clone(), shutdown.clone()).await {
        Ok(running) => running,
        Err(error) => panic!("presence-service did not start: {error}"),
    };
    Service {
        running,
        shutdown,
        keys,
        settings,
        dir,
    }
}

/// Where presence state lives: each semantic test runs on both.
#[derive(Debug, Clone, Copy)]
pub enum Store {
    /// Memory and SQLite: one replica.
    Memory,
    /// Redis (a prefix of the test's own) and PostgreSQL: what replicas share.
    Redis,
}

/// Settings for `store` with a grace period of `grace_ms`.
pub async fn settings_on(store: Store, grace_ms: u64) -> (Settings, Keys, tempfile::TempDir) {
    match store {
        Store::Memory => {
            let dir = tempfile::tempdir().unwrap();
            let (settings, keys) = settings(dir.path(), grace_ms);
            (settings, keys, dir)
        }
        Store::Redis => shared_settings(grace_ms).await,
    }
}

pub async fn service(store: Store, grace_ms: u64) -> Service {
    let (settings, keys, dir) = settings_on(store, grace_ms).await;
    start_with(settings, keys, dir).await
}

/// Runs each named `async fn(Store)` of the file as two tests, on memory and on Redis.
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::support::Store::Memory).await;
            })*
        }
        mod on_redis {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::support::Store::Redis).await;
            })*
        }
    };
}

/// One replica with state in memory and SQLite.
pub async fn memory(grace_ms: u64) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = settings(dir.path(), grace_ms);
    start_with(settings, keys, dir).await
}

/// Settings for replicas sharing Redis (under a prefix of their own) and PostgreSQL.
pub async fn shared_settings(grace_ms: u64) -> (Settings, Keys, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = settings(dir.path(), grace_ms);
    let mut settings = testing::with_postgres_and_redis(settings).await;
    settings.service.redis_prefix = format!("sy-test:{}:", uuid::Uuid::new_v4().simple());
    (settings, keys, dir)
}

pub async fn redis(grace_ms: u64) -> Service {
    let (settings, keys, dir) = shared_settings(grace_ms).await;
    start_with(settings, keys, dir).await
}

/// Another replica on the same Redis and database.
pub async fn replica(of: &Service) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let settings = testing::local(of.settings.clone(), dir.path());
    start_with(settings, of.keys.clone(), dir).await
}

impl Service {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
    }

    pub fn client(&self) -> Client {
        PresenceServiceClient::new(testing::grpc_channel(&self.running))
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http_addr)
    }

    pub async fn get_json(&self, key: &str, path: &str) -> (u16, Value) {
        let response = testing::http_as("GET", &self.http(path), Some(key), &[], "").await;
        let status = response.status;
        let body = if response.text().is_empty() {
            Value::Null
        } else {
            response.json()
        };
        (status, body)
    }

    pub async fn presence(&self, key: &str, user: &str) -> pb::Presence {
        self.client()
            .get_presence(authed(
                key,
                pb::GetPresenceRequest {
                    user_id: user.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// A watch of users and channels as a viewer.
    pub async fn watch(&self, users: &[&str], channels: &[&str], resume: &str) -> Streaming<pb::PresenceEvent> {
        self.client()
            .watch_presence(authed(
                &self.keys.viewer,
                pb::WatchPresenceRequest {
                    user_ids: users.iter().map(|user| (*user).to_owned()).collect(),
                    channels: channels.iter().map(|channel| (*channel).to_owned()).collect(),
                    resume_cursor: resume.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn node(&self, name: &str, lease_ttl_ms: u32) -> Node {
        Node::connect(self, name, lease_ttl_ms).await
    }
}

pub fn authed<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// The next event of a watch; panics when none arrives within 10 s.
pub async fn next_event(stream: &mut Streaming<pb::PresenceEvent>) -> pb::PresenceEvent {
    match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
        Ok(Ok(Some(event))) => event,
        other => panic!("no presence event: {other:?}"),
    }
}

/// The next diff as (type, user, channel), skipping nothing.
pub async fn next_diff(stream: &mut Streaming<pb::PresenceEvent>) -> (String, String, String, pb::PresenceDiff) {
    let event = next_event(stream).await;
    match event.kind {
        Some(pb::presence_event::Kind::Diff(diff)) => {
            (diff.r#type.clone(), diff.user_id.clone(), diff.channel.clone(), diff)
        }
        other => panic!("expected a diff, got {other:?}"),
    }
}

pub fn snapshot(event: pb::PresenceEvent) -> pb::PresenceSnapshot {
    match event.kind {
        Some(pb::presence_event::Kind::Snapshot(snapshot)) => snapshot,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// A gateway node speaking `ReportConnections`.
pub struct Node {
    pub name: String,
    lease_ttl_ms: u32,
    sender: Option<mpsc::Sender<pb::NodeReport>>,
    acks: Streaming<pb::NodeAck>,
    batch: u64,
}

impl Node {
    pub async fn connect(service: &Service, name: &str, lease_ttl_ms: u32) -> Node {
        let (sender, receiver) = mpsc::channel(16);
        let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let acks = service
            .client()
            .report_connections(authed(&service.keys.service, outbound))
            .await
            .unwrap()
            .into_inner();
        Node {
            name: name.to_owned(),
            lease_ttl_ms,
            sender: Some(sender),
            acks,
            batch: 0,
        }
    }

    /// Sends one batch; the answer as it came, or None when the stream is closed or nothing
    /// came within 10 s.
    async fn exchange(
        &mut self,
        events: Vec<pb::ConnectionEvent>,
    ) -> Option<Result<Option<pb::NodeAck>, tonic::Status>> {
        self.batch += 1;
        let report = pb::NodeReport {
            node: self.name.clone(),
            lease_ttl_ms: self.lease_ttl_ms,
            batch: self.batch,
            events,
        };
        self.sender.as_ref()?.send(report).await.ok()?;
        tokio::time::timeout(Duration::from_secs(10), self.acks.message())
            .await
            .ok()
    }

    /// Sends one batch and waits for its ack.
    pub async fn send(&mut self, events: Vec<pb::ConnectionEvent>) -> pb::NodeAck {
        let ack = self
            .exchange(events)
            .await
            .expect("no ack within 10 s")
            .expect("the report was refused")
            .expect("the stream ended");
        assert_eq!(ack.batch, self.batch);
        ack
    }

    /// Sends one batch; None when the stream broke (the service lost its Redis, say).
    pub async fn try_send(&mut self, events: Vec<pb::ConnectionEvent>) -> Option<pb::NodeAck> {
        self.exchange(events).await.and_then(|answer| answer.ok().flatten())
    }

    /// Sends one batch and returns the status it was refused with.
    pub async fn refused(&mut self, events: Vec<pb::ConnectionEvent>) -> tonic::Status {
        match self.exchange(events).await {
            Some(Err(status)) => status,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The node dies: no goodbye, no more renewals.
    pub fn crash(&mut self) {
        self.sender = None;
    }
}

pub fn event(tenant: &str, user: &str, connection: &str, kind: Kind) -> pb::ConnectionEvent {
    pb::ConnectionEvent {
        tenant: tenant.to_owned(),
        user_id: user.to_owned(),
        connection_id: connection.to_owned(),
        time: None,
        kind: Some(kind),
    }
}

pub fn opened(tenant: &str, user: &str, connection: &str, device_id: &str, device_type: &str) -> pb::ConnectionEvent {
    event(
        tenant,
        user,
        connection,
        Kind::Opened(pb::ConnectionOpened {
            device: Some(pb::Device {
                id: device_id.to_owned(),
                r#type: device_type.to_owned(),
                ..Default::default()
            }),
            metas: None,
            channels: Vec::new(),
        }),
    )
}

pub fn closed(tenant: &str, user: &str, connection: &str, clean: bool) -> pb::ConnectionEvent {
    event(tenant, user, connection, Kind::Closed(pb::ConnectionClosed { clean }))
}

pub fn page(tenant: &str, user: &str, connection: &str, page: &str) -> pb::ConnectionEvent {
    event(
        tenant,
        user,
        connection,
        Kind::Updated(pb::Metas {
            current_page: Some(page.to_owned()),
            ..Default::default()
        }),
    )
}

pub fn status(tenant: &str, user: &str, connection: &str, status: &str) -> pb::ConnectionEvent {
    event(
        tenant,
        user,
        connection,
        Kind::Updated(pb::Metas {
            status: Some(status.to_owned()),
            ..Default::default()
        }),
    )
}

pub fn subscribed(tenant: &str, user: &str, connection: &str, channel: &str) -> pb::ConnectionEvent {
    event(tenant, user, connection, Kind::Subscribed(channel.to_owned()))
}
