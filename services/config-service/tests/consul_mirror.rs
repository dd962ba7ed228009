//! Published configs mirrored into Consul KV, where the ecosystem's Go services read them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{create_yaml, publish, shop};
use switchyard_platform::{settings::ConsulSettings, testing::FakeConsul};

#[tokio::test]
async fn publications_are_mirrored_into_consul_kv_with_secrets_masked() {
    let consul = FakeConsul::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = support::settings_with_keys(dir.path());
    settings.consul = Some(ConsulSettings {
        address: consul.url(),
        ..Default::default()
    });
    settings.service.consul_kv_prefix = Some("switchyard/config".into());
    let service = support::start_with(settings, keys, dir).await;
    shop(&service).await;
    create_yaml(&service, "checkout", "port: 8080\ntoken:\n  $secret: abc123\n", "").await;
    publish(&service, "checkout", "prod").await.unwrap();

    let key = "switchyard/config/acme/shop/prod/checkout";
    let mut mirrored = None;
    for _ in 0..100 {
        if let Some(value) = consul.kv().get(key) {
            mirrored = Some(serde_json::from_slice::<serde_json::Value>(value).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mirrored = mirrored.expect("the config reached Consul KV");
    assert_eq!(mirrored["port"], 8080);
    assert_eq!(
        mirrored["token"], "******",
        "secrets are not written to Consul in clear"
    );

    support::edit(&service, "checkout", "port: 9090\n").await;
    publish(&service, "checkout", "prod").await.unwrap();
    for _ in 0..100 {
        let now: serde_json::Value = serde_json::from_slice(&consul.kv()[key]).unwrap();
        if now["port"] == 9090 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the new release was not mirrored");
}
