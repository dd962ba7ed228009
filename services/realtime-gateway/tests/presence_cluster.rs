//! Presence as the operators run it: three gateway nodes (one a process of its own,
//! so it can be killed) reporting to two presence-service replicas over Redis and
//! PostgreSQL, real WebSocket clients with tokens. Killing a node takes its users offline —
//! and only its connections: a user with a device on another node stays online, one update.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use switchyard_api::presence::v1::{self as pb, presence_event::Kind, presence_service_client::PresenceServiceClient};
use switchyard_platform::{
    Running, Shutdown,
    auth::{KEY_SYNC_SCOPE, generate_api_key},
    testing::{self, ServiceProcess},
};
use tonic::Request;

struct Replica {
    running: Running,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_gateway_node_takes_exactly_its_connections_offline() {
    // Two presence-service replicas sharing Redis (a prefix of their own) and PostgreSQL.
    let mut shared = generate_api_key("switchyard-services", &[]);
    shared.record.scopes = vec![KEY_SYNC_SCOPE.to_owned()];
    let viewer = generate_api_key("default", &["viewer"]);
    let database = testing::fresh_postgres_database().await;
    let prefix = format!("sy-test:{}:", uuid::Uuid::new_v4().simple());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = testing::local(presence_service::conf::defaults(), dir.path());
        settings.storage.url = database.clone();
        settings.redis_url = Some(testing::redis_url());
        settings.service.redis_prefix = prefix.clone();
        settings.service.offline_grace_ms = 500;
        settings.service.cleanup_interval_ms = 50;
        settings.auth.api_keys = vec![shared.record.clone(), viewer.record.clone()];
        let shutdown = Shutdown::new();
        let running = presence_service::start(settings, shutdown.clone()).await.unwrap();
        replicas.push(Replica {
            running,
            shutdown,
            _dir: dir,
        });
    }
    let presence_peers: Vec<String> = replicas
        .iter()
        .map(|replica| format!("http://{}", replica.running.grpc_addr))
        .collect();

    // Three gateway nodes reporting to both replicas; node A runs as its own process.
    let adjust = |settings: &mut realtime_gateway::conf::Settings| {
        settings.auth.key_sync_credential = Some(shared.plaintext.clone());
        settings.peers.insert("presence-service".into(), presence_peers.clone());
        settings
            .peers
            .insert("config-service".into(), vec!["http://127.0.0.1:9".into()]);
        settings.service.presence.lease_ttl_ms = 1_000;
        settings.service.presence.flush_ms = 5;
    };
    let process_dir = tempfile::tempdir().unwrap();
    let (mut process_settings, _) = support::settings(process_dir.path());
    adjust(&mut process_settings);
    process_settings.telemetry.log_filter = "info".into();
    let mut node_a = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_realtime-gateway"),
        &process_settings,
        process_dir.path(),
    );
    let node_b = support::start_with(adjust).await;
    let node_c = support::start_with(adjust).await;

    let connect = |url: String, user: &'static str, device: &'static str| async move {
        let mut client = support::Client::open(&url).await;
        let token = support::token(user, &[], 300);
        let reply = client
            .command(
                "connect",
                json!({"token": token, "device": {"id": device, "type": "phone"}}),
            )
            .await;
        assert!(reply.get("connect").is_some(), "{reply}");
        client
    };
    let a_url = format!("{}/realtime/websocket", node_a.http_url.replace("http://", "ws://"));
    let _alice = connect(a_url.clone(), "alice", "alice-phone").await;
    let _carol_phone = connect(a_url, "carol", "carol-phone").await;
    let _bob = connect(node_b.ws_url(), "bob", "bob-phone").await;
    let _carol_laptop = connect(node_c.ws_url(), "carol", "carol-laptop").await;

    let mut client = PresenceServiceClient::new(testing::grpc_channel(&replicas[1].running));
    let key = viewer.plaintext.clone();
    let authed = |message| as_viewer(&key, message);
    // Wait until every connection is reported.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = client
            .batch_get_presence(authed(pb::BatchGetPresenceRequest {
                user_ids: vec!["alice".into(), "bob".into(), "carol".into()],
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let devices: Vec<i32> = found.presences.iter().map(|presence| presence.device_count).collect();
        if devices == [1, 1, 2] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all reported: {devices:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut watch = client
        .watch_presence(as_viewer(
            &key,
            pb::WatchPresenceRequest {
                user_ids: vec!["alice".into(), "bob".into(), "carol".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        watch.message().await.unwrap().unwrap().kind,
        Some(Kind::Snapshot(_))
    ));

    node_a.kill();
    let mut events = Vec::new();
    while events.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(15), watch.message())
            .await
            .expect("the dead node's users were never taken offline")
            .unwrap()
            .unwrap();
        if let Some(Kind::Diff(diff)) = event.kind {
            let presence = diff.presence.unwrap_or_default();
            events.push((diff.r#type, diff.user_id, presence.device_count));
        }
    }
    events.sort();
    assert_eq!(
        events,
        [
            ("leave".to_owned(), "alice".to_owned(), 0),
            ("update".to_owned(), "carol".to_owned(), 1)
        ],
        "alice left, carol kept her laptop, bob was untouched"
    );
    let bob = client
        .get_presence(as_viewer(&key, pb::GetPresenceRequest { user_id: "bob".into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(bob.online);

    node_b.stop().await;
    node_c.stop().await;
    for replica in replicas {
        replica.shutdown.trigger();
        replica.running.wait().await;
    }
}

fn as_viewer<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}
