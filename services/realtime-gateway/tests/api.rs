//! The server API over gRPC and transcoded HTTP: publish with idempotency keys, broadcast,
//! unsubscribe and disconnect users, history, channels and nodes; roles and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{api, data, publish, start};
use switchyard_api::realtime::v1::{
    BroadcastRequest, ChannelsRequest, DisconnectRequest, HistoryRequest, InfoRequest, PublishRequest, StreamPosition,
    UnsubscribeRequest, broadcast_request, publish_request::Payload,
};
use switchyard_platform::{auth::generate_api_key, testing};
use tonic::Code;

fn request(channel: &str, value: serde_json::Value, key: &str) -> PublishRequest {
    PublishRequest {
        channel: channel.to_owned(),
        payload: Some(Payload::Data(data(value))),
        idempotency_key: key.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_retried_publish_with_the_same_key_publishes_once() {
    let gateway = start().await;
    let mut client = gateway.anonymous().await;
    client.subscribe("product:idem").await;
    let mut api = gateway.api();
    let first = api
        .publish(request("product:idem", json!("a"), "order-7-paid"))
        .await
        .unwrap()
        .into_inner();
    let retry = api
        .publish(request("product:idem", json!("a"), "order-7-paid"))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert!(retry.duplicate);
    assert_eq!(first.position, retry.position);
    let other = api
        .publish(request("product:idem", json!("b"), "order-8-paid"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.position.unwrap().offset, 2);
    assert_eq!(client.publication().await["pub"]["data"], "a");
    assert_eq!(client.publication().await["pub"]["data"], "b");
    assert!(client.silent_for(Duration::from_millis(200)).await);
    gateway.stop().await;
}

#[tokio::test]
async fn broadcast_reports_each_channel_on_its_own() {
    let gateway = start().await;
    let mut client = gateway.anonymous().await;
    client.subscribe("product:1").await;
    client.subscribe("product:2").await;
    let response = gateway
        .api()
        .broadcast(BroadcastRequest {
            channels: vec![
                "product:1".into(),
                "no such:channel".into(),
                "product:2".into(),
                "secret:1".into(),
            ],
            payload: Some(broadcast_request::Payload::Data(data(json!({"sale": true})))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<(String, Option<i32>)> = response
        .results
        .iter()
        .map(|result| (result.channel.clone(), result.error.as_ref().map(|error| error.code)))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("product:1".to_owned(), None),
            ("no such:channel".to_owned(), Some(Code::InvalidArgument as i32)),
            ("product:2".to_owned(), None),
            ("secret:1".to_owned(), Some(Code::InvalidArgument as i32)),
        ]
    );
    let mut channels = vec![
        client.publication().await["channel"].clone(),
        client.publication().await["channel"].clone(),
    ];
    channels.sort_by_key(|channel| channel.to_string());
    assert_eq!(channels, vec![json!("product:1"), json!("product:2")]);
    gateway.stop().await;
}

#[tokio::test]
async fn the_server_can_unsubscribe_and_disconnect_a_user_everywhere() {
    let gateway = start().await;
    let mut phone = gateway.user("42", &["order:*"]).await;
    let mut laptop = gateway.user("42", &["order:*"]).await;
    let mut someone_else = gateway.user("43", &["order:*"]).await;
    phone.subscribe("order:1").await;
    laptop.subscribe("order:1").await;
    someone_else.subscribe("order:1").await;
    let mut api = gateway.api();
    api.unsubscribe(UnsubscribeRequest {
        user: "42".into(),
        channel: "order:1".into(),
    })
    .await
    .unwrap();
    for client in [&mut phone, &mut laptop] {
        let push = client.push().await;
        assert_eq!(push["channel"], "order:1");
        assert_eq!(push["unsubscribe"]["code"], 2000);
        assert_eq!(push["unsubscribe"]["resubscribe"], false);
    }
    publish(&mut api, "order:1", json!("shipped")).await;
    assert_eq!(someone_else.publication().await["pub"]["data"], "shipped");
    assert!(phone.silent_for(Duration::from_millis(200)).await);

    api.disconnect(DisconnectRequest {
        user: "42".into(),
        reconnect: false,
        reason: "account suspended".into(),
    })
    .await
    .unwrap();
    for client in [&mut phone, &mut laptop] {
        let closed = client.closed().await;
        assert_eq!(closed.code, 3502);
        let push = closed.push.unwrap();
        assert_eq!(push["push"]["disconnect"]["reason"], "account suspended");
        assert_eq!(push["push"]["disconnect"]["reconnect"], false);
    }
    assert!(someone_else.silent_for(Duration::from_millis(200)).await);
    gateway.stop().await;
}

#[tokio::test]
async fn history_reads_forward_backward_and_after_a_position() {
    let gateway = start().await;
    let mut api = gateway.api();
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = publish(&mut api, "product:h", json!(n)).await["epoch"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let page = api
        .history(HistoryRequest {
            channel: "product:h".into(),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let offsets: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![1, 2]);
    assert_eq!(page.position.unwrap().offset, 5);
    let newest = api
        .history(HistoryRequest {
            channel: "product:h".into(),
            limit: 2,
            reverse: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        newest.publications.iter().map(|p| p.offset).collect::<Vec<_>>(),
        vec![5, 4]
    );
    let after = api
        .history(HistoryRequest {
            channel: "product:h".into(),
            since: Some(StreamPosition {
                offset: 3,
                epoch: epoch.clone(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after.publications.iter().map(|p| p.offset).collect::<Vec<_>>(),
        vec![4, 5]
    );
    let other_epoch = api
        .history(HistoryRequest {
            channel: "product:h".into(),
            since: Some(StreamPosition {
                offset: 3,
                epoch: "gone".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other_epoch.code(), Code::FailedPrecondition);
    let too_many = api
        .history(HistoryRequest {
            channel: "product:h".into(),
            limit: 5_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    gateway.stop().await;
}

#[tokio::test]
async fn channels_and_nodes_show_who_is_subscribed() {
    let gateway = start().await;
    let mut a = gateway.anonymous().await;
    let mut b = gateway.anonymous().await;
    a.subscribe("product:1").await;
    b.subscribe("product:1").await;
    b.subscribe("promo:eid").await;
    let mut api = gateway.api();
    let channels = api
        .channels(ChannelsRequest {
            prefix: "product:".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .channels;
    assert_eq!(channels.len(), 1);
    assert_eq!(
        (channels[0].channel.as_str(), channels[0].subscribers),
        ("product:1", 2)
    );
    let nodes = api.info(InfoRequest {}).await.unwrap().into_inner().nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].connections, nodes[0].subscriptions, nodes[0].channels),
        (2, 3, 2)
    );
    gateway.stop().await;
}

#[tokio::test]
async fn publishing_needs_the_publisher_role_and_valid_input() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, admin) = support::settings(dir.path());
    let viewer = generate_api_key("default", &["viewer"]);
    settings.auth.api_keys.push(viewer.record);
    let gateway = support::start_on(settings, admin, dir).await;
    let mut as_viewer = api(&gateway.running, &viewer.plaintext);
    let denied = as_viewer.publish(request("product:1", json!(1), "")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        as_viewer
            .history(HistoryRequest {
                channel: "product:1".into(),
                ..Default::default()
            })
            .await
            .is_ok()
    );
    let mut anonymous = api(&gateway.running, "sy_not_a_key");
    assert_eq!(
        anonymous
            .publish(request("product:1", json!(1), ""))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut admin = gateway.api();
    for (bad, field) in [
        (request("", json!(1), ""), "channel"),
        (request("a b", json!(1), ""), "channel"),
        (request("unknown:1", json!(1), ""), "channel"),
        (request("product:1", json!(1), &"k".repeat(200)), "idempotency_key"),
        (
            PublishRequest {
                channel: "product:1".into(),
                ..Default::default()
            },
            "payload",
        ),
    ] {
        let status = admin.publish(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
    // Nothing was published by the refused calls.
    let page = admin
        .history(HistoryRequest {
            channel: "product:1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.position.unwrap().offset, 0);
    gateway.stop().await;
}

#[tokio::test]
async fn the_api_is_served_as_json_over_http_too() {
    let gateway = start().await;
    let mut client = gateway.anonymous().await;
    client.subscribe("product:http").await;
    let auth = format!("Bearer {}", gateway.admin_key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let response = testing::http(
        "POST",
        &gateway.http("/v1/realtime/publish"),
        &headers,
        json!({"channel": "product:http", "data": {"price": 10}, "tags": {"kind": "price"}}).to_string(),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["position"]["offset"], "1");
    let push = client.publication().await;
    assert_eq!(push["pub"]["data"], json!({"price": 10}));
    assert_eq!(push["pub"]["tags"], json!({"kind": "price"}));

    let malformed = testing::http(
        "POST",
        &gateway.http("/v1/realtime/publish"),
        &headers,
        "{\"channel\": ",
    )
    .await;
    assert_eq!(malformed.status, 400);
    let unknown = testing::http(
        "POST",
        &gateway.http("/v1/realtime/publish"),
        &headers,
        json!({"channel": "product:http", "data": 1, "color": "red"}).to_string(),
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    let history = testing::http(
        "POST",
        &gateway.http("/v1/realtime/history"),
        &headers,
        json!({"channel": "product:http"}).to_string(),
    )
    .await;
    assert_eq!(history.json()["publications"][0]["data"], json!({"price": 10}));
    assert!(client.silent_for(Duration::from_millis(100)).await);
    gateway.stop().await;
}
