//! Discovery against the in-process Consul fake (Consul's documented HTTP API): what an
//! instance registers, that it deregisters on shutdown, and that resolution follows
//! healthy instances through blocking queries; KV writes, reads and deletes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeMap, time::Duration};

use switchyard_api::testing::v1::{GetItemRequest, Item, transcode_test_client::TranscodeTestClient};
use switchyard_platform::{
    Shutdown,
    discovery::{
        Discovery, Registration,
        consul::{ConsulClient, HealthCheck, watch_healthy},
    },
    settings::ConsulSettings,
    testing::{self, CheckStatus, FakeConsul},
};

fn consul_settings(fake: &FakeConsul) -> ConsulSettings {
    ConsulSettings {
        address: fake.url(),
        tags: vec!["switchyard".into(), "test".into()],
        ..ConsulSettings::default()
    }
}

fn instance(id: &str, port: u16) -> Registration {
    Registration {
        id: id.into(),
        name: "orders".into(),
        address: "127.0.0.1".into(),
        port,
        tags: vec![],
        meta: BTreeMap::new(),
        check: HealthCheck {
            grpc: format!("127.0.0.1:{port}"),
            grpc_use_tls: false,
            interval: "10s".into(),
            deregister_critical_service_after: "1m".into(),
        },
    }
}

#[tokio::test]
async fn registers_on_start_and_deregisters_on_shutdown() {
    let fake = FakeConsul::start().await.unwrap();
    let (mut settings, dir) = support::settings();
    settings.consul = Some(consul_settings(&fake));
    let server = support::start_with(settings, dir).await;

    let payloads = fake.payloads();
    assert_eq!(payloads.len(), 1);
    let payload = &payloads[0];
    let grpc_port = server.running.grpc_addr.port();
    assert!(payload["ID"].as_str().unwrap().starts_with("echo-service-"));
    assert_eq!(payload["Name"], "echo-service");
    assert_eq!(payload["Address"], "127.0.0.1");
    assert_eq!(payload["Port"], grpc_port);
    assert_eq!(payload["Tags"], serde_json::json!(["switchyard", "test"]));
    assert_eq!(
        payload["Meta"]["http_port"],
        server.running.http_addr.port().to_string()
    );
    assert_eq!(payload["Check"]["GRPC"], format!("127.0.0.1:{grpc_port}"));
    assert_eq!(payload["Check"]["GRPCUseTLS"], false);
    assert_eq!(payload["Check"]["Interval"], "10s");
    assert_eq!(payload["Check"]["DeregisterCriticalServiceAfter"], "1m");

    let id = payload["ID"].as_str().unwrap().to_owned();
    assert_eq!(fake.registered_ids(), vec![id.clone()]);
    server.stop().await;
    assert_eq!(fake.deregistered(), vec![id]);
    assert!(fake.registered_ids().is_empty());
}

#[tokio::test]
async fn resolver_follows_healthy_instances_with_blocking_queries() {
    let fake = FakeConsul::start().await.unwrap();
    let client = ConsulClient::new(&consul_settings(&fake));
    let shutdown = Shutdown::new();
    fake.add(instance("orders-1", 9100));
    let mut healthy = watch_healthy(client.clone(), "orders".into(), "30s".into(), shutdown.clone());

    let ids =
        |list: &Vec<switchyard_platform::discovery::Instance>| list.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let wait = |rx: &mut tokio::sync::watch::Receiver<Vec<_>>, want: Vec<&str>| {
        let want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        let mut rx = rx.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|list| ids(list) == want))
                .await
                .expect("resolver did not catch up")
                .unwrap();
        }
    };
    wait(&mut healthy, vec!["orders-1"]).await;

    // The blocking query returns as soon as the catalog changes (its wait is 30 s).
    let started = std::time::Instant::now();
    fake.add(instance("orders-2", 9101));
    wait(&mut healthy, vec!["orders-1", "orders-2"]).await;
    assert!(started.elapsed() < Duration::from_secs(5));

    fake.set_check("orders-1", CheckStatus::Critical);
    wait(&mut healthy, vec!["orders-2"]).await;
    let current = healthy.borrow().clone();
    assert_eq!(current[0].address.port(), 9101);
    shutdown.trigger();
}

#[tokio::test]
async fn channels_balance_over_registered_instances() {
    let fake = FakeConsul::start().await.unwrap();
    let (mut settings, dir) = support::settings();
    settings.consul = Some(consul_settings(&fake));
    let server = support::start_with(settings, dir).await;

    let shutdown = Shutdown::new();
    let discovery = Discovery::new(Some(&consul_settings(&fake)), &BTreeMap::new(), shutdown.clone());
    let channel = discovery.channel("echo-service").unwrap();
    let mut client = TranscodeTestClient::new(channel);
    let request = GetItemRequest {
        item: Some(Item {
            name: "via-consul".into(),
            ..Item::default()
        }),
        ..GetItemRequest::default()
    };
    let mut answer = None;
    for _ in 0..50 {
        match client.get_item(request.clone()).await {
            Ok(response) => {
                answer = Some(response.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(answer.unwrap().request_json.contains("via-consul"));
    shutdown.trigger();
    server.stop().await;
}

#[tokio::test]
async fn static_discovery_without_consul() {
    let server = support::start().await;
    let mut peers = BTreeMap::new();
    peers.insert("echo-service".to_owned(), vec![server.grpc.clone()]);
    let discovery = Discovery::new(None, &peers, Shutdown::new());
    assert_eq!(discovery.kind(), "static");
    let mut client = TranscodeTestClient::new(discovery.channel("echo-service").unwrap());
    assert!(client.get_item(GetItemRequest::default()).await.is_ok());
    assert!(
        discovery
            .channel("nobody")
            .unwrap_err()
            .to_string()
            .contains("peers.nobody")
    );
    server.stop().await;
}

#[tokio::test]
async fn kv_put_get_delete_round_trip() {
    let fake = FakeConsul::start().await.unwrap();
    let client = ConsulClient::new(&consul_settings(&fake));
    let key = "switchyard/acme/shop/prod/app";

    client.kv_put(key, b"{\"port\": 8080}").await.unwrap();
    assert_eq!(
        client.kv_get(key).await.unwrap().as_deref(),
        Some(&b"{\"port\": 8080}"[..])
    );
    assert_eq!(
        fake.kv(),
        BTreeMap::from([(key.to_owned(), b"{\"port\": 8080}".to_vec())])
    );

    // Binary values go through untouched, and a second put replaces the first.
    let binary = vec![0u8, 159, 146, 150, 255];
    client.kv_put(key, &binary).await.unwrap();
    assert_eq!(client.kv_get(key).await.unwrap(), Some(binary));

    client.kv_delete(key).await.unwrap();
    assert_eq!(client.kv_get(key).await.unwrap(), None);
    assert!(fake.kv().is_empty());
    // Deleting a key that is gone still succeeds, as in Consul.
    client.kv_delete(key).await.unwrap();
}

#[tokio::test]
async fn kv_keys_with_spaces_and_unicode_round_trip() {
    let fake = FakeConsul::start().await.unwrap();
    let client = ConsulClient::new(&consul_settings(&fake));
    let key = "switchyard/acme corp/bücher ✓/prod?#50%+/app";

    client.kv_put(key, b"value").await.unwrap();
    // The fake decodes the path, so the stored key is exactly the one given.
    assert_eq!(fake.kv().into_keys().collect::<Vec<_>>(), vec![key.to_owned()]);
    assert_eq!(client.kv_get(key).await.unwrap(), Some(b"value".to_vec()));
    // A sibling key differing only in the encoded segment is a different key.
    assert_eq!(
        client.kv_get("switchyard/acme corp/bucher/prod/app").await.unwrap(),
        None
    );

    client.kv_delete(key).await.unwrap();
    assert!(fake.kv().is_empty());
}

#[tokio::test]
async fn kv_get_of_missing_key_is_none() {
    let fake = FakeConsul::start().await.unwrap();
    let client = ConsulClient::new(&consul_settings(&fake));
    assert_eq!(client.kv_get("switchyard/nobody/here").await.unwrap(), None);
}

#[tokio::test]
async fn fake_kv_answers_in_consul_json_form() {
    let fake = FakeConsul::start().await.unwrap();
    let client = ConsulClient::new(&consul_settings(&fake));
    client.kv_put("switchyard/a", b"hello").await.unwrap();
    client.kv_put("switchyard/a", b"hello again").await.unwrap();

    let response = testing::get(&format!("{}/v1/kv/switchyard/a", fake.url())).await;
    assert_eq!(response.status, 200);
    let body = response.json();
    let entry = &body[0];
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(entry["Key"], "switchyard/a");
    assert_eq!(entry["Value"], "aGVsbG8gYWdhaW4=");
    assert_eq!(entry["Flags"], 0);
    assert_eq!(entry["LockIndex"], 0);
    assert!(entry["ModifyIndex"].as_u64().unwrap() > entry["CreateIndex"].as_u64().unwrap());

    let raw = testing::get(&format!("{}/v1/kv/switchyard/a?raw", fake.url())).await;
    assert_eq!(&raw.body[..], b"hello again");
    assert_eq!(
        testing::get(&format!("{}/v1/kv/switchyard/b", fake.url())).await.status,
        404
    );
}
