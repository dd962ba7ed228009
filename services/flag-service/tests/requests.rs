//! Requests a careless or hostile caller sends to the management API over HTTP: each gets a
//! clear answer and changes nothing it should not — credentials before bodies, the kill
//! switch only where it is pointed, etags honoured where reads put them, opaque page
//! tokens, one violation per mistake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Keys, settings_with_keys, start_settings};
use switchyard_platform::{Running, Shutdown, testing};

struct Api {
    running: Running,
    shutdown: Shutdown,
    keys: Keys,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (settings, keys) = settings_with_keys(dir.path());
        let (running, shutdown) = start_settings(settings).await;
        Self {
            running,
            shutdown,
            keys,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> testing::HttpResponse {
        let url = format!("http://{}{path}", self.running.http_addr);
        testing::http_as(method, &url, key, &[], body.to_owned()).await
    }

    async fn editor(&self, method: &str, path: &str, body: Value) -> testing::HttpResponse {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.call(method, path, Some(&self.keys.editor), &body).await
    }

    /// `checkout`, enabled in dev and prod.
    async fn checkout(&self) -> Value {
        let body = json!({"flagId": "checkout", "flag": {"variants": {"on": true, "off": false},
            "environments": {"prod": {"enabled": true, "defaultVariant": "on"},
                             "dev": {"enabled": true, "defaultVariant": "on"}}}});
        let created = self.editor("POST", "/v1/projects/shop/flags", body).await;
        assert_eq!(created.status, 200, "{}", created.text());
        created.json()
    }

    async fn read(&self) -> Value {
        self.editor("GET", "/v1/projects/shop/flags/checkout", Value::Null)
            .await
            .json()
    }
}

fn fields(answer: &testing::HttpResponse) -> Vec<String> {
    answer.json()["details"][0]["fieldViolations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|violation| violation["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_unauthenticated_write_is_refused_before_its_body_is_read() {
    let api = Api::start().await;
    for key in [None, Some("sy_00_forged")] {
        let refused = api.call("POST", "/v1/projects/shop/flags", key, "{not json").await;
        assert_eq!(refused.status, 401, "{}", refused.text());
    }
    let parsed = api
        .call("POST", "/v1/projects/shop/flags", Some(&api.keys.editor), "{not json")
        .await;
    assert_eq!(parsed.status, 400, "with credentials, the body is what is wrong");
    api.shutdown.trigger();
}

#[tokio::test]
async fn the_kill_switch_needs_a_list_of_environments_or_all() {
    let api = Api::start().await;
    api.checkout().await;
    let path = "/v1/projects/shop/flags/checkout:kill";
    for body in [json!({}), json!({"environments": ["prod"], "all": true})] {
        let refused = api.editor("POST", path, body).await;
        assert_eq!(refused.status, 400, "{}", refused.text());
    }
    let flag = api.read().await;
    assert_eq!(flag["environments"]["prod"]["enabled"], true, "nothing was killed");
    let killed = api
        .editor("POST", path, json!({"all": true, "message": "incident 7"}))
        .await;
    assert_eq!(killed.status, 200, "{}", killed.text());
    let environments = &killed.json()["environments"];
    assert_eq!(
        (&environments["prod"]["enabled"], &environments["dev"]["enabled"]),
        (&json!(false), &json!(false))
    );
    api.shutdown.trigger();
}

#[tokio::test]
async fn the_etag_a_read_returns_inside_the_flag_guards_the_write() {
    let api = Api::start().await;
    let read = api.checkout().await;
    let newer = api
        .editor(
            "PUT",
            "/v1/projects/shop/flags/checkout",
            json!({"flag": {"name": read["name"],
        "variants": read["variants"], "environments": read["environments"], "description": "newer"}}),
        )
        .await;
    assert_eq!(newer.status, 200, "{}", newer.text());
    let mut stale = read.clone();
    stale["description"] = json!("stale");
    let refused = api
        .editor("PUT", "/v1/projects/shop/flags/checkout", json!({"flag": stale}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert_eq!(api.read().await["description"], "newer", "the newer version is kept");
    let mut fresh = newer.json();
    fresh["description"] = json!("fresh");
    let accepted = api
        .editor("PUT", "/v1/projects/shop/flags/checkout", json!({"flag": fresh}))
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let bad = api
        .editor(
            "PUT",
            "/v1/projects/shop/flags/checkout",
            json!({"flag": read, "etag": "abc"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("not an etag"), "{}", bad.text());
    api.shutdown.trigger();
}

#[tokio::test]
async fn concurrent_writes_without_an_etag_all_land_last_writer_winning() {
    let api = Api::start().await;
    let read = api.checkout().await;
    let writes = (0..8).map(|index| {
        let body = json!({"flag": {"name": read["name"], "variants": read["variants"],
            "environments": read["environments"], "description": format!("writer {index}")}});
        api.editor("PUT", "/v1/projects/shop/flags/checkout", body)
    });
    for written in futures::future::join_all(writes).await {
        assert_eq!(written.status, 200, "{}", written.text());
    }
    let last = api.read().await;
    assert_eq!(last["version"], "9", "every write landed: {last}");
    api.shutdown.trigger();
}

#[tokio::test]
async fn lists_take_only_the_page_tokens_they_issued() {
    let api = Api::start().await;
    for flag in ["a", "b", "c"] {
        let body = json!({"flagId": flag, "flag": {"variants": {"on": true}}});
        assert_eq!(api.editor("POST", "/v1/projects/shop/flags", body).await.status, 200);
    }
    let first = api
        .editor("GET", "/v1/projects/shop/flags?pageSize=2", Value::Null)
        .await
        .json();
    let token = first["nextPageToken"].as_str().unwrap();
    let second = api
        .editor(
            "GET",
            &format!("/v1/projects/shop/flags?pageSize=2&pageToken={token}"),
            Value::Null,
        )
        .await;
    assert_eq!(
        second.json()["flags"][0]["name"],
        "projects/shop/flags/c",
        "{}",
        second.text()
    );
    for query in ["pageToken=-1", "pageToken=b", "pageSize=-1"] {
        let refused = api
            .editor("GET", &format!("/v1/projects/shop/flags?{query}"), Value::Null)
            .await;
        assert_eq!(refused.status, 400, "{query}: {}", refused.text());
    }
    api.shutdown.trigger();
}

#[tokio::test]
async fn a_mistake_shared_by_every_environment_is_reported_once() {
    let api = Api::start().await;
    let body = json!({"flagId": "mixed", "flag": {"variants": {"on": true, "label": "x"},
        "environments": {"prod": {"enabled": true}, "dev": {"enabled": true}, "staging": {"enabled": true}}}});
    let refused = api.editor("POST", "/v1/projects/shop/flags", body).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    let listed = fields(&refused);
    assert_eq!(listed.len(), 1, "{}", refused.text());
    api.shutdown.trigger();
}
