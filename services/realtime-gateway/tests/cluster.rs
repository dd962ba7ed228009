//! Many nodes acting as one over Redis, three in this process (and one as a process of its
//! own where a crash is needed): fan-out across nodes, exact recovery under publish load
//! while clients are cut off and move between nodes, a node killed, Redis restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use support::{Client, Gateway, cluster, publish, start_with};
use switchyard_api::realtime::v1::{ChannelsRequest, DisconnectRequest, InfoRequest};
use switchyard_platform::testing::PrivateRedis;
use switchyard_platform::testing::{ServiceProcess, redis_url};

#[tokio::test]
async fn a_publish_on_any_node_reaches_subscribers_on_every_node() {
    let nodes = cluster(3, &redis_url()).await;
    let mut clients = Vec::new();
    for node in &nodes {
        let mut client = node.user("42", &["order:*"]).await;
        client.subscribe("order:9").await;
        clients.push(client);
    }
    publish(&mut nodes[1].api(), "order:9", json!("confirmed")).await;
    publish(&mut nodes[2].api(), "order:9", json!("packed")).await;
    for client in &mut clients {
        let first = client.publication().await;
        let second = client.publication().await;
        assert_eq!(
            (first["pub"]["offset"].clone(), first["pub"]["data"].clone()),
            (json!(1), json!("confirmed"))
        );
        assert_eq!(
            (second["pub"]["offset"].clone(), second["pub"]["data"].clone()),
            (json!(2), json!("packed"))
        );
    }

    // Counts from every node, through any node.
    let mut api = nodes[0].api();
    let mut seen = (0, 0);
    for _ in 0..50 {
        let channels = api
            .channels(ChannelsRequest {
                prefix: "order:".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .channels;
        let nodes = api.info(InfoRequest {}).await.unwrap().into_inner().nodes;
        seen = (channels.first().map_or(0, |c| c.subscribers), nodes.len());
        if seen == (3, 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (3, 3), "(subscribers of order:9, nodes)");

    // Disconnect reaches the user's connections on every node.
    api.disconnect(DisconnectRequest {
        user: "42".into(),
        reconnect: true,
        reason: String::new(),
    })
    .await
    .unwrap();
    for client in &mut clients {
        assert_eq!(client.closed().await.code, 3007);
    }
    for node in nodes {
        node.stop().await;
    }
}

/// Clients that keep dropping their connection and resubscribing with recovery — on the
/// node after the one they left — while `total` publications go out at about 1,000/s.
/// Every client must see offsets 1..=total exactly once, in order.
async fn no_gap_and_no_duplicate_while_clients_reconnect(nodes: Arc<Vec<Gateway>>, total: u64) {
    let channel = "load:orders";
    let mut tasks = Vec::new();
    for index in 0..5 {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move { follow(&nodes, index, channel, total).await }));
    }
    // Every client is subscribed before the first publication.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut apis: Vec<_> = nodes.iter().map(Gateway::api).collect();
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    for n in 1..=total {
        pace.tick().await;
        let node = n as usize % apis.len();
        let position = publish(&mut apis[node], channel, json!(n)).await;
        assert_eq!(position["offset"], n);
    }
    for task in tasks {
        let (reconnects, received) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received, (1..=total).collect::<Vec<_>>());
        assert!(reconnects >= 3, "only {reconnects} reconnects");
    }
}

/// One client's life: connect, subscribe (recovering from where it was), read a few
/// publications, drop the connection, go to the next node, until it has seen `total`.
async fn follow(nodes: &[Gateway], index: usize, channel: &str, total: u64) -> (usize, Vec<u64>) {
    let mut received: Vec<u64> = Vec::new();
    let mut position: Option<(u64, String)> = None;
    let mut reconnects = 0;
    let mut node = index;
    while received.last().copied() != Some(total) {
        let mut client = nodes[node % nodes.len()].anonymous().await;
        let reply = match &position {
            None => client.subscribe(channel).await,
            Some((offset, epoch)) => client.recover(channel, *offset, epoch).await,
        };
        let subscribed = &reply["subscribe"];
        assert!(subscribed.is_object(), "{reply}");
        if position.is_some() {
            assert_eq!(subscribed["recovered"], true, "client {index}: {reply}");
        }
        let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
        for publication in subscribed["publications"].as_array().into_iter().flatten() {
            received.push(publication["offset"].as_u64().unwrap());
        }
        position = Some((
            received
                .last()
                .copied()
                .unwrap_or(subscribed["offset"].as_u64().unwrap()),
            epoch.clone(),
        ));
        let cut_after = 20 + (index as u64 * 7 + reconnects as u64 * 13) % 40;
        for _ in 0..cut_after {
            if received.last().copied() == Some(total) {
                break;
            }
            let push = client.push().await;
            if let Some(unsubscribe) = push.get("unsubscribe") {
                assert_eq!(unsubscribe["resubscribe"], true, "{push}");
                break;
            }
            let offset = push["pub"]["offset"].as_u64().unwrap();
            received.push(offset);
            position = Some((offset, epoch.clone()));
        }
        drop(client);
        reconnects += 1;
        node += 1;
    }
    (reconnects, received)
}

// Two worker threads: publishers and connection tasks really run at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_is_exact_under_load_on_one_node() {
    let node = start_with(|settings| {
        settings.service.namespaces.insert(
            "load".to_owned(),
            realtime_gateway::conf::NamespaceSettings {
                history_size: 10_000,
                history_ttl_secs: 300,
                public: true,
                allow_anonymous: true,
                ..Default::default()
            },
        );
    })
    .await;
    no_gap_and_no_duplicate_while_clients_reconnect(Arc::new(vec![node]), 600).await;
}

// Two worker threads: publishers and connection tasks really run at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_is_exact_under_load_across_three_nodes() {
    let nodes = cluster(3, &redis_url()).await;
    no_gap_and_no_duplicate_while_clients_reconnect(Arc::new(nodes), 600).await;
}

#[tokio::test]
async fn clients_of_a_killed_node_reconnect_elsewhere_and_recover() {
    let redis = redis_url();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let mut gateways = Vec::new();
    let admin = switchyard_platform::auth::generate_api_key("default", &["admin"]);
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = support::node_settings(dir.path(), &redis, &prefix);
        settings.auth.api_keys = vec![admin.record.clone()];
        gateways.push(support::start_on(settings, admin.plaintext.clone(), dir).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::node_settings(dir.path(), &redis, &prefix);
    settings.auth.api_keys = vec![admin.record.clone()];
    let mut doomed = ServiceProcess::spawn(env!("CARGO_BIN_EXE_realtime-gateway"), &settings, dir.path());
    let doomed_ws = doomed.http_url.replace("http://", "ws://") + "/realtime/websocket";

    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::open(&doomed_ws).await;
        client.connect(None).await;
        let reply = client.subscribe("load:crash").await;
        clients.push((client, reply["subscribe"]["epoch"].as_str().unwrap().to_owned()));
    }
    let mut api = gateways[0].api();
    for n in 1..=5 {
        publish(&mut api, "load:crash", json!(n)).await;
    }
    for (client, _) in &mut clients {
        for n in 1..=5 {
            assert_eq!(client.publication().await["pub"]["offset"], n);
        }
    }
    doomed.kill();
    for n in 6..=10 {
        publish(&mut api, "load:crash", json!(n)).await;
    }
    for (index, (client, epoch)) in clients.iter_mut().enumerate() {
        let closed = client.closed().await;
        assert_eq!(closed.code, 1006, "a killed node says nothing");
        let mut moved = gateways[index % 2].anonymous().await;
        let reply = moved.recover("load:crash", 5, epoch).await;
        assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
        let offsets: Vec<Value> = reply["subscribe"]["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["offset"].clone())
            .collect();
        assert_eq!(offsets, (6..=10).map(|n| json!(n)).collect::<Vec<_>>());
    }
    for gateway in gateways {
        gateway.stop().await;
    }
}

#[tokio::test]
async fn after_a_redis_restart_clients_learn_their_history_is_gone_and_publishing_resumes() {
    let mut redis = PrivateRedis::start().await;
    let nodes = cluster(2, &redis.url()).await;
    let mut client = nodes[1].anonymous().await;
    let epoch = client.subscribe("load:restart").await["subscribe"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut api = nodes[0].api();
    publish(&mut api, "load:restart", json!(1)).await;
    assert_eq!(client.publication().await["pub"]["offset"], 1);

    redis.restart().await;
    // The node's feed comes back and it finds the channel's stream gone: the client is told.
    let push = client.push().await;
    assert_eq!(push["channel"], "load:restart");
    assert_eq!(push["unsubscribe"]["code"], 2500, "{push}");
    assert_eq!(push["unsubscribe"]["resubscribe"], true);
    let reply = client.recover("load:restart", 1, &epoch).await;
    assert_eq!(reply["subscribe"]["recovered"], false, "{reply}");
    let new_epoch = reply["subscribe"]["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, epoch);

    // Publishing resumes (the first attempts may meet connections the restart broke).
    let mut published = None;
    for _ in 0..50 {
        let request = switchyard_api::realtime::v1::PublishRequest {
            channel: "load:restart".into(),
            payload: Some(switchyard_api::realtime::v1::publish_request::Payload::Data(
                support::data(json!(2)),
            )),
            ..Default::default()
        };
        if let Ok(response) = api.publish(request).await {
            published = response.into_inner().position;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let position = published.expect("publishing resumed");
    assert_eq!((position.offset, position.epoch.as_str()), (1, new_epoch.as_str()));
    let push = client.publication().await;
    assert_eq!(push["pub"]["data"], 2);
    for node in nodes {
        node.stop().await;
    }
}
