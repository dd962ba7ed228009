//! The query and update API as callers use it over HTTP: the ecosystem's four routes answer
//! with their field names, lists page stably while users come and go, channels list members
//! and counts, tenants see only themselves, and bad input changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::{opened, page, subscribed};
use switchyard_platform::testing;

const HOUR: u64 = 3_600_000;

async fn send(service: &support::Service, method: &str, key: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let response = testing::http_as(method, &service.http(path), key, &[], body).await;
    let status = response.status;
    let text = response.text();
    let json = if text.is_empty() { Value::Null } else { response.json() };
    (status, json)
}

async fn the_ecosystems_routes_work_unchanged(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let editor = Some(service.keys.editor.as_str());
    let (code, body) = send(
        &service,
        "PUT",
        editor,
        "/api/v1/realtime/presence",
        json!({
            "user_id": "42",
            "status": "online",
            "current_page": "/product/sku-1",
            "shopping_activity": {"viewing_product": "sku-1", "cart_items": 2, "in_checkout": false},
            "location": {"country": "bd", "city": "Dhaka"},
            "device": {"id": "android-1", "type": "phone"}
        }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["user_id"], "42", "snake_case, as Kratos answers");
    assert_eq!(body["online"], true);
    assert_eq!(body["device_count"], 1);
    assert_eq!(body["location"]["country"], "BD");

    let viewer = Some(service.keys.viewer.as_str());
    let (code, body) = send(&service, "GET", viewer, "/api/v1/realtime/presence/42", Value::Null).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["current_page"], "/product/sku-1");
    assert_eq!(body["shopping_activity"]["cart_items"], 2);
    assert!(body["last_seen_time"].is_string());

    let (code, body) = send(&service, "GET", viewer, "/api/v1/realtime/online-users", Value::Null).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["user_ids"], json!(["42"]));
    assert_eq!(body["count"], 1);

    let (code, body) = send(
        &service,
        "GET",
        viewer,
        "/api/v1/realtime/presence/bulk?user_ids=42,7",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let presences = body["presences"].as_array().unwrap();
    assert_eq!(presences.len(), 2);
    assert_eq!(
        (presences[0]["user_id"].as_str(), presences[0]["online"].as_bool()),
        (Some("42"), Some(true))
    );
    assert_eq!(
        (presences[1]["user_id"].as_str(), presences[1]["status"].as_str()),
        (Some("7"), Some("offline"))
    );

    // The same RPCs on their own routes answer in proto3 JSON (lowerCamelCase).
    let (_, body) = send(&service, "GET", viewer, "/v1/presence/users/42", Value::Null).await;
    assert_eq!(body["userId"], "42");

    // Ending the report: offline at once.
    let (code, body) = send(
        &service,
        "PUT",
        editor,
        "/v1/presence/users/42",
        json!({"status": "offline", "device": {"id": "android-1"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["online"], false);
    service.stop().await;
}

async fn online_users_page_stably_while_users_come_and_go(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    let ids: Vec<String> = (0..50).map(|n| format!("user-{n:03}")).collect();
    node.send(
        ids.iter()
            .enumerate()
            .map(|(n, id)| opened("acme", id, &format!("node-a.{n}"), "", "phone"))
            .collect(),
    )
    .await;
    let viewer = Some(service.keys.viewer.as_str());
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut round = 0;
    loop {
        let path = format!("/v1/presence/online?page_size=10&page_token={token}");
        let (code, body) = send(&service, "GET", viewer, &path, Value::Null).await;
        assert_eq!(code, 200, "{body}");
        seen.extend(
            body["userIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned()),
        );
        token = body["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
        // Churn between pages: someone already listed leaves, a newcomer joins ahead.
        round += 1;
        node.send(vec![
            support::closed("acme", &ids[round], &format!("node-a.{round}"), true),
            opened(
                "acme",
                &format!("aaa-{round}"),
                &format!("node-a.new{round}"),
                "",
                "web",
            ),
        ])
        .await;
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user listed twice");
    for id in &ids[round + 1..] {
        assert!(unique.contains(id), "{id} was online throughout and must be listed");
    }
    service.stop().await;
}

async fn filters_channels_and_counts(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![
        opened("acme", "u1", "node-a.1", "", "phone"),
        opened("acme", "u2", "node-a.2", "", "web"),
        opened("acme", "u2", "node-a.3", "", "web"),
        page("acme", "u1", "node-a.1", "/product/sku-1"),
        page("acme", "u2", "node-a.2", "/checkout"),
        subscribed("acme", "u1", "node-a.1", "product:sku-1"),
        subscribed("acme", "u2", "node-a.2", "product:sku-1"),
        subscribed("acme", "u2", "node-a.3", "product:sku-1"),
    ])
    .await;
    let viewer = Some(service.keys.viewer.as_str());
    let (_, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/online?page_prefix=/product",
        Value::Null,
    )
    .await;
    assert_eq!(body["userIds"], json!(["u1"]));
    let (_, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/online?device_type=web",
        Value::Null,
    )
    .await;
    assert_eq!(body["userIds"], json!(["u2"]));
    let (_, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/channels:stats?channel=product:sku-1",
        Value::Null,
    )
    .await;
    assert_eq!(
        (body["connections"].as_i64(), body["users"].as_i64()),
        (Some(3), Some(2)),
        "{body}"
    );
    let (_, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/channels:members?channel=product:sku-1&page_size=1",
        Value::Null,
    )
    .await;
    assert_eq!(body["members"][0]["userId"], "u1");
    let token = body["nextPageToken"].as_str().unwrap().to_owned();
    let path = format!("/v1/presence/channels:members?channel=product:sku-1&page_size=1&page_token={token}");
    let (_, body) = send(&service, "GET", viewer, &path, Value::Null).await;
    assert_eq!(body["members"][0]["userId"], "u2");
    assert_eq!(body["members"][0]["connections"], 2);
    assert_eq!(body["nextPageToken"], "");
    service.stop().await;
}

async fn tenants_see_only_themselves(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![
        opened("acme", "u1", "node-a.1", "", "phone"),
        opened("other", "u9", "node-a.2", "", "phone"),
        subscribed("acme", "u1", "node-a.1", "product:sku-1"),
    ])
    .await;
    let other = Some(service.keys.other_tenant.as_str());
    let (code, _) = send(&service, "GET", other, "/v1/presence/users/u1", Value::Null).await;
    assert_eq!(code, 404, "acme's user does not exist for another tenant");
    let (_, body) = send(&service, "GET", other, "/v1/presence/online", Value::Null).await;
    assert_eq!(body["userIds"], json!(["u9"]));
    let (_, body) = send(
        &service,
        "GET",
        other,
        "/v1/presence/channels:stats?channel=product:sku-1",
        Value::Null,
    )
    .await;
    assert_eq!(body["users"], 0);
    let (code, _) = send(&service, "GET", None, "/v1/presence/users/u1", Value::Null).await;
    assert_eq!(code, 401);
    // A viewer reads but does not report presence.
    let viewer = Some(service.keys.viewer.as_str());
    let (code, _) = send(
        &service,
        "PUT",
        viewer,
        "/v1/presence/users/u1",
        json!({"status": "busy"}),
    )
    .await;
    assert_eq!(code, 403);
    // Nobody but the services reports connections.
    let mut client = service.client();
    let refused = client
        .report_connections(support::authed(
            &service.keys.admin,
            tokio_stream::iter(Vec::<switchyard_api::presence::v1::NodeReport>::new()),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    service.stop().await;
}

async fn bad_input_is_refused_and_changes_nothing(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let editor = Some(service.keys.editor.as_str());
    let viewer = Some(service.keys.viewer.as_str());
    let cases = [
        json!({"user_id": "u1", "status": "sleeping"}),
        json!({"user_id": "u1", "current_page": "x".repeat(600)}),
        json!({"user_id": "u1", "location": {"country": "Bangladesh"}}),
        json!({"user_id": "u1", "device": {"type": "toaster"}}),
        json!({"user_id": "u1", "ttl_seconds": 99999}),
        json!({"user_id": "u1", "shopping_activity": {"cart_items": -1}}),
        json!({"user_id": "u1\u{1f}x"}),
        json!({"user_id": "", "status": "online"}),
        json!({"user_id": "u1", "status": 5}),
        json!({"user_id": "u1", "unknown_field": true}),
    ];
    for case in cases {
        let (code, body) = send(&service, "PUT", editor, "/api/v1/realtime/presence", case.clone()).await;
        assert_eq!(code, 400, "{case} → {body}");
    }
    let (code, _) = send(
        &service,
        "PUT",
        editor,
        "/api/v1/realtime/presence",
        Value::String("{".into()),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = send(&service, "GET", viewer, "/v1/presence/users/u1", Value::Null).await;
    assert_eq!(code, 404, "nothing was recorded");

    let many: Vec<String> = (0..1001).map(|n| format!("u{n}")).collect();
    let (code, body) = send(
        &service,
        "POST",
        viewer,
        "/v1/presence/users:batchGet",
        json!({"userIds": many}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("1000"), "{body}");
    let (code, _) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/online?page_token=forged",
        Value::Null,
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence:watch?user_ids=u1&resume_cursor=nope",
        Value::Null,
    )
    .await;
    assert_eq!(code, 400);

    // A node's batch applies what is valid and names what it refused.
    let mut node = service.node("node-a", 30_000).await;
    let ack = node
        .send(vec![
            support::opened("acme", "u1", "node-a.1", "", "phone"),
            support::status("acme", "u1", "node-a.1", "sleeping"),
            support::page("acme", "u1", "node-a.1", "/ok"),
        ])
        .await;
    assert_eq!(ack.rejected.len(), 1, "{:?}", ack.rejected);
    assert!(
        ack.rejected[0].starts_with("events[1].updated.status"),
        "{:?}",
        ack.rejected
    );
    let presence = service.presence(&service.keys.viewer, "u1").await;
    assert_eq!(
        (presence.status.as_str(), presence.current_page.as_str()),
        ("online", "/ok")
    );
    // A malformed batch is refused whole.
    let mut bad_node = service.node("", 30_000).await;
    let refused = bad_node.refused(vec![]).await;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    service.stop().await;
}

async fn a_user_updated_too_often_is_told_to_slow_down(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let editor = Some(service.keys.editor.as_str());
    let mut codes = Vec::new();
    for n in 0..40 {
        let (code, _) = send(
            &service,
            "PUT",
            editor,
            "/v1/presence/users/u1",
            json!({"metas": {"currentPage": format!("/p/{n}")}}),
        )
        .await;
        codes.push(code);
    }
    assert!(codes.contains(&429), "{codes:?}");
    let (code, _) = send(
        &service,
        "PUT",
        editor,
        "/v1/presence/users/u2",
        json!({"status": "busy"}),
    )
    .await;
    assert_eq!(code, 200, "another user is not limited by u1's updates");
    service.stop().await;
}

async fn reads_summarize_users_unless_asked_for_every_connection(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let editor = Some(service.keys.editor.as_str());
    for device in ["android-1", "web-1"] {
        let (code, body) = send(
            &service,
            "PUT",
            editor,
            "/v1/presence/users/u1",
            json!({"status": "online", "currentPage": "/cart", "device": {"id": device, "type": "phone"}}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    let viewer = Some(service.keys.viewer.as_str());

    let (code, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/users:batchGet?user_ids=u1",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let summary = &body["presences"][0];
    assert_eq!(
        (&summary["deviceCount"], &summary["currentPage"], &summary["online"]),
        (&json!(2), &json!("/cart"), &json!(true))
    );
    assert!(
        summary["connections"].as_array().is_none_or(Vec::is_empty),
        "the default view leaves connections out: {body}"
    );

    let (code, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/users:batchGet?user_ids=u1&view=PRESENCE_VIEW_FULL",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let devices: BTreeSet<&str> = body["presences"][0]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|connection| connection["device"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(devices, BTreeSet::from(["android-1", "web-1"]));

    // Listings have the same views.
    let (_, body) = send(&service, "GET", viewer, "/v1/presence/online", Value::Null).await;
    assert_eq!(body["users"][0]["deviceCount"], 2, "{body}");
    assert!(
        body["users"][0]["connections"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );
    let (_, body) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/online?device_type=phone&view=PRESENCE_VIEW_FULL",
        Value::Null,
    )
    .await;
    assert_eq!(
        body["users"][0]["connections"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let (code, _) = send(
        &service,
        "GET",
        viewer,
        "/v1/presence/online?view=PRESENCE_VIEW_ALL",
        Value::Null,
    )
    .await;
    assert_eq!(code, 400);

    // The seed's bulk route is the same read: the summary, in snake_case.
    let (_, body) = send(
        &service,
        "GET",
        viewer,
        "/api/v1/realtime/presence/bulk?user_ids=u1",
        Value::Null,
    )
    .await;
    assert_eq!(body["presences"][0]["device_count"], 2, "{body}");

    // An unknown name fails to parse; an unknown number parses and is refused by name.
    for (bad, named) in [
        (
            json!({"userIds": ["u1"], "view": "PRESENCE_VIEW_ALL"}),
            "PRESENCE_VIEW_ALL",
        ),
        (json!({"userIds": ["u1"], "view": 9}), "view"),
    ] {
        let (code, body) = send(&service, "POST", viewer, "/v1/presence/users:batchGet", bad).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.to_string().contains(named), "{body}");
    }
    service.stop().await;
}

on_both_stores!(
    reads_summarize_users_unless_asked_for_every_connection,
    the_ecosystems_routes_work_unchanged,
    online_users_page_stably_while_users_come_and_go,
    filters_channels_and_counts,
    tenants_see_only_themselves,
    bad_input_is_refused_and_changes_nothing,
    a_user_updated_too_often_is_told_to_slow_down,
);
