//! Presence through the gateway with real WebSocket clients: the node reports its users'
//! connections, presence-channel subscriptions and `presence` commands to presence-service,
//! a socket that drops and comes back within the grace period is not news, a clean close
//! leaves at once, and bad or too frequent presence commands are refused on the spot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use realtime_gateway::conf::NamespaceSettings;
use serde_json::json;
use switchyard_api::presence::v1::{self as pb, presence_event::Kind, presence_service_client::PresenceServiceClient};
use switchyard_platform::{
    Running, Shutdown,
    auth::{KEY_SYNC_SCOPE, generate_api_key},
    testing,
};
use tokio_tungstenite::tungstenite::Message;
use tonic::{Request, Streaming, transport::Channel};

struct Presence {
    running: Running,
    shutdown: Shutdown,
    viewer: String,
    _dir: tempfile::TempDir,
}

/// presence-service with a grace period of `grace_ms`, and a gateway reporting to it.
async fn start(grace_ms: u64) -> (Presence, support::Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = testing::local(presence_service::conf::defaults(), dir.path());
    let mut shared = generate_api_key("switchyard-services", &[]);
    shared.record.scopes = vec![KEY_SYNC_SCOPE.to_owned()];
    settings.auth.api_keys.push(shared.record);
    // Gateway tokens carry no tenant: their users are the gateway's anonymous tenant's.
    let viewer = generate_api_key("default", &["viewer"]);
    settings.auth.api_keys.push(viewer.record);
    settings.service.offline_grace_ms = grace_ms;
    settings.service.cleanup_interval_ms = 50;
    let shutdown = Shutdown::new();
    let running = presence_service::start(settings, shutdown.clone()).await.unwrap();
    let presence_addr = format!("http://{}", running.grpc_addr);
    let gateway = support::start_with(|settings| {
        settings.auth.key_sync_credential = Some(shared.plaintext.clone());
        settings.peers.insert("presence-service".into(), vec![presence_addr]);
        // The shared credential also follows config-service's key store, absent here.
        settings
            .peers
            .insert("config-service".into(), vec!["http://127.0.0.1:9".into()]);
        settings.service.presence.flush_ms = 5;
        settings.service.live.scan_ms = 50;
        settings.service.namespaces.insert(
            "room".into(),
            NamespaceSettings {
                history_size: 10,
                history_ttl_secs: 60,
                presence: true,
                presence_members: true,
                ..NamespaceSettings::default()
            },
        );
    })
    .await;
    let presence = Presence {
        running,
        shutdown,
        viewer: viewer.plaintext,
        _dir: dir,
    };
    (presence, gateway)
}

impl Presence {
    fn client(&self) -> PresenceServiceClient<Channel> {
        PresenceServiceClient::new(testing::grpc_channel(&self.running))
    }

    fn authed<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", self.viewer).parse().unwrap());
        request
    }

    async fn user(&self, user: &str) -> pb::Presence {
        let request = self.authed(pb::GetPresenceRequest { user_id: user.into() });
        match self.client().get_presence(request).await {
            Ok(presence) => presence.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => pb::Presence::default(),
            Err(status) => panic!("{status}"),
        }
    }

    /// Polls until `check` holds for the user: reports travel in batches.
    async fn until(&self, user: &str, check: impl Fn(&pb::Presence) -> bool) -> pb::Presence {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let presence = self.user(user).await;
            if check(&presence) {
                return presence;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "presence never became as expected: {presence:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn watch(&self, user: &str) -> Streaming<pb::PresenceEvent> {
        let request = self.authed(pb::WatchPresenceRequest {
            user_ids: vec![user.into()],
            ..Default::default()
        });
        let mut stream = self.client().watch_presence(request).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert!(matches!(first.kind, Some(Kind::Snapshot(_))));
        stream
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
    }
}

async fn next_diff(stream: &mut Streaming<pb::PresenceEvent>) -> pb::PresenceDiff {
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no presence event within 10 s")
        .unwrap()
        .unwrap();
    match event.kind {
        Some(Kind::Diff(diff)) => diff,
        other => panic!("expected a diff, got {other:?}"),
    }
}

/// A client of user `user` on the device `device_id`, connected with its device and page.
async fn device(gateway: &support::Gateway, user: &str, device_id: &str, kind: &str) -> support::Client {
    let mut client = gateway.client().await;
    let token = support::token(user, &[], 300);
    let reply = client
        .command(
            "connect",
            json!({"token": token, "device": {"id": device_id, "type": kind}, "presence": {"current_page": "/home"}}),
        )
        .await;
    assert!(reply.get("connect").is_some(), "{reply}");
    client
}

#[tokio::test]
async fn two_phones_and_a_browser_through_the_gateway() {
    let (presence, gateway) = start(60_000).await;
    let mut phone = device(&gateway, "42", "phone-1", "phone").await;
    let _tablet = device(&gateway, "42", "phone-2", "phone").await;
    let mut browser = device(&gateway, "42", "browser-1", "web").await;
    assert!(browser.subscribe("product:sku-1").await.get("subscribe").is_some());
    assert!(phone.subscribe("product:sku-1").await.get("subscribe").is_some());
    let reply = phone
        .command("presence", json!({"current_page": "/product/sku-1", "shopping_activity": {"viewing_product": "sku-1", "cart_items": 1}}))
        .await;
    assert!(reply.get("presence").is_some(), "{reply}");

    let seen = presence
        .until("42", |p| p.device_count == 3 && p.current_page == "/product/sku-1")
        .await;
    assert!(seen.online);
    let stats = presence
        .client()
        .get_channel_presence_stats(presence.authed(pb::GetChannelPresenceStatsRequest {
            channel: "product:sku-1".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.connections, stats.users), (2, 1), "two connections of one user");

    // A clean close leaves at once.
    browser.send_message(Message::Close(None)).await;
    presence.until("42", |p| p.device_count == 2).await;
    gateway.stop().await;
    presence.stop().await;
}

#[tokio::test]
async fn a_socket_that_drops_and_returns_within_the_grace_period_is_not_news() {
    let (presence, gateway) = start(60_000).await;
    let phone = device(&gateway, "7", "phone-7", "phone").await;
    presence.until("7", |p| p.online).await;
    let mut watch = presence.watch("7").await;

    drop(phone); // the train enters a tunnel: no close frame
    // The phone notices and comes back once the gateway has noticed too (so the loss is
    // reported first, as on a real network where the old socket times out).
    presence
        .until("7", |p| p.connections.iter().any(|c| c.reconnecting))
        .await;
    let mut back = device(&gateway, "7", "phone-7", "phone").await;
    let reply = back.command("presence", json!({"current_page": "/cart"})).await;
    assert!(reply.get("presence").is_some(), "{reply}");
    let diff = next_diff(&mut watch).await;
    assert_eq!(diff.r#type, "update", "no leave and join came first: {diff:?}");
    let after = diff.presence.unwrap();
    assert_eq!((after.device_count, after.current_page.as_str()), (1, "/cart"));

    back.send_message(Message::Close(None)).await;
    let diff = next_diff(&mut watch).await;
    assert_eq!(
        diff.r#type, "leave",
        "a clean close leaves at once, without waiting for the grace period"
    );
    gateway.stop().await;
    presence.stop().await;
}

#[tokio::test]
async fn bad_or_too_frequent_presence_commands_are_refused_and_the_connection_stays() {
    let (presence, gateway) = start(60_000).await;
    let mut phone = device(&gateway, "9", "phone-9", "phone").await;
    for bad in [
        json!({"status": "sleeping"}),
        json!({"current_page": "x".repeat(600)}),
        json!({"unknown": 1}),
        json!({"connection_quality": "superb"}),
    ] {
        let reply = phone.command("presence", bad.clone()).await;
        assert_eq!(reply["error"]["code"], 107, "{bad} → {reply}");
    }
    let mut limited = false;
    for n in 0..20 {
        let reply = phone
            .command("presence", json!({"current_page": format!("/p/{n}")}))
            .await;
        if reply.get("error").is_some() {
            assert_eq!(reply["error"]["code"], 106, "{reply}");
            limited = true;
            break;
        }
    }
    assert!(limited, "presence updates are rate-limited per connection");
    assert!(
        phone.command("ping", json!({})).await.get("pong").is_some(),
        "the connection stays"
    );
    let seen = presence.until("9", |p| p.online).await;
    assert_eq!(seen.status, "online", "nothing bad reached presence-service");

    let mut anonymous = gateway.anonymous().await;
    let reply = anonymous.command("presence", json!({"status": "away"})).await;
    assert!(
        reply.get("error").is_some(),
        "anonymous clients have no presence: {reply}"
    );
    gateway.stop().await;
    presence.stop().await;
}

#[tokio::test]
async fn a_browser_sees_who_is_in_a_room_without_polling() {
    let (presence, gateway) = start(60_000).await;
    let mut alice = gateway.user("alice", &["room:*"]).await;
    let reply = alice.subscribe("$presence:room:1").await;
    let snapshot = &reply["subscribe"]["presence"];
    assert_eq!(snapshot["type"], "snapshot", "{reply}");
    assert_eq!(snapshot["members"], json!([]));

    let mut bob = gateway.user("bob", &["room:*"]).await;
    assert!(bob.subscribe("room:1").await.get("subscribe").is_some());
    // As a client applies them: a snapshot replaces the members, a diff changes one.
    let mut members = std::collections::BTreeSet::new();
    while !members.contains("bob") {
        apply(&mut members, &alice.publication().await["pub"]["data"]);
    }
    assert!(
        bob.command("unsubscribe", json!({"channel": "room:1"}))
            .await
            .get("unsubscribe")
            .is_some()
    );
    let left = alice.publication().await["pub"]["data"].clone();
    assert_eq!(
        (left["type"].as_str(), left["user_id"].as_str()),
        (Some("leave"), Some("bob")),
        "{left}"
    );
    assert!(left["sequence"].as_u64().unwrap() > 0);

    // Whoever may not subscribe to the room may not see who is in it; a namespace that
    // counts presence without naming members refuses everyone.
    let mut stranger = gateway.user("mallory", &[]).await;
    assert_eq!(stranger.subscribe("$presence:room:1").await["error"]["code"], 103);
    assert_eq!(alice.subscribe("$presence:product:sku-1").await["error"]["code"], 103);
    assert_eq!(
        alice
            .command("publish", json!({"channel": "$presence:room:1", "data": {}}))
            .await["error"]["code"],
        103
    );
    gateway.stop().await;
    presence.stop().await;
}

fn apply(members: &mut std::collections::BTreeSet<String>, data: &serde_json::Value) {
    match data["type"].as_str() {
        Some("snapshot") => {
            *members = data["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|member| member["user_id"].as_str().unwrap().to_owned())
                .collect();
        }
        Some("join") => {
            members.insert(data["user_id"].as_str().unwrap().to_owned());
        }
        Some("leave") => {
            members.remove(data["user_id"].as_str().unwrap());
        }
        _ => {}
    }
}
