//! Server-Sent Events: receive-only clients, several channels per stream, and resuming with
//! `Last-Event-ID` under the same recovery rules as WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{publish, sse, start, token};

#[tokio::test]
async fn an_sse_client_receives_publications_of_its_channels_with_resumable_ids() {
    let gateway = start().await;
    let mut stream = sse(&gateway, "/realtime/sse?channel=product:1&channel=promo:eid", &[])
        .await
        .unwrap();
    let mut api = gateway.api();
    publish(&mut api, "product:1", json!({"price": 5})).await;
    publish(&mut api, "promo:eid", json!({"title": "Eid sale"})).await;
    let first = stream.next().await;
    assert_eq!(first.json()["channel"], "product:1");
    assert_eq!(first.json()["pub"]["data"], json!({"price": 5}));
    let second = stream.next().await;
    assert_eq!(second.json()["pub"]["data"]["title"], "Eid sale");
    // One position per channel, in request order: epoch:offset,epoch:offset.
    let id = second.id.unwrap();
    let parts: Vec<&str> = id.split(',').collect();
    assert_eq!(parts.len(), 2);
    assert!(parts[0].ends_with(":1") && parts[1].ends_with(":1"), "{id}");
    gateway.stop().await;
}

#[tokio::test]
async fn last_event_id_recovers_what_an_sse_client_missed() {
    let gateway = start().await;
    let mut api = gateway.api();
    let mut stream = sse(&gateway, "/realtime/sse?channel=product:2", &[]).await.unwrap();
    publish(&mut api, "product:2", json!(1)).await;
    let seen = stream.next().await;
    drop(stream);
    publish(&mut api, "product:2", json!(2)).await;
    publish(&mut api, "product:2", json!(3)).await;
    let last_id = seen.id.unwrap();
    let mut resumed = sse(
        &gateway,
        "/realtime/sse?channel=product:2",
        &[("last-event-id", &last_id)],
    )
    .await
    .unwrap();
    assert_eq!(resumed.next().await.json()["pub"]["data"], 2);
    assert_eq!(resumed.next().await.json()["pub"]["data"], 3);
    publish(&mut api, "product:2", json!(4)).await;
    let live = resumed.next().await;
    assert_eq!(live.json()["pub"]["data"], 4);
    assert!(live.id.unwrap().ends_with(":4"));

    let epoch = last_id.split(':').next().unwrap().to_owned();
    let stale = format!("not-{epoch}:1");
    let mut lost = sse(
        &gateway,
        "/realtime/sse?channel=product:2",
        &[("last-event-id", &stale)],
    )
    .await
    .unwrap();
    let event = lost.next().await;
    assert_eq!(event.event.as_deref(), Some("unrecovered"));
    assert_eq!(event.json()["offset"], 4);
    gateway.stop().await;
}

#[tokio::test]
async fn sse_requests_are_checked_like_websocket_subscriptions() {
    let gateway = start().await;
    let (status, body) = sse(&gateway, "/realtime/sse?channel=order:1", &[]).await.err().unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, _) = sse(&gateway, "/realtime/sse", &[]).await.err().unwrap();
    assert_eq!(status, 400);
    let (status, body) = sse(&gateway, "/realtime/sse?channel=product:1&colour=red", &[])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("colour"));
    let (status, _) = sse(
        &gateway,
        "/realtime/sse?channel=product:1",
        &[("last-event-id", "garbage")],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(status, 400);
    let expired = format!("Bearer {}", token("9", &["order:1"], -120));
    let (status, _) = sse(
        &gateway,
        "/realtime/sse?channel=order:1",
        &[("authorization", &expired)],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(status, 401);

    let valid = format!("Bearer {}", token("9", &["order:1"], 300));
    let mut stream = sse(&gateway, "/realtime/sse?channel=order:1", &[("authorization", &valid)])
        .await
        .unwrap();
    publish(&mut gateway.api(), "order:1", json!("packed")).await;
    assert_eq!(stream.next().await.json()["pub"]["data"], "packed");
    gateway.stop().await;
}

#[tokio::test]
async fn every_replayed_event_carries_the_positions_as_of_itself() {
    let gateway = start().await;
    let mut api = gateway.api();
    let path = "/realtime/sse?channel=product:a&channel=product:b";
    let mut stream = sse(&gateway, path, &[]).await.unwrap();
    publish(&mut api, "product:a", json!("a1")).await;
    let a1 = stream.next().await;
    publish(&mut api, "product:b", json!("b1")).await;
    let b1 = stream.next().await;
    let resume_from = b1.id.clone().unwrap();
    drop(stream);
    publish(&mut api, "product:a", json!("a2")).await;
    publish(&mut api, "product:b", json!("b2")).await;
    let mut resumed = sse(&gateway, path, &[("last-event-id", &resume_from)]).await.unwrap();
    let a2 = resumed.next().await;
    let b2 = resumed.next().await;
    assert_eq!(
        (a2.json()["pub"]["data"].clone(), b2.json()["pub"]["data"].clone()),
        (json!("a2"), json!("b2"))
    );
    // While a2 is replayed, b is still where the client left it: a reconnect right after a2
    // must still recover b2.
    let a2_id: Vec<String> = a2.id.unwrap().split(',').map(str::to_owned).collect();
    let before: Vec<String> = resume_from.split(',').map(str::to_owned).collect();
    assert!(a2_id[0].ends_with(":2"), "{a2_id:?}");
    assert_eq!(a2_id[1], before[1]);
    assert!(b2.id.unwrap().ends_with(":2"));
    assert!(a1.id.is_some());
    gateway.stop().await;
}
