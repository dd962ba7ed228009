//! Authentication through the real ports: JWT (HS256 and RS256) and API keys resolve to a
//! principal; bad credentials are UNAUTHENTICATED; good credentials of another tenant are
//! PERMISSION_DENIED — over gRPC and over transcoded HTTP alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use switchyard_api::testing::v1::{GetShelfRequest, transcode_test_client::TranscodeTestClient};
use switchyard_platform::testing::http;
use tonic::{Code, metadata::MetadataValue};

async fn grpc_call(server: &support::Server, authorization: Option<&str>) -> Result<String, Code> {
    let mut client = TranscodeTestClient::connect(server.grpc.clone()).await.unwrap();
    let mut request = tonic::Request::new(GetShelfRequest { shelf: "s1".into() });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    client
        .get_shelf(request)
        .await
        .map(|response| response.into_inner().tenant)
        .map_err(|status| status.code())
}

async fn http_status(server: &support::Server, authorization: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    http("GET", &server.url("/v1/shelves/s1"), &headers, "").await.status
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated() {
    let server = support::start().await;
    let expired = format!("Bearer {}", support::hs256_token("acme", &["viewer"], -3600));
    let wrongly_signed = format!(
        "Bearer {}",
        support::rs256_token(support::OTHER_PRIVATE, "acme", &["viewer"])
    );
    let cases = [
        None,
        Some("Bearer not.a.jwt"),
        Some("Basic dXNlcjpwYXNz"),
        Some(expired.as_str()),
        Some(wrongly_signed.as_str()),
        Some("Bearer sy_unknown_0000"),
    ];
    for authorization in cases {
        assert_eq!(
            grpc_call(&server, authorization).await,
            Err(Code::Unauthenticated),
            "{authorization:?}"
        );
        assert_eq!(http_status(&server, authorization).await, 401, "{authorization:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn valid_principal_of_another_tenant_is_permission_denied() {
    let server = support::start().await;
    let globex = format!("Bearer {}", support::hs256_token("globex", &["admin"], 600));
    assert_eq!(grpc_call(&server, Some(&globex)).await, Err(Code::PermissionDenied));
    assert_eq!(http_status(&server, Some(&globex)).await, 403);

    let scoped_elsewhere = format!("Bearer {}", support::hs256_token("acme", &["admin:shelves/other"], 600));
    assert_eq!(
        grpc_call(&server, Some(&scoped_elsewhere)).await,
        Err(Code::PermissionDenied)
    );
    server.stop().await;
}

#[tokio::test]
async fn hs256_and_rs256_tokens_resolve_to_the_tenant() {
    let server = support::start().await;
    let hs = format!("Bearer {}", support::hs256_token("acme", &["viewer"], 600));
    let rs = format!(
        "Bearer {}",
        support::rs256_token(support::RS256_PRIVATE, "acme", &["viewer:shelves/s1"])
    );
    assert_eq!(grpc_call(&server, Some(&hs)).await, Ok("acme".to_owned()));
    assert_eq!(grpc_call(&server, Some(&rs)).await, Ok("acme".to_owned()));
    assert_eq!(http_status(&server, Some(&rs)).await, 200);
    server.stop().await;
}

#[tokio::test]
async fn api_key_round_trip() {
    let (mut settings, dir) = support::settings();
    let key = support::api_key(&mut settings, "acme", &["viewer"]);
    assert!(
        !settings.auth.api_keys[0].sha256.contains(&key),
        "only the hash is stored"
    );
    let server = support::start_with(settings, dir).await;
    let bearer = format!("Bearer {key}");
    assert_eq!(grpc_call(&server, Some(&bearer)).await, Ok("acme".to_owned()));
    let response = http("GET", &server.url("/v1/shelves/s1"), &[("authorization", &bearer)], "").await;
    assert_eq!(response.status, 200);
    assert!(response.json()["subject"].as_str().unwrap().starts_with("apikey:"));

    let tampered = format!("Bearer {}x", key);
    assert_eq!(grpc_call(&server, Some(&tampered)).await, Err(Code::Unauthenticated));
    server.stop().await;
}

#[tokio::test]
async fn per_principal_rate_limit_answers_resource_exhausted() {
    let (mut settings, dir) = support::settings();
    settings.limits.per_principal_rps = 1;
    let server = support::start_with(settings, dir).await;
    let token = format!("Bearer {}", support::hs256_token("acme", &["viewer"], 600));
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(grpc_call(&server, Some(&token)).await.err());
    }
    assert_eq!(codes[0], None);
    assert!(codes.contains(&Some(Code::ResourceExhausted)), "{codes:?}");
    assert_eq!(http_status(&server, Some(&token)).await, 429);
    server.stop().await;
}
