//! Requests a careless or hostile caller sends over HTTP: credentials are checked before a
//! body is read, over-long text is refused (never silently cut), etags and page tokens that
//! were not issued here are named as such, and none of it changes anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use switchyard_platform::testing::{self, HttpResponse};

async fn call(service: &support::Service, method: &str, path: &str, key: Option<&str>, body: &str) -> HttpResponse {
    testing::http_as(method, &service.http(path), key, &[], body.to_owned()).await
}

fn fields(answer: &HttpResponse) -> String {
    answer.json()["details"][0]["fieldViolations"].to_string()
}

#[tokio::test]
async fn an_unauthenticated_write_is_refused_before_its_body_is_read() {
    let service = support::sqlite().await;
    for key in [None, Some("sy_00_forged"), Some("not-a-jwt")] {
        let refused = call(&service, "POST", "/v1/projects?projectId=shop", key, "{not json").await;
        assert_eq!(refused.status, 401, "{}", refused.text());
    }
    let admin = Some(service.keys.admin.as_str());
    let parsed = call(&service, "POST", "/v1/projects?projectId=shop", admin, "{not json").await;
    assert_eq!(parsed.status, 400, "with credentials the body is what is wrong");
    let public = call(&service, "GET", "/v1/config/info", Some("sy_00_forged"), "").await;
    assert_eq!(public.status, 200, "a public route ignores bad credentials");
}

#[tokio::test]
async fn over_long_text_is_refused_not_cut() {
    let service = support::sqlite().await;
    let admin = Some(service.keys.admin.as_str());
    let long = json!({"displayName": "x".repeat(3_000_000)}).to_string();
    let refused = call(&service, "POST", "/v1/projects?projectId=shop", admin, &long).await;
    assert_eq!(
        refused.status,
        400,
        "{}",
        &refused.text()[..200.min(refused.text().len())]
    );
    assert!(fields(&refused).contains("display_name"), "{}", fields(&refused));
    let missing = call(&service, "GET", "/v1/projects/shop", admin, "").await;
    assert_eq!(missing.status, 404, "nothing was created");

    support::shop(&service).await;
    support::create_yaml(&service, "app", "name: app\n", "").await;
    let publisher = Some(service.keys.publisher.as_str());
    let message = json!({"environment": "dev", "message": "m".repeat(2_001)}).to_string();
    let path = "/v1/projects/shop/configs/app:publish";
    let refused = call(&service, "POST", path, publisher, &message).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(fields(&refused).contains("\"message\""), "{}", fields(&refused));
}

#[tokio::test]
async fn an_etag_that_was_not_issued_is_named_as_such() {
    let service = support::sqlite().await;
    support::shop(&service).await;
    let admin = Some(service.keys.admin.as_str());
    let path = "/v1/projects/shop/environments/dev";
    for (etag, said) in [("abc", "not an etag this service issued"), ("", "required")] {
        let body = json!({"variables": {"region": "x"}, "etag": etag}).to_string();
        let refused = call(&service, "PATCH", path, admin, &body).await;
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert!(refused.text().contains(said), "{etag:?}: {}", refused.text());
    }
}

#[tokio::test]
async fn lists_take_only_the_page_tokens_they_issued() {
    let service = support::sqlite().await;
    let admin = Some(service.keys.admin.as_str());
    for project in ["a", "b", "c"] {
        let path = format!("/v1/projects?projectId={project}");
        assert_eq!(call(&service, "POST", &path, admin, "{}").await.status, 200);
    }
    let first = call(&service, "GET", "/v1/projects?pageSize=2", admin, "").await.json();
    let token = first["nextPageToken"].as_str().unwrap();
    assert!(!token.contains('b'), "the token is opaque: {token}");
    let second = call(
        &service,
        "GET",
        &format!("/v1/projects?pageSize=2&pageToken={token}"),
        admin,
        "",
    )
    .await;
    assert_eq!(second.json()["projects"][0]["name"], "projects/c", "{}", second.text());
    let paths = [
        "/v1/projects?pageToken=-1",
        "/v1/projects?pageToken=b",
        "/v1/projects?pageSize=-1",
        "/v1/audit/records?pageToken=-1",
        "/v1/audit/records?pageSize=-5",
    ];
    for path in paths {
        let refused = call(&service, "GET", path, admin, "").await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.text());
        let named = fields(&refused);
        assert!(named.contains("page_token") || named.contains("page_size"), "{named}");
    }
    let listed: Value = call(&service, "GET", "/v1/projects", admin, "").await.json();
    assert_eq!(listed["projects"].as_array().unwrap().len(), 3);
}
