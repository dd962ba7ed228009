//! Watch and long-poll: ordered changes by revision, resume without loss, snapshots when the
//! history is gone, and replicas kept in step through the Redis bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::{Service, authed, create_yaml, edit, publish, shop};
use switchyard_api::config::v1 as pb;
use switchyard_platform::testing;

type Stream = tonic::Streaming<pb::WatchResponse>;

async fn watch(service: &Service, since: u64) -> Stream {
    service
        .client()
        .watch(authed(
            &service.keys.viewer,
            pb::WatchRequest {
                parent: "projects/shop/environments/dev".into(),
                since_revision: since,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut Stream) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch response within 10s")
        .expect("the stream is open")
        .expect("not an error")
}

/// Publishes `app` with `port: n` to dev and returns the release's revision.
async fn publish_port(service: &Service, port: u32) -> u64 {
    edit(service, "app", &format!("port: {port}\n")).await;
    publish(service, "app", "dev").await.unwrap().revision
}

fn ports(response: &pb::WatchResponse) -> Vec<(u64, i64)> {
    response
        .configs
        .iter()
        .map(|config| {
            (
                config.revision,
                serde_json::from_str::<serde_json::Value>(&config.text).unwrap()["port"]
                    .as_i64()
                    .unwrap(),
            )
        })
        .collect()
}

async fn setup(service: &Service) {
    shop(service).await;
    create_yaml(service, "app", "port: 1\n", "").await;
    create_yaml(service, "other", "port: 0\n", "").await;
    publish(service, "other", "dev").await.unwrap();
}

#[tokio::test]
async fn a_resumed_watch_gets_every_later_change_once_in_order() {
    let service = support::sqlite().await;
    setup(&service).await;
    let mut stream = watch(&service, 0).await;
    let snapshot = next(&mut stream).await;
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.revision, 1);
    assert_eq!(snapshot.configs.len(), 1);
    let metrics = testing::get(&service.http("/metrics")).await.text();
    assert!(metrics.contains("switchyard_config_watchers 1"), "{metrics}");
    assert!(metrics.contains("switchyard_config_publications_total 1"), "{metrics}");

    let r2 = publish_port(&service, 2).await;
    let change = next(&mut stream).await;
    assert!(!change.snapshot);
    assert_eq!(ports(&change), vec![(r2, 2)]);
    drop(stream);

    // While the watcher is away, three more changes.
    let mut expected = Vec::new();
    for port in [3, 4, 5] {
        expected.push((publish_port(&service, port).await, i64::from(port)));
    }
    let mut resumed = watch(&service, change.revision).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let response = next(&mut resumed).await;
        assert!(!response.snapshot);
        seen.extend(ports(&response));
    }
    assert_eq!(seen, expected, "each missed change once, in order");
    let r6 = publish_port(&service, 6).await;
    assert_eq!(ports(&next(&mut resumed).await), vec![(r6, 6)], "then live changes");
}

#[tokio::test]
async fn a_watcher_behind_the_retained_history_gets_a_snapshot_then_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = support::settings_with_keys(dir.path());
    settings.service.retained_changes = 3;
    settings.service.recent_changes = 2;
    let service = support::start_with(settings, keys, dir).await;
    setup(&service).await;
    for port in 2..12 {
        publish_port(&service, port).await;
    }
    let mut stream = watch(&service, 2).await;
    let first = next(&mut stream).await;
    assert!(first.snapshot, "revision 2 was compacted away");
    assert_eq!(first.revision, 11);
    let mut state: Vec<(String, String)> = first
        .configs
        .iter()
        .map(|config| (config.name.clone(), config.text.clone()))
        .collect();
    state.sort();
    assert_eq!(state.len(), 2);
    assert!(state[0].1.contains("11"), "{state:?}");
    let r = publish_port(&service, 99).await;
    assert_eq!(ports(&next(&mut stream).await), vec![(r, 99)]);

    // Within the retained history (but beyond the in-memory ring) a watcher gets changes, not a snapshot.
    let mut recent = watch(&service, 9).await;
    let response = next(&mut recent).await;
    assert!(!response.snapshot);
    assert_eq!(response.configs.first().map(|config| config.revision), Some(10));
}

#[tokio::test]
async fn http_long_poll_answers_at_once_or_when_a_change_arrives() {
    let service = support::sqlite().await;
    setup(&service).await;
    let auth = format!("Bearer {}", service.keys.viewer);
    let url = |since: u64, wait: &str| {
        service.http(&format!(
            "/v1/projects/shop/environments/dev/changes?sinceRevision={since}&wait={wait}"
        ))
    };

    let immediate = testing::http("GET", &url(0, "5s"), &[("authorization", &auth)], "").await;
    assert_eq!(immediate.status, 200, "{}", immediate.text());
    assert_eq!(immediate.json()["snapshot"], true);
    assert_eq!(immediate.json()["revision"], "1");

    let started = std::time::Instant::now();
    let empty = testing::http("GET", &url(1, "300ms"), &[("authorization", &auth)], "").await;
    assert_eq!(empty.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(empty.json()["revision"], "1");
    assert!(
        empty.json()["configs"]
            .as_array()
            .is_none_or(|configs| configs.is_empty())
    );

    let waiting = tokio::spawn({
        let url = url(1, "10s");
        let auth = auth.clone();
        async move { testing::http("GET", &url, &[("authorization", &auth)], "").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let revision = publish_port(&service, 7).await;
    let answered = waiting.await.unwrap();
    assert_eq!(answered.status, 200);
    assert_eq!(answered.json()["revision"], revision.to_string());
    let text = answered.json()["configs"][0]["text"].as_str().unwrap().to_owned();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["port"], 7);

    let bad = testing::http("GET", &url(1, "forever"), &[("authorization", &auth)], "").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn replicas_on_postgres_keep_watchers_in_step_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = support::settings_with_keys(dir.path());
    let mut settings = testing::with_postgres_and_redis(settings).await;
    // Far beyond the test's waits: only the bus can bring the change to the second replica.
    settings.service.resync_interval_ms = 3_600_000;
    let first = support::start_with(settings.clone(), keys.clone(), tempfile::tempdir().unwrap()).await;
    let second = support::start_with(settings, keys, tempfile::tempdir().unwrap()).await;
    setup(&first).await;
    let mut stream = watch(&second, 0).await;
    assert!(next(&mut stream).await.snapshot);
    let revision = publish_port(&first, 42).await;
    assert_eq!(ports(&next(&mut stream).await), vec![(revision, 42)]);
}

#[tokio::test]
async fn watchers_that_say_who_they_are_show_up_as_clients_of_what_they_hold() {
    let service = support::sqlite().await;
    setup(&service).await;
    let mut stream = service
        .client()
        .watch(authed(
            &service.keys.viewer,
            pb::WatchRequest {
                parent: "projects/shop/environments/dev".into(),
                client_service: "cart".into(),
                client_instance: "cart-0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    publish_port(&service, 5).await;
    next(&mut stream).await;
    let clients = service
        .client()
        .list_config_clients(authed(
            &service.keys.viewer,
            pb::ListConfigClientsRequest {
                name: "projects/shop/environments/dev/configs/app".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(clients.clients.len(), 1);
    assert_eq!(clients.clients[0].instance, "cart-0");
    assert_eq!(clients.clients[0].release, clients.current_release);
    assert!(!clients.clients[0].stale);
}

/// A client that saw revisions this environment does not have (a database restored from an
/// older backup, a failover to an older replica) starts again from a snapshot at the real
/// revision, on every transport, and then gets the changes that follow.
#[tokio::test]
async fn a_watcher_ahead_of_the_server_gets_a_snapshot_at_the_real_revision() {
    let service = support::sqlite().await;
    setup(&service).await;

    let mut stream = watch(&service, 500).await;
    let snapshot = next(&mut stream).await;
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.revision, 1);
    let revision = publish_port(&service, 5).await;
    assert_eq!(ports(&next(&mut stream).await), vec![(revision, 5)]);

    let auth = format!("Bearer {}", service.keys.viewer);
    let poll = testing::http(
        "GET",
        &service.http("/v1/projects/shop/environments/dev/changes?sinceRevision=500&wait=4s"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(poll.status, 200, "{}", poll.text());
    assert_eq!(poll.json()["snapshot"], true, "{}", poll.text());
    assert_eq!(poll.json()["revision"], revision.to_string());

    let url = service.http("/v1/projects/shop/environments/dev:watch?sinceRevision=500");
    let mut lines = testing::ndjson(&url, &[("authorization", &auth)]).await;
    let first = lines.next_json().await;
    assert_eq!(first["snapshot"], true, "{first}");
    assert_eq!(first["revision"], revision.to_string());
}
