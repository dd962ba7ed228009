//! The key store through its HTTP API: a tenant's admin creates, lists and revokes keys
//! without a restart; a created key works at once (on another replica as soon as the bus
//! tells it), a revoked or expired one stops; nobody else can touch a tenant's keys; bad
//! requests name the field and create nothing; every change is audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_api::config::v1::{WatchApiKeysRequest, api_key_service_client::ApiKeyServiceClient};
use switchyard_platform::testing::{self, HttpResponse};
use tonic::Code;

async fn call(service: &support::Service, method: &str, path: &str, key: &str, body: Value) -> HttpResponse {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    testing::http_as(method, &service.http(path), Some(key), &[], body).await
}

/// Creates a key as the admin; returns (id, secret).
async fn create(service: &support::Service, body: Value) -> (String, String) {
    let created = call(service, "POST", "/v1/apiKeys", &service.keys.admin, body).await;
    assert_eq!(created.status, 200, "{}", created.text());
    let created = created.json();
    let id = created["apiKey"]["id"].as_str().unwrap().to_owned();
    (id, created["secret"].as_str().unwrap().to_owned())
}

async fn list_projects(service: &support::Service, key: &str) -> u16 {
    call(service, "GET", "/v1/projects", key, Value::Null).await.status
}

/// Polls until `status` holds; the bound only turns a lost change into a failure.
async fn eventually(mut status: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !status().await {
        assert!(tokio::time::Instant::now() < deadline, "the change never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_created_key_works_at_once_and_a_revoked_one_stops() {
    let service = support::sqlite().await;
    let (id, secret) = create(&service, json!({"displayName": "ci", "roles": ["viewer"]})).await;
    assert!(secret.starts_with(&format!("sy_{id}_")), "{secret}");
    assert_eq!(list_projects(&service, &secret).await, 200);

    let listed = call(&service, "GET", "/v1/apiKeys", &service.keys.admin, Value::Null).await;
    let listed = listed.json();
    assert_eq!(listed["apiKeys"][0]["id"], id.as_str());
    assert_eq!(listed["apiKeys"][0]["roles"], json!(["viewer"]));
    assert!(!listed.to_string().contains(&secret), "the secret is never shown again");

    let path = format!("/v1/apiKeys/{id}:revoke");
    let revoked = call(&service, "POST", &path, &service.keys.admin, json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert!(revoked.json()["revokeTime"].is_string());
    let refused = call(&service, "GET", "/v1/projects", &secret, Value::Null).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(refused.text().contains("revoked"), "{}", refused.text());

    let again = call(&service, "POST", &path, &service.keys.admin, json!({})).await;
    assert_eq!(again.status, 200, "revoking twice changes nothing: {}", again.text());
    assert_eq!(again.json()["revokeTime"], revoked.json()["revokeTime"]);
    let active = call(&service, "GET", "/v1/apiKeys", &service.keys.admin, Value::Null).await;
    assert_eq!(active.json()["apiKeys"], json!([]), "{}", active.text());
    let all = call(
        &service,
        "GET",
        "/v1/apiKeys?showInactive=true",
        &service.keys.admin,
        Value::Null,
    )
    .await;
    assert_eq!(all.json()["apiKeys"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_keys_last_use_is_listed() {
    let service = support::sqlite().await;
    let (_, secret) = create(&service, json!({"displayName": "ci", "roles": ["viewer"]})).await;
    let listed = call(&service, "GET", "/v1/apiKeys", &service.keys.admin, Value::Null).await;
    assert_eq!(
        listed.json()["apiKeys"][0].get("lastUsedTime"),
        None,
        "{}",
        listed.text()
    );
    assert_eq!(list_projects(&service, &secret).await, 200);
    eventually(async || {
        let listed = call(&service, "GET", "/v1/apiKeys", &service.keys.admin, Value::Null).await;
        listed.json()["apiKeys"][0]["lastUsedTime"].is_string()
    })
    .await;
}

#[tokio::test]
async fn another_replica_honours_and_refuses_keys_without_a_restart() {
    let first = support::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let second = support::start_with(first.settings.clone(), first.keys.clone(), dir).await;
    let (id, secret) = create(&first, json!({"displayName": "deploys", "roles": ["viewer"]})).await;
    eventually(async || list_projects(&second, &secret).await == 200).await;
    let path = format!("/v1/apiKeys/{id}:revoke");
    let revoked = call(&first, "POST", &path, &first.keys.admin, json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    eventually(async || list_projects(&second, &secret).await == 401).await;
}

#[tokio::test]
async fn only_the_tenants_unscoped_admin_manages_its_keys() {
    let service = support::sqlite().await;
    let (id, secret) = create(&service, json!({"displayName": "ci", "roles": ["viewer"]})).await;
    for key in [&service.keys.editor, &service.keys.shop_editor, &secret] {
        let refused = call(
            &service,
            "POST",
            "/v1/apiKeys",
            key,
            json!({"displayName": "x", "roles": ["admin"]}),
        )
        .await;
        assert_eq!(refused.status, 403, "{}", refused.text());
    }
    let other = &service.keys.other_tenant;
    let path = format!("/v1/apiKeys/{id}:revoke");
    let revoked = call(&service, "POST", &path, other, json!({})).await;
    assert_eq!(
        revoked.status,
        404,
        "another tenant's key is not found: {}",
        revoked.text()
    );
    let listed = call(&service, "GET", "/v1/apiKeys", other, Value::Null).await;
    assert_eq!(listed.json()["apiKeys"], json!([]), "{}", listed.text());
    assert_eq!(list_projects(&service, &secret).await, 200, "still works");
    let anonymous = testing::http("POST", &service.http("/v1/apiKeys"), &[], "{}").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
}

#[tokio::test]
async fn bad_requests_name_the_field_and_create_nothing() {
    let service = support::sqlite().await;
    let cases = [
        (json!({"roles": ["viewer"]}), "display_name"),
        (
            json!({"displayName": "x".repeat(3_000_000), "roles": ["viewer"]}),
            "display_name",
        ),
        (json!({"displayName": "ci"}), "roles"),
        (json!({"displayName": "ci", "roles": ["owner"]}), "roles[0]"),
        (
            json!({"displayName": "ci", "roles": ["editor:projects/../x"]}),
            "roles[0]",
        ),
        (
            json!({"displayName": "ci", "roles": ["viewer"], "scopes": ["switchyard:key-sync"]}),
            "scopes[0]",
        ),
        (
            json!({"displayName": "ci", "roles": ["viewer"], "scopes": ["'; DROP TABLE api_keys; --"]}),
            "scopes[0]",
        ),
        (
            json!({"displayName": "ci", "roles": ["viewer"], "expireTime": "2001-01-01T00:00:00Z"}),
            "expire_time",
        ),
    ];
    for (body, field) in cases {
        let refused = call(&service, "POST", "/v1/apiKeys", &service.keys.admin, body).await;
        assert_eq!(refused.status, 400, "{}", refused.text());
        let fields = refused.json()["details"][0]["fieldViolations"].to_string();
        assert!(fields.contains(&format!("\"{field}\"")), "{field} not named: {fields}");
    }
    for body in [
        "{not json",
        r#"{"displayName": "ci", "roles": ["viewer"], "owner": "me"}"#,
        r#"{"roles": "viewer"}"#,
    ] {
        let auth = format!("Bearer {}", service.keys.admin);
        let refused = testing::http("POST", &service.http("/v1/apiKeys"), &[("authorization", &auth)], body).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.text());
    }
    let listed = call(
        &service,
        "GET",
        "/v1/apiKeys?showInactive=true",
        &service.keys.admin,
        Value::Null,
    )
    .await;
    assert_eq!(listed.json()["apiKeys"], json!([]), "{}", listed.text());
    let unknown = call(
        &service,
        "POST",
        "/v1/apiKeys/nope:revoke",
        &service.keys.admin,
        json!({}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
}

#[tokio::test]
async fn an_expired_key_is_refused_as_expired() {
    let service = support::sqlite().await;
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let body = json!({"displayName": "short", "roles": ["viewer"], "expireTime": soon.to_rfc3339()});
    let (_, secret) = create(&service, body).await;
    let mut refusal = String::new();
    eventually(async || {
        let answer = call(&service, "GET", "/v1/projects", &secret, Value::Null).await;
        refusal = answer.text();
        answer.status == 401
    })
    .await;
    assert!(refusal.contains("expired"), "{refusal}");
}

#[tokio::test]
async fn keys_list_in_pages_with_tokens_only_the_list_issues() {
    let service = support::sqlite().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(
            create(&service, json!({"displayName": name, "roles": ["viewer"]}))
                .await
                .0,
        );
    }
    let admin = &service.keys.admin;
    let first = call(&service, "GET", "/v1/apiKeys?pageSize=2", admin, Value::Null)
        .await
        .json();
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    let second = call(
        &service,
        "GET",
        &format!("/v1/apiKeys?pageSize=2&pageToken={token}"),
        admin,
        Value::Null,
    )
    .await;
    let second = second.json();
    let seen: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|page| page["apiKeys"].as_array().unwrap())
        .map(|key| key["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(second["nextPageToken"], "");
    for query in ["pageToken=-1", "pageToken=42", "pageSize=-1"] {
        let refused = call(&service, "GET", &format!("/v1/apiKeys?{query}"), admin, Value::Null).await;
        assert_eq!(refused.status, 400, "{query}: {}", refused.text());
    }
}

#[tokio::test]
async fn every_change_is_in_the_audit_trail() {
    let service = support::sqlite().await;
    let (id, _) = create(&service, json!({"displayName": "ci", "roles": ["viewer"]})).await;
    let path = format!("/v1/apiKeys/{id}:revoke");
    call(&service, "POST", &path, &service.keys.admin, json!({})).await;
    let records = call(
        &service,
        "GET",
        "/v1/audit/records?resource=apiKeys/",
        &service.keys.admin,
        Value::Null,
    )
    .await;
    let records = records.json();
    let actions: Vec<&str> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["apiKey.revoke", "apiKey.create"], "{records}");
}

#[tokio::test]
async fn only_a_service_credential_may_follow_every_tenants_keys() {
    let service = support::sqlite().await;
    let mut client = ApiKeyServiceClient::new(testing::grpc_channel(&service.running));
    let refused = client
        .watch_api_keys(support::authed(&service.keys.admin, WatchApiKeysRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}

#[tokio::test]
async fn an_admin_makes_an_environments_flags_public_and_every_follower_learns_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = support::settings_with_keys(dir.path());
    let sync = switchyard_platform::auth::generate_api_key("ops", &[]).plaintext;
    settings.auth.key_sync_credential = Some(sync.clone());
    let service = support::start_with(settings, keys, dir).await;
    support::shop(&service).await;
    let mut client = ApiKeyServiceClient::new(testing::grpc_channel(&service.running));
    let mut sets = client
        .watch_api_keys(support::authed(&sync, WatchApiKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = sets.message().await.unwrap().unwrap();
    assert!(
        first.public_environments.is_empty(),
        "keys are required by default: {first:?}"
    );

    let path = "/v1/projects/shop/environments/dev";
    let read = call(&service, "GET", path, &service.keys.viewer, Value::Null)
        .await
        .json();
    assert_eq!(read["publicEvaluation"], false);
    let body = json!({"publicEvaluation": true, "updateMask": "publicEvaluation", "etag": read["etag"]});
    let refused = call(&service, "PATCH", path, &service.keys.publisher, body.clone()).await;
    assert_eq!(
        refused.status,
        403,
        "only an admin opens an environment: {}",
        refused.text()
    );
    let bad_mask = json!({"publicEvaluation": true, "updateMask": "position", "etag": read["etag"]});
    let refused = call(&service, "PATCH", path, &service.keys.admin, bad_mask).await;
    assert_eq!(refused.status, 400, "{}", refused.text());

    let opened = call(&service, "PATCH", path, &service.keys.admin, body).await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    assert_eq!(opened.json()["publicEvaluation"], true);
    assert_eq!(
        opened.json()["variables"],
        read["variables"],
        "variables are not in the mask"
    );
    let next = sets.message().await.unwrap().unwrap();
    assert_eq!(next.public_environments, ["acme/projects/shop/environments/dev"]);
}
