//! The WebSocket client protocol on one node (memory broker), through real sockets:
//! connect, permissions, publications, recovery, limits, batching and disconnect codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{publish, start, start_with, token, token_with};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_subscriber_receives_what_the_server_api_publishes_in_order() {
    let gateway = start().await;
    let mut client = gateway.anonymous().await;
    let subscribed = client.subscribe("product:sku-1").await;
    assert_eq!(subscribed["subscribe"]["offset"], 0, "{subscribed}");
    assert_eq!(subscribed["subscribe"]["recoverable"], true);
    let mut api = gateway.api();
    for price in 1..=3 {
        let position = publish(&mut api, "product:sku-1", json!({"price": price})).await;
        assert_eq!(position["offset"], price);
        assert_eq!(position["epoch"], subscribed["subscribe"]["epoch"]);
    }
    for price in 1..=3 {
        let push = client.publication().await;
        assert_eq!(push["channel"], "product:sku-1");
        assert_eq!(push["pub"]["offset"], price);
        assert_eq!(push["pub"]["data"], json!({"price": price}));
        assert!(push["pub"]["time"].as_i64().unwrap() > 0);
    }
    gateway.stop().await;
}

#[tokio::test]
async fn typed_events_reach_clients_as_json_with_their_type() {
    use switchyard_api::realtime::v1::{
        Money, ProductPriceChange, PublishRequest, event::Kind, publish_request::Payload,
    };
    let gateway = start().await;
    let mut client = gateway.anonymous().await;
    client.subscribe("product:sku-9").await;
    let event = switchyard_api::realtime::v1::Event {
        kind: Some(Kind::ProductPriceChange(ProductPriceChange {
            product_id: "sku-9".into(),
            old_price: Some(Money {
                currency: "BDT".into(),
                minor_units: 129_900,
            }),
            new_price: Some(Money {
                currency: "BDT".into(),
                minor_units: 99_900,
            }),
            ..Default::default()
        })),
    };
    gateway
        .api()
        .publish(PublishRequest {
            channel: "product:sku-9".into(),
            payload: Some(Payload::Event(event)),
            ..Default::default()
        })
        .await
        .unwrap();
    let push = client.publication().await;
    let data = &push["pub"]["data"];
    assert_eq!(data["type"], "product_price_change");
    assert_eq!(data["productId"], "sku-9");
    assert_eq!(data["newPrice"], json!({"currency": "BDT", "minorUnits": "99900"}));
    gateway.stop().await;
}

#[tokio::test]
async fn channels_admit_only_who_their_namespace_and_token_allow() {
    let gateway = start().await;
    let mut anonymous = gateway.anonymous().await;
    assert_eq!(anonymous.subscribe("order:1").await["error"]["code"], 103);
    assert_eq!(anonymous.subscribe("user#42").await["error"]["code"], 103);
    assert_eq!(anonymous.subscribe("secret:1").await["error"]["code"], 102);
    assert_eq!(anonymous.subscribe("bad channel").await["error"]["code"], 107);

    let mut user = gateway.user("42", &["order:7", "order:8*"]).await;
    assert!(user.subscribe("user#42").await.get("subscribe").is_some());
    assert_eq!(user.subscribe("user#43").await["error"]["code"], 103);
    assert!(user.subscribe("order:7").await.get("subscribe").is_some());
    assert!(user.subscribe("order:81").await.get("subscribe").is_some());
    assert_eq!(user.subscribe("order:9").await["error"]["code"], 103);
    assert_eq!(user.subscribe("order:7").await["error"]["code"], 105);
    gateway.stop().await;
}

#[tokio::test]
async fn a_tenant_reaches_only_its_own_clients() {
    let gateway = start().await;
    let mut other_tenant = gateway.client().await;
    let other = token_with(json!({"sub": "1", "tenant": "acme"}), 300, support::SECRET);
    assert!(other_tenant.connect(Some(&other)).await.get("connect").is_some());
    other_tenant.subscribe("product:1").await;
    let mut own = gateway.anonymous().await;
    own.subscribe("product:1").await;
    publish(&mut gateway.api(), "product:1", json!("default tenant")).await;
    assert_eq!(own.publication().await["pub"]["data"], "default tenant");
    assert!(other_tenant.silent_for(Duration::from_millis(300)).await);
    gateway.stop().await;
}

#[tokio::test]
async fn tokens_are_verified_and_expire() {
    let gateway = start().await;
    let mut expired = gateway.client().await;
    let reply = expired.connect(Some(&token("1", &[], -120))).await;
    assert_eq!(reply["error"]["code"], 109, "{reply}");

    let mut forged = gateway.client().await;
    let bad = token_with(json!({"sub": "1"}), 300, "another-secret");
    forged
        .send_text(&json!({"id": 1, "connect": {"token": bad}}).to_string())
        .await;
    let closed = forged.closed().await;
    assert_eq!(closed.code, 3500, "{closed:?}");
    assert_eq!(closed.push.unwrap()["push"]["disconnect"]["reconnect"], false);

    let mut short = gateway.client().await;
    let reply = short.connect(Some(&token("1", &[], 1))).await;
    assert!(reply["connect"]["expires_in"].as_i64().unwrap() <= 1);
    let closed = short.closed().await;
    assert_eq!(closed.code, 3003, "{closed:?}");
    let advice = &closed.push.unwrap()["push"]["disconnect"];
    assert_eq!(advice["reconnect"], true);
    let retry = advice["retry_after_ms"].as_u64().unwrap();
    assert!((500..=5_000).contains(&retry), "{retry}");

    let mut refreshed = gateway.client().await;
    refreshed.connect(Some(&token("1", &[], 1))).await;
    let reply = refreshed
        .command("refresh", json!({"token": token("1", &[], 300)}))
        .await;
    assert!(reply["refresh"]["expires_in"].as_i64().unwrap() > 200, "{reply}");
    assert!(refreshed.silent_for(Duration::from_millis(1_500)).await);
    let mut impostor = gateway.client().await;
    impostor.connect(Some(&token("1", &[], 300))).await;
    impostor
        .send_text(&json!({"id": 9, "refresh": {"token": token("2", &[], 300)}}).to_string())
        .await;
    assert_eq!(impostor.closed().await.code, 3500);
    gateway.stop().await;
}

#[tokio::test]
async fn resubscribing_with_a_position_recovers_exactly_what_was_missed() {
    let gateway = start().await;
    let mut api = gateway.api();
    let mut client = gateway.anonymous().await;
    let epoch = client.subscribe("product:r").await["subscribe"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    publish(&mut api, "product:r", json!(1)).await;
    publish(&mut api, "product:r", json!(2)).await;
    assert_eq!(client.publication().await["pub"]["offset"], 1);
    assert_eq!(client.publication().await["pub"]["offset"], 2);
    drop(client);
    for n in 3..=5 {
        publish(&mut api, "product:r", json!(n)).await;
    }
    let mut back = gateway.anonymous().await;
    let reply = back.recover("product:r", 2, &epoch).await;
    let subscribed = &reply["subscribe"];
    assert_eq!(subscribed["recovered"], true, "{reply}");
    let offsets: Vec<u64> = subscribed["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    assert_eq!(subscribed["offset"], 5);
    publish(&mut api, "product:r", json!(6)).await;
    assert_eq!(back.publication().await["pub"]["offset"], 6);

    let mut nothing_missed = gateway.anonymous().await;
    let reply = nothing_missed.recover("product:r", 6, &epoch).await;
    assert_eq!(reply["subscribe"]["recovered"], true);
    assert!(reply["subscribe"].get("publications").is_none());
    gateway.stop().await;
}

#[tokio::test]
async fn recovery_that_cannot_be_exact_says_so_and_replays_nothing() {
    let gateway = start().await;
    let mut api = gateway.api();
    // `product` keeps 20 publications.
    let first = publish(&mut api, "product:old", json!(0)).await;
    let epoch = first["epoch"].as_str().unwrap().to_owned();
    for n in 1..=25 {
        publish(&mut api, "product:old", json!(n)).await;
    }
    let mut client = gateway.anonymous().await;
    let reply = client.recover("product:old", 1, &epoch).await;
    assert_eq!(reply["subscribe"]["recovered"], false, "{reply}");
    assert!(reply["subscribe"].get("publications").is_none());
    assert_eq!(reply["subscribe"]["offset"], 26);

    let mut wrong_epoch = gateway.anonymous().await;
    let reply = wrong_epoch.recover("product:old", 25, "not-the-epoch").await;
    assert_eq!(reply["subscribe"]["recovered"], false);

    // A position this channel never reached, in its current epoch (a client that talked to
    // a node since restored from older state): told, not left waiting for offset 501.
    let mut ahead = gateway.anonymous().await;
    let reply = ahead.recover("product:old", 500, &epoch).await;
    assert_eq!(reply["subscribe"]["recovered"], false, "{reply}");
    assert_eq!(reply["subscribe"]["offset"], 26);

    // After HistoryRemove the position stays, the publications are gone.
    api.history_remove(switchyard_api::realtime::v1::HistoryRemoveRequest {
        channel: "product:old".into(),
    })
    .await
    .unwrap();
    let mut after_remove = gateway.anonymous().await;
    let reply = after_remove.recover("product:old", 25, &epoch).await;
    assert_eq!(reply["subscribe"]["recovered"], false);
    assert_eq!(reply["subscribe"]["epoch"], epoch.as_str());
    let metrics = support_get(&gateway.http("/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "switchyard_realtime_recoveries_total{outcome=\"unrecoverable\"}"
        ),
        4.0
    );
    gateway.stop().await;
}

/// The value of one sample in a Prometheus text exposition.
fn metric(metrics: &str, name: &str) -> f64 {
    sample(metrics, name).unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn support_get(url: &str) -> String {
    switchyard_platform::testing::get(url).await.text()
}

#[tokio::test]
async fn several_commands_in_one_frame_get_their_replies_in_one_frame() {
    let gateway = start().await;
    let mut client = gateway.client().await;
    let frame = [
        json!({"id": 1, "connect": {}}),
        json!({"id": 2, "subscribe": {"channel": "product:a"}}),
        json!({"id": 3, "subscribe": {"channel": "product:b"}}),
        json!({"id": 4, "ping": {}}),
    ]
    .map(|command| command.to_string())
    .join("\n");
    client.send_text(&frame).await;
    for id in 1..=4 {
        let reply = client.reply(id).await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    assert_eq!(client.frames, 1);
    gateway.stop().await;
}

#[tokio::test]
async fn bad_frames_get_a_clear_error_and_never_crash_the_gateway() {
    let gateway = start().await;
    let mut unknown = gateway.anonymous().await;
    let reply = unknown.command("shout", json!({})).await;
    assert_eq!(reply["error"]["code"], 107, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("unknown field"));
    let reply = unknown.command("subscribe", json!({"channel": 5})).await;
    assert_eq!(reply["error"]["code"], 107);
    let reply = unknown
        .command("subscribe", json!({"channel": "product:x", "extra": true}))
        .await;
    assert_eq!(reply["error"]["code"], 107);
    let reply = unknown
        .command("subscribe", json!({"channel": "product:'; DROP TABLE x;--"}))
        .await;
    assert_eq!(reply["error"]["code"], 107);
    assert!(
        unknown
            .subscribe("product:still-works")
            .await
            .get("subscribe")
            .is_some()
    );

    let mut malformed = gateway.anonymous().await;
    malformed.send_text("{not json").await;
    let closed = malformed.closed().await;
    assert_eq!(closed.code, 3501, "{closed:?}");

    let mut binary = gateway.anonymous().await;
    binary.send_message(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(binary.closed().await.code, 3501);

    let mut oversized = gateway.anonymous().await;
    let big = json!({"id": 5, "publish": {"channel": "chat:x", "data": "x".repeat(70_000)}});
    oversized.send_text(&big.to_string()).await;
    assert_eq!(oversized.closed().await.code, 3503);

    let mut early = gateway.client().await;
    assert_eq!(early.subscribe("product:1").await["error"]["code"], 101);

    // The gateway still serves.
    let mut fine = gateway.anonymous().await;
    assert!(fine.subscribe("product:1").await.get("subscribe").is_some());
    gateway.stop().await;
}

#[tokio::test]
async fn clients_publish_and_read_history_only_where_allowed() {
    let gateway = start().await;
    let mut alice = gateway.user("alice", &["chat:*"]).await;
    let mut bob = gateway.user("bob", &["chat:*"]).await;
    bob.subscribe("chat:lobby").await;
    let reply = alice
        .command("publish", json!({"channel": "chat:lobby", "data": {"text": "hi"}}))
        .await;
    assert_eq!(reply["publish"]["offset"], 1, "{reply}");
    assert_eq!(bob.publication().await["pub"]["data"]["text"], "hi");
    let reply = alice
        .command("publish", json!({"channel": "product:1", "data": 1}))
        .await;
    assert_eq!(reply["error"]["code"], 103);
    let mut anonymous = gateway.anonymous().await;
    let reply = anonymous
        .command("publish", json!({"channel": "chat:lobby", "data": 1}))
        .await;
    assert_eq!(reply["error"]["code"], 103);

    let history = alice
        .command("history", json!({"channel": "chat:lobby", "limit": 10}))
        .await;
    assert_eq!(history["history"]["offset"], 1, "{history}");
    assert_eq!(history["history"]["publications"][0]["data"]["text"], "hi");
    let stale = alice
        .command(
            "history",
            json!({"channel": "chat:lobby", "since": {"offset": 0, "epoch": "other"}}),
        )
        .await;
    assert_eq!(stale["error"]["code"], 112);
    gateway.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_without_slowing_anyone_else() {
    let gateway = start_with(|settings| {
        settings.service.client.max_queue_bytes = 256 * 1024;
        settings.service.client.max_message_bytes = 64 * 1024;
    })
    .await;
    let mut slow = gateway.anonymous().await;
    slow.subscribe("product:flood").await;
    let mut fast = gateway.anonymous().await;
    fast.subscribe("product:flood").await;
    let mut api = gateway.api();
    let payload = "x".repeat(32 * 1024);
    // The slow client never reads; the fast one reads everything as it comes.
    let total = 400;
    let reader = tokio::spawn(async move {
        for expected in 1..=total {
            let push = fast.publication().await;
            assert_eq!(push["pub"]["offset"], expected);
        }
        fast
    });
    for _ in 0..total {
        publish(&mut api, "product:flood", json!(payload)).await;
    }
    let _fast = reader.await.unwrap();
    let closed = slow.closed().await;
    assert_eq!(closed.code, 3001, "{:?}", (closed.code, &closed.reason));
    let metrics = support_get(&gateway.http("/metrics")).await;
    assert_eq!(
        metric(&metrics, "switchyard_realtime_slow_consumer_disconnects_total"),
        1.0
    );
    assert_eq!(
        metric(&metrics, "switchyard_realtime_disconnects_total{code=\"3001\"}"),
        1.0
    );
    // The fast client got every publication; the slow one some before it was cut off.
    assert!(metric(&metrics, "switchyard_realtime_publications_delivered_total") >= f64::from(total));
    assert!(metric(&metrics, "switchyard_realtime_delivery_latency_seconds_count") >= f64::from(total));
    assert_eq!(
        metric(&metrics, "switchyard_realtime_publications_accepted_total"),
        f64::from(total)
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_with_hundreds_of_subscribers_reaches_each_in_order() {
    // More subscribers than a publisher writes to itself: some get each publication from
    // the publisher, the rest from their own tasks, in parallel on two threads.
    let gateway = start().await;
    let mut clients = Vec::new();
    for _ in 0..300 {
        let mut client = gateway.anonymous().await;
        client.subscribe("product:crowd").await;
        clients.push(client);
    }
    let mut api = gateway.api();
    let total = 30;
    let publishing = tokio::spawn(async move {
        for n in 1..=total {
            publish(&mut api, "product:crowd", json!(n)).await;
        }
    });
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                for expected in 1..=total {
                    let push = client.publication().await;
                    assert_eq!(push["pub"]["offset"], expected);
                    assert_eq!(push["pub"]["data"], expected);
                }
            })
        })
        .collect();
    publishing.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    gateway.stop().await;
}

const BIG_PUSH: usize = 16 * 1024;

/// A gateway with room for a long backlog, and a client with a small receive window that
/// is sent `total` 16 KiB publications before it reads any: the server's socket fills within
/// a few, and the rest waits in the gateway.
async fn backlogged_client(total: u64) -> (support::Gateway, support::Client) {
    let gateway = start_with(|settings| {
        settings.service.client.max_queue_bytes = 32 * 1024 * 1024;
        settings.service.client.max_message_bytes = 64 * 1024;
    })
    .await;
    let mut client = support::Client::open_with_receive_buffer(&gateway.ws_url(), 4096).await;
    client.connect(None).await;
    client.subscribe("product:big").await;
    let mut api = gateway.api();
    let payload = "x".repeat(BIG_PUSH);
    for _ in 0..total {
        publish(&mut api, "product:big", json!(payload)).await;
    }
    (gateway, client)
}

#[tokio::test]
async fn a_client_that_reads_late_gets_every_publication_in_order() {
    let total = 400;
    let (gateway, mut late) = backlogged_client(total).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for expected in 1..=total {
        let push = late.publication().await;
        assert_eq!(push["pub"]["offset"], expected);
        assert_eq!(push["pub"]["data"].as_str().map(str::len), Some(BIG_PUSH));
    }
    assert!(late.silent_for(Duration::from_millis(200)).await);
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_reads_slowly_but_steadily_is_not_taken_for_a_stalled_one() {
    // The client reads one 16 KiB publication every 10 ms from the moment it subscribes, while
    // they are published faster than that: a backlog waits in the gateway, and draining it
    // takes at least 3 s of the client's own pauses against a write timeout of 1 s. The
    // socket keeps taking bytes all along, so the client stays.
    let total = 300;
    let gateway = start_with(|settings| {
        settings.service.client.max_queue_bytes = 32 * 1024 * 1024;
        settings.service.client.max_message_bytes = 64 * 1024;
        settings.service.client.write_timeout_ms = 1_000;
    })
    .await;
    let mut slow = support::Client::open_with_receive_buffer(&gateway.ws_url(), 4096).await;
    slow.connect(None).await;
    slow.subscribe("product:big").await;
    let reader = tokio::spawn(async move {
        for expected in 1..=total {
            assert_eq!(slow.publication().await["pub"]["offset"], expected);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slow
    });
    let mut api = gateway.api();
    let payload = "x".repeat(BIG_PUSH);
    for _ in 0..total {
        publish(&mut api, "product:big", json!(payload)).await;
    }
    let mut slow = reader.await.unwrap();
    // Still connected: a command is answered (a stalled client is sent a disconnect and closed).
    let reply = slow.subscribe("product:after").await;
    assert!(reply.get("error").is_none(), "{reply}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_request_that_is_not_a_websocket_upgrade_is_told_what_is_expected() {
    let gateway = start().await;
    let plain = switchyard_platform::testing::get(&gateway.http("/realtime/websocket")).await;
    assert_eq!(plain.status, 426);
    assert!(plain.text().contains("WebSocket"), "{}", plain.text());
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_on_a_slow_link_can_ask_for_fewer_larger_frames() {
    let gateway = start().await;
    let mut client = gateway.client().await;
    let reply = client.command("connect", json!({"batch_ms": 300})).await;
    assert_eq!(reply["connect"]["batch_ms"], 300);
    client.subscribe("product:batched").await;
    let frames_before = client.frames;
    let mut api = gateway.api();
    for n in 1..=10 {
        publish(&mut api, "product:batched", json!(n)).await;
    }
    for n in 1..=10 {
        assert_eq!(client.publication().await["pub"]["offset"], n);
    }
    let frames = client.frames - frames_before;
    assert!(frames <= 2, "10 publications came in {frames} frames");
    gateway.stop().await;
}

#[tokio::test]
async fn limits_on_subscriptions_connections_and_command_rate_hold() {
    let gateway = start_with(|settings| {
        settings.service.client.max_subscriptions = 2;
        settings.service.client.max_connections_per_user = 2;
        settings.service.client.commands_per_second = 5;
    })
    .await;
    let mut client = gateway.anonymous().await;
    client.subscribe("product:1").await;
    client.subscribe("product:2").await;
    assert_eq!(client.subscribe("product:3").await["error"]["code"], 106);

    let _first = gateway.user("7", &[]).await;
    let _second = gateway.user("7", &[]).await;
    let mut third = gateway.client().await;
    third
        .send_text(&json!({"id": 1, "connect": {"token": token("7", &[], 300)}}).to_string())
        .await;
    assert_eq!(third.closed().await.code, 3005);

    let mut chatty = gateway.anonymous().await;
    let flood = (0..30)
        .map(|id| json!({"id": id + 10, "ping": {}}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    chatty.send_text(&flood).await;
    assert_eq!(chatty.closed().await.code, 3004);
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_never_connects_or_stops_answering_pings_is_closed() {
    let gateway = start_with(|settings| {
        settings.service.client.connect_timeout_ms = 300;
        settings.service.client.ping_interval_ms = 200;
        settings.service.client.pong_timeout_ms = 200;
    })
    .await;
    let mut silent = gateway.client().await;
    assert_eq!(silent.closed().await.code, 3006);

    // The test client does not answer `{"ping":{}}`; only its TCP-level liveness remains.
    let mut deaf = gateway.anonymous().await;
    assert_eq!(deaf.closed().await.code, 3002);
    gateway.stop().await;
}

#[tokio::test]
async fn shutdown_tells_clients_to_come_back_later() {
    let gateway = start().await;
    let mut client = gateway.anonymous().await;
    client.subscribe("product:1").await;
    gateway.shutdown.trigger();
    let closed = client.closed().await;
    assert_eq!(closed.code, 3000);
    assert_eq!(closed.push.unwrap()["push"]["disconnect"]["reconnect"], true);
    gateway.running.wait().await;
}

#[tokio::test]
async fn one_address_gets_a_bounded_number_of_connections_and_connects_per_second() {
    let gateway = start_with(|settings| {
        settings.service.client.max_connections_per_ip = 2;
    })
    .await;
    let _first = gateway.anonymous().await;
    let _second = gateway.anonymous().await;
    let mut third = gateway.client().await;
    let closed = third.closed().await;
    assert_eq!(closed.code, 3005, "{closed:?}");
    assert_eq!(closed.push.unwrap()["push"]["disconnect"]["reconnect"], true);
    gateway.stop().await;

    let gateway = start_with(|settings| {
        settings.service.client.connects_per_second_per_ip = 1;
    })
    .await;
    // A burst of two is allowed, the third at once is not.
    let _first = gateway.anonymous().await;
    let _second = gateway.anonymous().await;
    let mut third = gateway.client().await;
    assert_eq!(third.closed().await.code, 3004);
    let metrics = support_get(&gateway.http("/metrics")).await;
    assert_eq!(metric(&metrics, "switchyard_realtime_connections_refused_total"), 1.0);
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_let_go_without_waiting_for_it() {
    let gateway = start_with(|settings| {
        settings.service.client.write_timeout_ms = 300;
        // Large enough that the queue limit alone would not cut it off.
        settings.service.client.max_queue_bytes = 256 << 20;
    })
    .await;
    let mut stuck = gateway.anonymous().await;
    stuck.subscribe("product:stuck").await;
    let mut api = gateway.api();
    let payload = "x".repeat(48 * 1024);
    for _ in 0..200 {
        publish(&mut api, "product:stuck", json!(payload)).await;
    }
    // The client reads nothing; the gateway gives up on it once a write stalls.
    let mut disconnected = 0.0;
    for _ in 0..50 {
        let metrics = support_get(&gateway.http("/metrics")).await;
        disconnected = sample(&metrics, "switchyard_realtime_disconnects_total{code=\"3001\"}").unwrap_or(0.0);
        if disconnected == 1.0 && metric(&metrics, "switchyard_realtime_subscriptions") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(disconnected, 1.0);
    drop(stuck);
    gateway.stop().await;
}

#[tokio::test]
async fn a_refreshed_token_ends_the_subscriptions_it_no_longer_grants() {
    let gateway = start().await;
    let mut client = gateway.user("5", &["order:1", "order:2"]).await;
    client.subscribe("order:1").await;
    client.subscribe("order:2").await;
    let reply = client
        .command("refresh", json!({"token": token("5", &["order:2"], 300)}))
        .await;
    assert!(reply.get("refresh").is_some(), "{reply}");
    let push = client.push().await;
    assert_eq!(push["channel"], "order:1");
    assert_eq!(push["unsubscribe"]["code"], 2000);
    let mut api = gateway.api();
    publish(&mut api, "order:1", json!("gone")).await;
    publish(&mut api, "order:2", json!("kept")).await;
    assert_eq!(client.publication().await["pub"]["data"], "kept");
    assert!(client.silent_for(Duration::from_millis(200)).await);
    gateway.stop().await;
}
