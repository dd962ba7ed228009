//! A user's devices as gateway nodes report them: several at once, reconnects within the
//! grace period that nobody notices, drops past it that leave once, invisible and away, and
//! pages that count viewers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{closed, next_diff, next_event, opened, page, snapshot, status, subscribed};

const HOUR: u64 = 3_600_000;

async fn two_phones_and_a_browser_are_one_user_with_three_devices(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    let ack = node
        .send(vec![
            opened("acme", "u1", "node-a.1", "phone-1", "phone"),
            opened("acme", "u1", "node-a.2", "phone-2", "phone"),
            opened("acme", "u1", "node-a.3", "browser-1", "web"),
            page("acme", "u1", "node-a.3", "/product/sku-1"),
        ])
        .await;
    assert!(
        ack.resend_connections,
        "first contact: the service had no lease for the node"
    );

    let presence = service.presence(&service.keys.viewer, "u1").await;
    assert!(presence.online);
    assert_eq!(presence.status, "online");
    assert_eq!(presence.device_count, 3);
    assert_eq!(
        presence.current_page, "/product/sku-1",
        "the most recently active device's page"
    );
    let mut types: Vec<String> = presence
        .connections
        .iter()
        .map(|connection| connection.device.clone().unwrap().r#type)
        .collect();
    types.sort();
    assert_eq!(types, ["phone", "phone", "web"]);

    node.send(vec![closed("acme", "u1", "node-a.1", true)]).await;
    let presence = service.presence(&service.keys.viewer, "u1").await;
    assert_eq!(presence.device_count, 2, "a clean close leaves at once");

    node.send(vec![
        closed("acme", "u1", "node-a.2", true),
        closed("acme", "u1", "node-a.3", true),
    ])
    .await;
    let presence = service.presence(&service.keys.viewer, "u1").await;
    assert!(!presence.online);
    assert_eq!(presence.status, "offline");
    assert!(
        presence.last_seen_time.is_some(),
        "an offline user keeps their last seen time"
    );
    service.stop().await;
}

async fn a_phone_that_reconnects_within_the_grace_period_causes_no_events(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    let mut watch = service.watch(&["u1"], &["product:sku-1"], "").await;
    let first = snapshot(next_event(&mut watch).await);
    assert!(!first.users[0].online);

    node.send(vec![
        opened("acme", "u1", "node-a.1", "phone-1", "phone"),
        subscribed("acme", "u1", "node-a.1", "product:sku-1"),
    ])
    .await;
    let (kind, user, channel, _) = next_diff(&mut watch).await;
    assert_eq!((kind.as_str(), user.as_str(), channel.as_str()), ("join", "u1", ""));
    let (kind, _, channel, _) = next_diff(&mut watch).await;
    assert_eq!((kind.as_str(), channel.as_str()), ("join", "product:sku-1"));

    // The socket drops (no clean close) and the phone comes back on another node.
    node.send(vec![closed("acme", "u1", "node-a.1", false)]).await;
    let mut other = service.node("node-b", 30_000).await;
    other
        .send(vec![
            opened("acme", "u1", "node-b.7", "phone-1", "phone"),
            subscribed("acme", "u1", "node-b.7", "product:sku-1"),
        ])
        .await;
    let presence = service.presence(&service.keys.viewer, "u1").await;
    assert_eq!(presence.device_count, 1, "the new connection took the lost one's place");
    assert_eq!(presence.connections[0].node, "node-b");

    // A page change marks the end: nothing may come before its update.
    other.send(vec![page("acme", "u1", "node-b.7", "/cart")]).await;
    let (kind, _, channel, diff) = next_diff(&mut watch).await;
    assert_eq!(
        (kind.as_str(), channel.as_str()),
        ("update", ""),
        "no leave or join came first"
    );
    assert_eq!(diff.presence.unwrap().current_page, "/cart");
    let (kind, _, channel, _) = next_diff(&mut watch).await;
    assert_eq!((kind.as_str(), channel.as_str()), ("update", "product:sku-1"));
    service.stop().await;
}

async fn a_drop_past_the_grace_period_leaves_once_and_a_return_joins_once(store: support::Store) {
    let service = support::service(store, 200).await;
    let mut node = service.node("node-a", 30_000).await;
    let mut watch = service.watch(&["u1"], &[], "").await;
    snapshot(next_event(&mut watch).await);
    node.send(vec![opened("acme", "u1", "node-a.1", "phone-1", "phone")])
        .await;
    assert_eq!(next_diff(&mut watch).await.0, "join");

    node.send(vec![closed("acme", "u1", "node-a.1", false)]).await;
    let (kind, _, _, diff) = next_diff(&mut watch).await;
    assert_eq!(
        kind, "leave",
        "the cleanup worker emits the leave once the grace period ends"
    );
    assert!(!diff.presence.unwrap().online);

    node.send(vec![opened("acme", "u1", "node-a.2", "phone-1", "phone")])
        .await;
    assert_eq!(next_diff(&mut watch).await.0, "join");
    node.send(vec![page("acme", "u1", "node-a.2", "/home")]).await;
    assert_eq!(
        next_diff(&mut watch).await.0,
        "update",
        "exactly one leave and one join"
    );
    service.stop().await;
}

async fn invisible_users_are_offline_to_others_but_not_to_admins_or_themselves(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    let mut watch = service.watch(&["u1"], &[], "").await;
    snapshot(next_event(&mut watch).await);
    node.send(vec![
        opened("acme", "u1", "node-a.1", "phone-1", "phone"),
        page("acme", "u1", "node-a.1", "/product/sku-9"),
    ])
    .await;
    assert_eq!(next_diff(&mut watch).await.0, "join");

    node.send(vec![status("acme", "u1", "node-a.1", "invisible")]).await;
    assert_eq!(
        next_diff(&mut watch).await.0,
        "leave",
        "going invisible looks like leaving"
    );
    let seen = service.presence(&service.keys.viewer, "u1").await;
    assert!(!seen.online);
    assert_eq!(seen.status, "offline");
    assert!(seen.connections.is_empty());
    let admin = service.presence(&service.keys.admin, "u1").await;
    assert!(admin.online);
    assert_eq!(admin.status, "invisible");
    let (code, online) = service.get_json(&service.keys.viewer, "/v1/presence/online").await;
    assert_eq!(code, 200);
    assert_eq!(online["count"], 0);
    let (_, viewers) = service
        .get_json(&service.keys.viewer, "/v1/presence/pages:viewers?page=/product/sku-9")
        .await;
    assert_eq!(viewers["viewers"], 0, "an invisible user views nothing");
    service.stop().await;
}

async fn an_idle_user_turns_away_with_one_update(store: support::Store) {
    let (mut settings, keys, dir) = support::settings_on(store, HOUR).await;
    settings.service.away_after_ms = 300;
    let service = support::start_with(settings, keys, dir).await;
    let mut node = service.node("node-a", 30_000).await;
    let mut watch = service.watch(&["u1"], &[], "").await;
    snapshot(next_event(&mut watch).await);
    node.send(vec![opened("acme", "u1", "node-a.1", "phone-1", "phone")])
        .await;
    assert_eq!(next_diff(&mut watch).await.0, "join");
    let (kind, _, _, diff) = next_diff(&mut watch).await;
    assert_eq!(kind, "update");
    assert_eq!(diff.presence.unwrap().status, "away");
    node.send(vec![support::event(
        "acme",
        "u1",
        "node-a.1",
        switchyard_api::presence::v1::connection_event::Kind::Active(true),
    )])
    .await;
    let (kind, _, _, diff) = next_diff(&mut watch).await;
    assert_eq!(kind, "update");
    assert_eq!(diff.presence.unwrap().status, "online", "activity brings the user back");
    service.stop().await;
}

async fn page_viewers_count_people_not_tabs(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![
        opened("acme", "u1", "node-a.1", "", "web"),
        opened("acme", "u1", "node-a.2", "", "web"),
        opened("acme", "u2", "node-a.3", "", "phone"),
        opened("acme", "u3", "node-a.4", "", "phone"),
        page("acme", "u1", "node-a.1", "/product/sku-1"),
        page("acme", "u1", "node-a.2", "/product/sku-1"),
        page("acme", "u2", "node-a.3", "/product/sku-1"),
        page("acme", "u3", "node-a.4", "/product/sku-2"),
    ])
    .await;
    let viewers = |page: &'static str| {
        let service = &service;
        async move {
            let (code, body) = service
                .get_json(&service.keys.viewer, &format!("/v1/presence/pages:viewers?page={page}"))
                .await;
            assert_eq!(code, 200, "{body}");
            body["viewers"].as_i64().unwrap_or(0)
        }
    };
    assert_eq!(viewers("/product/sku-1").await, 2, "two tabs of one user count once");
    assert_eq!(viewers("/product/sku-2").await, 1);
    node.send(vec![page("acme", "u2", "node-a.3", "/product/sku-2")]).await;
    assert_eq!(viewers("/product/sku-1").await, 1);
    assert_eq!(viewers("/product/sku-2").await, 2);
    let (_, other) = service
        .get_json(
            &service.keys.other_tenant,
            "/v1/presence/pages:viewers?page=/product/sku-2",
        )
        .await;
    assert_eq!(other["viewers"], 0, "another tenant sees none of acme's viewers");
    service.stop().await;
}

async fn a_reconnect_reported_before_the_loss_leaves_one_device_and_no_leave(store: support::Store) {
    let service = support::service(store, HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![opened("acme", "u1", "node-a.1", "phone-1", "phone")])
        .await;
    let mut watch = service.watch(&["u1"], &[], "").await;
    snapshot(next_event(&mut watch).await);
    // The new socket arrived before the gateway noticed the old one was gone.
    node.send(vec![
        opened("acme", "u1", "node-a.2", "phone-1", "phone"),
        closed("acme", "u1", "node-a.1", false),
    ])
    .await;
    let presence = service.presence(&service.keys.viewer, "u1").await;
    assert_eq!(
        presence.device_count, 1,
        "the old connection does not linger beside its successor"
    );
    node.send(vec![page("acme", "u1", "node-a.2", "/cart")]).await;
    let (kind, _, _, _) = next_diff(&mut watch).await;
    assert_eq!(kind, "update", "neither a leave nor a join");
    service.stop().await;
}

on_both_stores!(
    two_phones_and_a_browser_are_one_user_with_three_devices,
    a_phone_that_reconnects_within_the_grace_period_causes_no_events,
    a_drop_past_the_grace_period_leaves_once_and_a_return_joins_once,
    invisible_users_are_offline_to_others_but_not_to_admins_or_themselves,
    an_idle_user_turns_away_with_one_update,
    page_viewers_count_people_not_tabs,
    a_reconnect_reported_before_the_loss_leaves_one_device_and_no_leave,
);
