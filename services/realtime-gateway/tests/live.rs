//! `$config:{project}:{env}` and `$flags:{project}:{env}`: the gateway watches the real
//! config-service and flag-service (found through static discovery) while clients subscribe,
//! publishes their changes, and resumes from the channel's last revision after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_platform::{
    Running, Shutdown,
    auth::generate_api_key,
    testing::{self, redis_url},
};

struct Upstream {
    config: Running,
    flags: Running,
    shutdown: Shutdown,
    admin_key: String,
    record: switchyard_platform::auth::ApiKeyRecord,
    _dirs: Vec<tempfile::TempDir>,
}

/// config-service and flag-service on SQLite, sharing an admin key.
async fn upstream() -> Upstream {
    let admin = generate_api_key("default", &["admin"]);
    let shutdown = Shutdown::new();
    let (config_dir, flags_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = testing::local(config_service::conf::defaults(), config_dir.path());
    config.auth.api_keys.push(admin.record.clone());
    let mut flags = testing::local(flag_service::conf::defaults(), flags_dir.path());
    flags.auth.api_keys.push(admin.record.clone());
    Upstream {
        config: config_service::start(config, shutdown.clone()).await.unwrap(),
        flags: flag_service::start(flags, shutdown.clone()).await.unwrap(),
        shutdown,
        admin_key: admin.plaintext,
        record: admin.record,
        _dirs: vec![config_dir, flags_dir],
    }
}

impl Upstream {
    async fn call(&self, running: &Running, method: &str, path: &str, body: Value) -> Value {
        let auth = format!("Bearer {}", self.admin_key);
        let url = format!("http://{}{path}", running.http_addr);
        let response = testing::http(method, &url, &[("authorization", &auth)], body.to_string()).await;
        assert!(
            response.status < 300,
            "{method} {path}: {} {}",
            response.status,
            response.text()
        );
        response.json()
    }

    /// A gateway node that finds both services through `peers` and watches with the admin key.
    async fn gateway(&self, redis_prefix: Option<&str>) -> support::Gateway {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = match redis_prefix {
            Some(prefix) => support::node_settings(dir.path(), &redis_url(), prefix),
            None => support::settings(dir.path()).0,
        };
        settings.auth.api_keys = vec![self.record.clone()];
        settings.peers.insert(
            "config-service".into(),
            vec![format!("http://{}", self.config.grpc_addr)],
        );
        settings
            .peers
            .insert("flag-service".into(), vec![format!("http://{}", self.flags.grpc_addr)]);
        settings.service.live.api_key = Some(self.admin_key.clone());
        settings.service.live.scan_ms = 50;
        support::start_on(settings, self.admin_key.clone(), dir).await
    }

    /// Creates project `shop` (environment `dev`) with config `checkout` published at `port`.
    async fn shop(&self) -> String {
        self.call(
            &self.config,
            "POST",
            "/v1/projects?projectId=shop&environmentIds=dev",
            json!({"displayName": "Shop"}),
        )
        .await;
        let created = self
            .call(
                &self.config,
                "POST",
                "/v1/projects/shop/configs?configId=checkout",
                json!({"format": "FORMAT_JSON", "content": "{\"port\": 8080}"}),
            )
            .await;
        self.publish_config().await;
        created["etag"].as_str().unwrap().to_owned()
    }

    async fn publish_config(&self) {
        self.call(
            &self.config,
            "POST",
            "/v1/projects/shop/configs/checkout:publish",
            json!({"environment": "dev", "message": "test"}),
        )
        .await;
    }

    async fn set_port(&self, etag: &str, port: u16) -> String {
        let updated = self
            .call(
                &self.config,
                "PATCH",
                "/v1/projects/shop/configs/checkout",
                json!({"name": "projects/shop/configs/checkout", "etag": etag, "format": "FORMAT_JSON",
                       "content": format!("{{\"port\": {port}}}")}),
            )
            .await;
        self.publish_config().await;
        updated["etag"].as_str().unwrap().to_owned()
    }
}

/// The next `$config` publication's revision and port.
async fn next_config(client: &mut support::Client) -> (u64, u64, Value) {
    let push = client.publication().await;
    let data = &push["pub"]["data"];
    let port = data["configs"][0]["content"]["port"].as_u64().unwrap_or(0);
    (data["revision"].as_u64().unwrap(), port, push["pub"].clone())
}

#[tokio::test]
async fn browsers_receive_config_changes_as_they_are_published() {
    let upstream = upstream().await;
    let etag = upstream.shop().await;
    let gateway = upstream.gateway(None).await;
    let mut browser = gateway.user("web-1", &["$config:*"]).await;
    assert!(browser.subscribe("$config:shop:dev").await.get("subscribe").is_some());
    let (first_revision, port, first) = next_config(&mut browser).await;
    assert_eq!(port, 8080);
    assert_eq!(first["data"]["snapshot"], true, "{first}");
    assert_eq!(
        first["data"]["configs"][0]["name"],
        "projects/shop/environments/dev/configs/checkout"
    );

    upstream.set_port(&etag, 9090).await;
    let (revision, port, change) = next_config(&mut browser).await;
    assert_eq!(port, 9090);
    assert!(revision > first_revision);
    assert_eq!(change["offset"], first["offset"].as_u64().unwrap() + 1);

    let mut stranger = gateway.user("web-2", &[]).await;
    assert_eq!(stranger.subscribe("$config:shop:dev").await["error"]["code"], 103);
    gateway.stop().await;
    upstream.shutdown.trigger();
}

#[tokio::test]
async fn a_restarted_node_resumes_from_the_channels_last_revision() {
    let upstream = upstream().await;
    let etag = upstream.shop().await;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let first_node = upstream.gateway(Some(&prefix)).await;
    let mut browser = first_node.user("web-1", &["$config:*"]).await;
    let epoch = browser.subscribe("$config:shop:dev").await["subscribe"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let (revision, _, first) = next_config(&mut browser).await;
    let offset = first["offset"].as_u64().unwrap();
    drop(browser);
    first_node.stop().await;

    // Changed while no gateway watched.
    let etag = upstream.set_port(&etag, 7070).await;
    upstream.set_port(&etag, 7071).await;

    let second_node = upstream.gateway(Some(&prefix)).await;
    let mut back = second_node.user("web-1", &["$config:*"]).await;
    let reply = back.recover("$config:shop:dev", offset, &epoch).await;
    assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
    // The new node publishes what changed since the channel's last revision — not a new
    // snapshot of what the channel already had.
    // They may already be in the recovery (the feed starts with the subscription) or come
    // live; config-service may bring both changes in one event.
    let mut publications: Vec<Value> = reply["subscribe"]["publications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last_port = |publications: &[Value]| {
        publications
            .last()
            .and_then(|p| p["data"]["configs"].as_array()?.last()?["content"]["port"].as_u64())
    };
    while last_port(&publications) != Some(7071) {
        publications.push(back.publication().await["pub"].clone());
    }
    let mut revisions = Vec::new();
    let mut ports = Vec::new();
    for (index, publication) in publications.iter().enumerate() {
        assert_eq!(publication["offset"], offset + 1 + index as u64);
        assert_eq!(publication["data"]["snapshot"], false, "{publication}");
        for config in publication["data"]["configs"].as_array().unwrap() {
            revisions.push(config["revision"].as_u64().unwrap());
            ports.push(config["content"]["port"].as_u64().unwrap());
        }
    }
    assert!(
        revisions.iter().all(|r| *r > revision),
        "{revisions:?} after {revision}"
    );
    assert_eq!(ports, vec![7070, 7071]);
    second_node.stop().await;
    upstream.shutdown.trigger();
}

#[tokio::test]
async fn a_channel_ahead_of_a_restored_config_service_gets_its_real_state_as_a_snapshot() {
    let original = upstream().await;
    let mut etag = original.shop().await;
    for port in [7001, 7002, 7003] {
        etag = original.set_port(&etag, port).await;
    }
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let first_node = original.gateway(Some(&prefix)).await;
    let mut browser = first_node.user("web-1", &["$config:*"]).await;
    browser.subscribe("$config:shop:dev").await;
    let (ahead, _, _) = next_config(&mut browser).await;
    drop(browser);
    first_node.stop().await;
    original.shutdown.trigger();

    // The database comes back from an older backup: fewer revisions than the channel has seen.
    let restored = upstream().await;
    restored.shop().await;
    let second_node = restored.gateway(Some(&prefix)).await;
    let mut back = second_node.user("web-1", &["$config:*"]).await;
    back.subscribe("$config:shop:dev").await;
    let (revision, port, reset) = next_config(&mut back).await;
    assert!(revision < ahead, "{revision} after {ahead}");
    assert_eq!(port, 8080);
    assert_eq!(reset["data"]["snapshot"], true, "{reset}");
    second_node.stop().await;
    restored.shutdown.trigger();
}

#[tokio::test]
async fn browsers_receive_the_flag_document_of_their_environment() {
    let upstream = upstream().await;
    upstream.shop().await;
    upstream
        .call(
            &upstream.flags,
            "POST",
            "/v1/projects/shop/flags",
            json!({"flagId": "new-checkout", "flag": {"variants": {"on": true, "off": false},
                   "environments": {"dev": {"enabled": true, "defaultVariant": "on"}}}}),
        )
        .await;
    let gateway = upstream.gateway(None).await;
    let mut browser = gateway.user("web-1", &["$flags:shop:*"]).await;
    assert!(browser.subscribe("$flags:shop:dev").await.get("subscribe").is_some());
    let first = browser.publication().await;
    let flag = &first["pub"]["data"]["flags"]["new-checkout"];
    assert_eq!(flag["state"], "ENABLED", "{first}");
    assert_eq!(flag["defaultVariant"], "on");

    upstream
        .call(
            &upstream.flags,
            "POST",
            "/v1/projects/shop/flags/new-checkout:kill",
            json!({"environments": ["dev"]}),
        )
        .await;
    let killed = browser.publication().await;
    assert_eq!(
        killed["pub"]["data"]["flags"]["new-checkout"]["state"], "DISABLED",
        "{killed}"
    );
    assert_ne!(killed["pub"]["data"]["digest"], first["pub"]["data"]["digest"]);
    assert!(
        browser.silent_for(Duration::from_millis(300)).await,
        "one change, one publication"
    );
    gateway.stop().await;
    upstream.shutdown.trigger();
}
