//! Rules are programs their authors hand us: one whose worst case is hours of CPU is refused
//! with a violation naming it, when it is saved and when it would run, and the process keeps
//! answering meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_platform::testing;

const TRIPLE: &str = "config.xs.all(a, config.xs.all(b, config.xs.all(c, a + b + c >= 0)))";

fn numbers(count: usize) -> String {
    json!({"xs": (0..count).collect::<Vec<_>>()}).to_string()
}

async fn post(service: &support::Service, path: &str, body: Value) -> testing::HttpResponse {
    let auth = format!("Bearer {}", service.keys.admin);
    let url = service.http(path);
    let headers = [("authorization", auth.as_str())];
    let call = testing::http("POST", &url, &headers, body.to_string());
    // Refused at once; the bound only turns a regression into a failure instead of a hang.
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered, not left running")
}

fn violations(response: &testing::HttpResponse) -> Vec<(String, String)> {
    let body = response.json();
    let listed = body["violations"]
        .as_array()
        .or_else(|| body["details"][0]["fieldViolations"].as_array())
        .cloned()
        .unwrap_or_default();
    listed
        .iter()
        .map(|violation| {
            let path = violation["path"].as_str().or(violation["field"].as_str()).unwrap_or("");
            let message = violation["message"]
                .as_str()
                .or(violation["description"].as_str())
                .unwrap_or("");
            (path.to_owned(), message.to_owned())
        })
        .collect()
}

/// Whether one violation names the triple rule as too expensive, at `path` when one is given.
fn names_the_costly_rule(found: &[(String, String)], path: Option<&str>) -> bool {
    found.iter().any(|(at, message)| {
        path.is_none_or(|path| at == path) && message.contains(TRIPLE) && message.contains("too expensive")
    })
}

#[tokio::test]
async fn a_runaway_rule_is_refused_when_saved_with_the_rule_named() {
    let service = support::sqlite().await;
    support::shop(&service).await;
    let created = post(
        &service,
        "/v1/projects/shop/configs?configId=grid",
        json!({"content": numbers(2_000), "rules": [{"expression": TRIPLE}]}),
    )
    .await;
    assert_eq!(created.status, 400, "{}", created.text());
    let found = violations(&created);
    assert!(names_the_costly_rule(&found, Some("rules[0]")), "{found:?}");
    let missing = testing::http(
        "GET",
        &service.http("/v1/projects/shop/configs/grid"),
        &[("authorization", &format!("Bearer {}", service.keys.admin))],
        "",
    )
    .await;
    assert_eq!(missing.status, 404, "nothing was saved: {}", missing.text());
}

#[tokio::test]
async fn a_rule_too_costly_for_the_document_checked_fails_validation_while_the_process_keeps_answering() {
    let service = support::sqlite().await;
    support::shop(&service).await;
    let created = post(
        &service,
        "/v1/projects/shop/configs?configId=grid",
        json!({"content": numbers(3), "rules": [{"expression": TRIPLE, "message": "sums are positive"}]}),
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "a small document is cheap to check: {}",
        created.text()
    );

    let validating = post(
        &service,
        "/v1/projects/shop/configs/grid:validate",
        json!({"environment": "prod", "content": numbers(2_000)}),
    );
    let info = async {
        let info = testing::get(&service.http("/v1/config/info")).await;
        assert_eq!(info.status, 200);
    };
    let (validated, ()) = tokio::join!(validating, info);
    assert_eq!(validated.status, 200, "{}", validated.text());
    assert_eq!(validated.json()["valid"], json!(false));
    let found = violations(&validated);
    assert!(names_the_costly_rule(&found, None), "{found:?}");

    let small = post(
        &service,
        "/v1/projects/shop/configs/grid:validate",
        json!({"environment": "prod", "content": numbers(20)}),
    )
    .await;
    assert_eq!(small.json()["valid"], json!(true), "{}", small.text());
    service.stop().await;
}

#[tokio::test]
async fn a_schema_pattern_that_backtracks_forever_is_an_error_not_a_hang() {
    let service = support::sqlite().await;
    support::shop(&service).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+(?=b)$"}}});
    let created = post(
        &service,
        "/v1/projects/shop/configs?configId=names",
        json!({"content": json!({"name": "ok"}).to_string(), "schema": schema.to_string()}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    let evil = json!({"name": format!("{}c", "a".repeat(64))}).to_string();
    let validated = post(
        &service,
        "/v1/projects/shop/configs/names:validate",
        json!({"environment": "prod", "content": evil}),
    )
    .await;
    assert_eq!(validated.status, 200, "{}", validated.text());
    assert_eq!(validated.json()["valid"], json!(false), "{}", validated.text());
    service.stop().await;
}
