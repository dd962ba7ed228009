//! Presence shared by replicas over Redis, with last seen in PostgreSQL: a gateway node that
//! dies takes its users offline once, from one replica, within lease + grace; a Redis that
//! loses everything is rebuilt from the nodes' next renewal with no ghost left; watchers
//! resume from a cursor or get a fresh snapshot; last seen survives Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeMap, time::Duration};

use support::{closed, next_diff, next_event, opened, page, snapshot};
use switchyard_api::presence::v1::presence_event::Kind;
use switchyard_platform::testing;

const HOUR: u64 = 3_600_000;

/// Deletes every key under the service's prefix, as a restarted Redis without persistence.
async fn lose_redis_state(service: &support::Service) {
    let client = redis::Client::open(testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}*", service.settings.service.redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn a_dead_node_takes_its_users_offline_once_from_one_replica() {
    let first = support::redis(300).await;
    let second = support::replica(&first).await;
    let mut watch_first = first.watch(&["u1", "u2", "u3"], &[], "").await;
    let mut watch_second = second.watch(&["u1", "u2", "u3"], &[], "").await;
    snapshot(next_event(&mut watch_first).await);
    snapshot(next_event(&mut watch_second).await);

    let mut dying = first.node("node-a", 1_000).await;
    let mut survivor = second.node("node-b", 30_000).await;
    dying
        .send(vec![
            opened("acme", "u1", "node-a.1", "p1", "phone"),
            opened("acme", "u2", "node-a.2", "p2", "phone"),
        ])
        .await;
    survivor
        .send(vec![
            opened("acme", "u3", "node-b.1", "p3", "phone"),
            // u2 also has a browser on the surviving node: they stay online.
            opened("acme", "u2", "node-b.2", "b2", "web"),
        ])
        .await;
    let mut joins = Vec::new();
    for watch in [&mut watch_first, &mut watch_second] {
        for _ in 0..4 {
            joins.push(next_diff(watch).await);
        }
    }
    assert_eq!(joins.iter().filter(|diff| diff.0 == "join").count(), 6, "{joins:?}");

    dying.crash();
    // Keep the survivor's lease alive while node-a's lapses; then a marker ends the wait.
    let (kind, user, _, _) = next_diff(&mut watch_first).await;
    assert_eq!((kind.as_str(), user.as_str()), ("leave", "u1"));
    let (kind, user, _, diff) = next_diff(&mut watch_first).await;
    assert_eq!(
        (kind.as_str(), user.as_str()),
        ("update", "u2"),
        "u2 lost a device but not presence"
    );
    assert_eq!(diff.presence.unwrap().device_count, 1);
    survivor.send(vec![page("acme", "u3", "node-b.1", "/marker")]).await;
    let mut seen = BTreeMap::new();
    loop {
        let (kind, user, _, _) = next_diff(&mut watch_second).await;
        if user == "u3" {
            break;
        }
        *seen.entry((kind, user)).or_insert(0) += 1;
    }
    let expected = BTreeMap::from([
        (("leave".to_owned(), "u1".to_owned()), 1),
        (("update".to_owned(), "u2".to_owned()), 1),
    ]);
    assert_eq!(
        seen, expected,
        "one leave, emitted once, seen by every replica's watchers"
    );
    assert_eq!(
        next_diff(&mut watch_first).await.1,
        "u3",
        "nothing else came on the first replica either"
    );
    let u1 = second.presence(&second.keys.viewer, "u1").await;
    assert!(!u1.online);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_redis_that_lost_everything_is_rebuilt_from_the_nodes_and_keeps_no_ghost() {
    let service = support::redis(HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![
        opened("acme", "u1", "node-a.1", "p1", "phone"),
        opened("acme", "u2", "node-a.2", "p2", "phone"),
    ])
    .await;
    lose_redis_state(&service).await;
    // u2 closed while Redis was gone; the node resends only what it still holds.
    let ack = node.send(vec![closed("acme", "u2", "node-a.2", true)]).await;
    assert!(ack.resend_connections, "the service tells the node its lease is gone");
    node.send(vec![opened("acme", "u1", "node-a.1", "p1", "phone")]).await;
    assert!(service.presence(&service.keys.viewer, "u1").await.online);
    let (_, online) = service.get_json(&service.keys.viewer, "/v1/presence/online").await;
    assert_eq!(online["userIds"], serde_json::json!(["u1"]), "no ghost of u2");
    let ack = node.send(vec![]).await;
    assert!(!ack.resend_connections, "the lease is back");
    service.stop().await;
}

#[tokio::test]
async fn last_seen_survives_redis_and_answers_for_offline_users() {
    let service = support::redis(HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![opened("acme", "u1", "node-a.1", "p1", "phone")]).await;
    node.send(vec![closed("acme", "u1", "node-a.1", true)]).await;
    let before = service.presence(&service.keys.viewer, "u1").await;
    assert!(before.last_seen_time.is_some());
    lose_redis_state(&service).await;
    // A replica that never saw u1 answers from the database alone. Written in batches: poll
    // until it is there (the bound only turns a loss into a failure).
    let fresh = support::replica(&service).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = fresh
            .client()
            .get_presence(support::authed(
                &service.keys.viewer,
                switchyard_api::presence::v1::GetPresenceRequest { user_id: "u1".into() },
            ))
            .await;
        if let Ok(presence) = found {
            let presence = presence.into_inner();
            assert!(!presence.online);
            assert_eq!(presence.last_seen_time, before.last_seen_time);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "last seen was lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let never = service
        .client()
        .get_presence(support::authed(
            &service.keys.viewer,
            switchyard_api::presence::v1::GetPresenceRequest {
                user_id: "nobody".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(never.code(), tonic::Code::NotFound);
    fresh.stop().await;
    service.stop().await;
}

#[tokio::test]
async fn a_watcher_resumes_after_its_cursor_or_gets_a_fresh_snapshot() {
    let service = support::redis(HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    let mut watch = service.watch(&["u1"], &[], "").await;
    snapshot(next_event(&mut watch).await);
    node.send(vec![opened("acme", "u1", "node-a.1", "p1", "phone")]).await;
    let joined = next_event(&mut watch).await;
    drop(watch);

    node.send(vec![page("acme", "u1", "node-a.1", "/a")]).await;
    node.send(vec![page("acme", "u1", "node-a.1", "/b")]).await;
    let mut resumed = service.watch(&["u1"], &[], &joined.cursor).await;
    let pages: Vec<String> = [next_diff(&mut resumed).await, next_diff(&mut resumed).await]
        .into_iter()
        .map(|(_, _, _, diff)| diff.presence.unwrap().current_page)
        .collect();
    assert_eq!(pages, ["/a", "/b"], "exactly what was missed, in order");

    lose_redis_state(&service).await;
    let mut stale = service.watch(&["u1"], &[], &joined.cursor).await;
    let event = next_event(&mut stale).await;
    assert!(
        matches!(event.kind, Some(Kind::Snapshot(_))),
        "a lost log means a snapshot, never a gap"
    );
    service.stop().await;
}

/// A replica reads the event log only while someone watches; one who starts watching a
/// replica nobody watched still gets everything after its snapshot.
#[tokio::test]
async fn a_watcher_of_a_replica_nobody_watched_misses_nothing_after_its_snapshot() {
    let service = support::redis(HOUR).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![opened("acme", "u1", "node-a.1", "p1", "phone")]).await;
    for round in 0..3 {
        let mut watch = service.watch(&["u1"], &[], "").await;
        let start = snapshot(next_event(&mut watch).await);
        assert!(start.users[0].online, "round {round}: {start:?}");
        let path = format!("/round-{round}");
        node.send(vec![page("acme", "u1", "node-a.1", &path)]).await;
        let (kind, _, _, diff) = next_diff(&mut watch).await;
        assert_eq!((kind.as_str(), diff.presence.unwrap().current_page), ("update", path));
        drop(watch);
        // Unwatched, the replica skips these; the next watcher's snapshot shows them.
        node.send(vec![page("acme", "u1", "node-a.1", "/elsewhere")]).await;
    }
    service.stop().await;
}

#[tokio::test]
async fn a_restarted_redis_is_refilled_by_the_nodes_and_watchers_start_over() {
    let mut redis = testing::PrivateRedis::start().await;
    let (mut settings, keys, dir) = support::shared_settings(HOUR).await;
    settings.redis_url = Some(redis.url());
    let service = support::start_with(settings, keys, dir).await;
    let mut node = service.node("node-a", 30_000).await;
    node.send(vec![
        opened("acme", "u1", "node-a.1", "p1", "phone"),
        opened("acme", "u2", "node-a.2", "p2", "phone"),
    ])
    .await;
    let mut watch = service.watch(&["u1"], &[], "").await;
    snapshot(next_event(&mut watch).await);

    redis.restart().await; // a Redis without persistence comes back empty
    // The node's next report finds its lease gone; it resends what it still holds (u2 left
    // while Redis was down, so only u1).
    let mut attempts = 0;
    let ack = loop {
        match node.try_send(vec![closed("acme", "u2", "node-a.2", true)]).await {
            Some(ack) => break ack,
            None => {
                // The stream broke while Redis was away: reconnect, as a gateway does.
                attempts += 1;
                assert!(attempts < 20, "the service never came back after the Redis restart");
                node = service.node("node-a", 30_000).await;
            }
        }
    };
    assert!(ack.resend_connections);
    node.send(vec![opened("acme", "u1", "node-a.1", "p1", "phone")]).await;
    assert!(service.presence(&service.keys.viewer, "u1").await.online);
    let (_, online) = service.get_json(&service.keys.viewer, "/v1/presence/online").await;
    assert_eq!(online["userIds"], serde_json::json!(["u1"]), "no ghost of u2");
    // The watcher's log was lost with Redis: it gets a fresh snapshot, not a silent gap.
    loop {
        let event = next_event(&mut watch).await;
        if matches!(event.kind, Some(Kind::Snapshot(_))) {
            break;
        }
    }
    service.stop().await;
}
