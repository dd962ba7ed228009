//! Which flags a caller that sends no selector sees: flag files, plus the one managed source
//! named by `default_selector` — never every project and environment merged, where the same key
//! in two projects would be answered from whichever came last.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{settings_with_keys, start_settings};
use switchyard_api::flagd::evaluation::v2::{self, service_client::ServiceClient as V2Client};
use switchyard_platform::{Running, testing};

/// Flag `checkout` in projects `web` (serving "web") and `app` (serving "app"), both in prod.
async fn two_projects(running: &Running, editor: &str) {
    for project in ["web", "app"] {
        let body = json!({"flagId": "checkout", "flag": {"variants": {"web": "web", "app": "app"},
            "environments": {"prod": {"enabled": true, "defaultVariant": project}}}});
        let created = testing::http(
            "POST",
            &format!("http://{}/v1/projects/{project}/flags", running.http_addr),
            &[("authorization", &format!("Bearer {editor}"))],
            body.to_string(),
        )
        .await;
        assert_eq!(created.status, 200, "{}", created.text());
    }
}

/// OFREP with an SDK server key of the tenant.
async fn ofrep(running: &Running, key: &str, selector: Option<&str>, path: &str) -> testing::HttpResponse {
    let url = format!("http://{}/ofrep/v1/evaluate/flags{path}", running.http_addr);
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(selector.map(|selector| ("flagd-selector", selector)));
    testing::http(
        "POST",
        &url,
        &headers,
        json!({"context": {"targetingKey": "u1"}}).to_string(),
    )
    .await
}

#[tokio::test]
async fn without_a_selector_a_managed_flag_is_not_found_and_the_message_names_its_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = settings_with_keys(dir.path());
    let (running, shutdown) = start_settings(settings).await;
    two_projects(&running, &keys.editor).await;

    let unselected = ofrep(&running, &keys.sdk_server, None, "/checkout").await;
    assert_eq!(unselected.status, 404, "{}", unselected.text());
    let body = unselected.json();
    assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
    let message = body["errorDetails"].as_str().unwrap_or_default();
    for selector in ["projects/web/environments/prod", "projects/app/environments/prod"] {
        assert!(message.contains(selector), "{message}");
    }

    let web = ofrep(
        &running,
        &keys.sdk_server,
        Some("projects/web/environments/prod"),
        "/checkout",
    )
    .await;
    assert_eq!(web.json()["value"], "web", "{}", web.text());
    let app = ofrep(
        &running,
        &keys.sdk_server,
        Some("projects/app/environments/prod"),
        "/checkout",
    )
    .await;
    assert_eq!(app.json()["value"], "app", "{}", app.text());

    let bulk = ofrep(&running, &keys.sdk_server, None, "").await;
    assert_eq!(bulk.status, 200, "{}", bulk.text());
    let flags: Vec<Value> = bulk.json()["flags"].as_array().cloned().unwrap_or_default();
    assert!(flags.iter().all(|flag| flag["key"] != "checkout"), "{flags:?}");

    let mut flagd = V2Client::new(testing::grpc_channel(&running));
    let request = || v2::ResolveStringRequest {
        flag_key: "checkout".into(),
        context: None,
    };
    let mut keyed = tonic::Request::new(request());
    let bearer = format!("Bearer {}", keys.sdk_server);
    keyed.metadata_mut().insert("authorization", bearer.parse().unwrap());
    let refused = flagd.resolve_string(keyed).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert!(
        refused.message().contains("projects/app/environments/prod"),
        "{}",
        refused.message()
    );
    let anonymous = flagd.resolve_string(request()).await.unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::NotFound);
    assert!(
        !anonymous.message().contains("projects/"),
        "a caller without a key is not told where managed flags live: {}",
        anonymous.message()
    );
    shutdown.trigger();
}

#[tokio::test]
async fn the_default_selector_answers_callers_that_send_none() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = settings_with_keys(dir.path());
    settings.service.default_selector = "projects/app/environments/prod".into();
    let (running, shutdown) = start_settings(settings).await;
    two_projects(&running, &keys.editor).await;

    for _ in 0..3 {
        let answered = ofrep(&running, &keys.sdk_server, None, "/checkout").await;
        assert_eq!(answered.json()["value"], "app", "{}", answered.text());
    }
    let bulk = ofrep(&running, &keys.sdk_server, None, "").await;
    let keys: Vec<Value> = bulk.json()["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flag| flag["key"].clone())
        .collect();
    assert_eq!(keys, vec![json!("checkout")]);
    shutdown.trigger();
}
