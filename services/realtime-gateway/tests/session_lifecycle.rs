//! A connection whose task ends without closing its session — a panic, a task cancelled at
//! shutdown — must not leave subscriptions or a slot under its user's connection limit behind.
//! No client can make the gateway's tasks panic, so this drives the session itself, as the
//! WebSocket and SSE transports do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
};

use realtime_gateway::{
    biz::{
        gateway::{Gateway, Node},
        hub::Hub,
        metrics::GatewayMetrics,
        protocol::Disconnect,
        session::Session,
    },
    data::MemoryBroker,
};
use serde_json::json;
use switchyard_platform::auth::Authenticator;

const SECRET: &str = "session-lifecycle-secret";

fn gateway(hub: &Arc<Hub>, metrics: &GatewayMetrics) -> Arc<Gateway<MemoryBroker>> {
    let mut settings = realtime_gateway::conf::defaults();
    settings.auth.jwt_hs256_secret = Some(SECRET.into());
    settings.service.client.max_connections_per_user = 1;
    let authenticator = Arc::new(Authenticator::from_settings(&settings.auth).unwrap());
    let node = Node {
        id: "node-1".into(),
        version: "test".into(),
        started_at_ms: 0,
    };
    Arc::new(Gateway::new(
        MemoryBroker::new(hub.clone()),
        hub.clone(),
        settings.service,
        authenticator,
        metrics.clone(),
        node,
    ))
}

fn connect_frame(user: &str) -> Vec<u8> {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user, "channels": ["product:*"], "exp": expires}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    json!({"id": 1, "connect": {"token": token}}).to_string().into_bytes()
}

fn subscriptions(hub: &Hub) -> usize {
    hub.topics().iter().map(|(_, subscribers)| subscribers).sum()
}

#[tokio::test]
async fn a_session_dropped_without_closing_leaves_the_hub_and_frees_its_user_slot() {
    let metrics = GatewayMetrics::new();
    let hub = Arc::new(Hub::new(metrics.clone()));
    let gateway = gateway(&hub, &metrics);
    let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut replies = Vec::new();

    let mut first = Session::open(&gateway, address).unwrap();
    first.handle_frame(&connect_frame("ana"), &mut replies).await.unwrap();
    for (id, channel) in [(2, "product:1"), (3, "product:2")] {
        let subscribe = json!({"id": id, "subscribe": {"channel": channel}}).to_string();
        first.handle_frame(subscribe.as_bytes(), &mut replies).await.unwrap();
    }
    assert!(
        !String::from_utf8_lossy(&replies).contains("error"),
        "{}",
        String::from_utf8_lossy(&replies)
    );
    assert_eq!(subscriptions(&hub), 2);
    assert_eq!(hub.users(), 1);

    // The user's one connection slot is taken while the first session lives.
    let mut second = Session::open(&gateway, address).unwrap();
    let refused = second.handle_frame(&connect_frame("ana"), &mut Vec::new()).await;
    assert_eq!(
        refused.err().map(|disconnect| disconnect.code),
        Some(Disconnect::CONNECTION_LIMIT)
    );
    drop(second);

    // The task running the first session ends without `close`.
    drop(first);
    assert_eq!(subscriptions(&hub), 0, "no subscriber left behind");
    assert_eq!(hub.users(), 0, "the user's slot is free");

    let mut again = Session::open(&gateway, address).unwrap();
    again
        .handle_frame(&connect_frame("ana"), &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(hub.users(), 1);
    again.close().await;
    assert_eq!(hub.users(), 0);
}
