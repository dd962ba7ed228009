//! Environment SDK keys through every evaluation protocol: a caller without a key reads no
//! managed flag (only flag files), a server key reads every flag of what it is bound to, a
//! client key only the flags marked client-visible, and a flagd provider that can set nothing
//! but a selector sends its key there. SDK keys manage nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Keys, evaluating, settings_with_keys, start_settings, with_selector};
use switchyard_api::flagd::{
    evaluation::{
        v1::{self, service_client::ServiceClient as V1Client},
        v2::{self, service_client::ServiceClient as V2Client},
    },
    sync::v1::{FetchAllFlagsRequest, SyncFlagsRequest, flag_sync_service_client::FlagSyncServiceClient},
};
use switchyard_platform::{Running, Shutdown, testing};
use tonic::Code;

const PROD: &str = "projects/shop/environments/prod";

/// `checkout` (server-side only) and `banner` (client-visible) in shop's prod and dev.
async fn shop(running: &Running, keys: &Keys) {
    for (flag, client_visible) in [("checkout", false), ("banner", true)] {
        let body = json!({"flagId": flag, "flag": {"variants": {"on": true, "off": false},
            "clientVisible": client_visible,
            "environments": {"prod": {"enabled": true, "defaultVariant": "on"},
                             "dev": {"enabled": true, "defaultVariant": "off"}}}});
        let created = http(
            running,
            "POST",
            "/v1/projects/shop/flags",
            Some(&keys.editor),
            &[],
            body,
        )
        .await;
        assert_eq!(created.status, 200, "{}", created.text());
    }
}

async fn http(
    running: &Running,
    method: &str,
    path: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: Value,
) -> testing::HttpResponse {
    let url = format!("http://{}{path}", running.http_addr);
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    testing::http_as(method, &url, key, extra, body).await
}

/// The flag keys of an OFREP bulk answer.
fn keys_of(answer: &testing::HttpResponse) -> Vec<String> {
    answer.json()["flags"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|flag| flag["key"].as_str().unwrap().to_owned())
        .collect()
}

async fn started() -> (Running, Shutdown, Keys, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.json");
    let site = json!({"flags": {"maintenance": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}});
    std::fs::write(&file, site.to_string()).unwrap();
    let (mut settings, keys) = settings_with_keys(dir.path());
    settings.service.flags_files = vec![file];
    let (running, shutdown) = start_settings(settings).await;
    shop(&running, &keys).await;
    (running, shutdown, keys, dir)
}

#[tokio::test]
async fn a_caller_without_a_key_reads_no_managed_flag_by_any_protocol() {
    let (running, shutdown, _keys, _dir) = started().await;
    let selected = [("flagd-selector", PROD)];
    for path in ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/checkout"] {
        let refused = http(&running, "POST", path, None, &selected, json!({})).await;
        assert_eq!(refused.status, 401, "{path}: {}", refused.text());
        assert!(refused.text().contains("SDK key"), "{}", refused.text());
    }
    let native = http(
        &running,
        "POST",
        "/v1/flags:evaluateAll",
        None,
        &[],
        json!({"selector": PROD}),
    )
    .await;
    assert_eq!(native.status, 401, "{}", native.text());
    let files_only = http(&running, "POST", "/ofrep/v1/evaluate/flags", None, &[], json!({})).await;
    assert_eq!(keys_of(&files_only), ["maintenance"], "flag files stay public");

    let channel = testing::grpc_channel(&running);
    let resolved = V1Client::new(channel.clone())
        .resolve_all(with_selector(v1::ResolveAllRequest { context: None }, PROD))
        .await
        .unwrap_err();
    assert_eq!(resolved.code(), Code::Unauthenticated, "{resolved:?}");
    let mut sync = FlagSyncServiceClient::new(channel);
    let fetched = sync
        .fetch_all_flags(FetchAllFlagsRequest {
            selector: PROD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fetched.code(), Code::Unauthenticated);
    let streamed = sync
        .sync_flags(SyncFlagsRequest {
            selector: PROD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(streamed.code(), Code::Unauthenticated);
    shutdown.trigger();
}

#[tokio::test]
async fn a_server_key_reads_every_flag_and_a_client_key_only_client_visible_ones() {
    let (running, shutdown, keys, _dir) = started().await;
    let bulk = "/ofrep/v1/evaluate/flags";
    let selected = [("flagd-selector", PROD)];
    let server = http(&running, "POST", bulk, Some(&keys.sdk_server), &selected, json!({})).await;
    assert_eq!(keys_of(&server), ["banner", "checkout"], "{}", server.text());

    // The client key is bound to prod: without a selector it evaluates there.
    let client = http(&running, "POST", bulk, Some(&keys.sdk_client), &[], json!({})).await;
    assert_eq!(keys_of(&client), ["banner"], "{}", client.text());
    let hidden = http(
        &running,
        "POST",
        &format!("{bulk}/checkout"),
        Some(&keys.sdk_client),
        &[],
        json!({}),
    )
    .await;
    assert_eq!(hidden.status, 404, "{}", hidden.text());
    let elsewhere = [("flagd-selector", "projects/shop/environments/dev")];
    let refused = http(&running, "POST", bulk, Some(&keys.sdk_client), &elsewhere, json!({})).await;
    assert_eq!(refused.status, 403, "{}", refused.text());

    let other = http(&running, "POST", bulk, Some(&keys.other_tenant), &selected, json!({})).await;
    assert_eq!(
        keys_of(&other),
        Vec::<String>::new(),
        "another tenant's key sees none of acme's flags"
    );
    shutdown.trigger();
}

#[tokio::test]
async fn a_flagd_provider_sends_its_key_as_the_selector() {
    let (running, shutdown, keys, _dir) = started().await;
    let staff = json!({"segmentId": "staff", "segment": {"rule": {"in": [{"var": "email"}, ["boss@shop.com.bd"]]}}});
    let created = http(
        &running,
        "POST",
        "/v1/projects/shop/segments",
        Some(&keys.editor),
        &[],
        staff,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    let channel = testing::grpc_channel(&running);
    let request = v2::ResolveBooleanRequest {
        flag_key: "banner".into(),
        context: None,
    };
    let banner = V2Client::new(channel.clone())
        .resolve_boolean(with_selector(request, &keys.sdk_client))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(banner.value, Some(true));
    let document = FlagSyncServiceClient::new(channel.clone())
        .fetch_all_flags(FetchAllFlagsRequest {
            selector: keys.sdk_client.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .flag_configuration;
    assert!(
        document.contains("banner") && !document.contains("checkout"),
        "{document}"
    );
    assert!(
        !document.contains("boss@shop.com.bd"),
        "a segment no client flag uses stays server-side: {document}"
    );
    let forged = V1Client::new(channel)
        .resolve_all(with_selector(v1::ResolveAllRequest { context: None }, "sy_00_forged"))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    shutdown.trigger();
}

#[tokio::test]
async fn sdk_keys_evaluate_but_manage_nothing() {
    let (running, shutdown, keys, _dir) = started().await;
    for key in [&keys.sdk_server, &keys.sdk_client] {
        let listed = http(&running, "GET", "/v1/projects/shop/flags", Some(key), &[], Value::Null).await;
        assert_eq!(listed.status, 403, "{}", listed.text());
    }
    let mut client = V2Client::new(testing::grpc_channel(&running));
    let request = v2::ResolveBooleanRequest {
        flag_key: "checkout".into(),
        context: None,
    };
    let checkout = client
        .resolve_boolean(evaluating(&keys.sdk_server, request, PROD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checkout.value, Some(true));
    shutdown.trigger();
}

#[tokio::test]
async fn bad_credentials_are_refused_before_the_body_is_read() {
    let (running, shutdown, _keys, _dir) = started().await;
    let url = format!("http://{}/ofrep/v1/evaluate/flags", running.http_addr);
    let answer = testing::http("POST", &url, &[("authorization", "Bearer sy_00_nope")], "{not json").await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    shutdown.trigger();
}
