//! OFREP on the HTTP port and the native Evaluate API over HTTP/JSON: answers, errors, ETags,
//! and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{boolean_flag, start, testkit};
use switchyard_platform::testing::http;

#[tokio::test]
async fn single_flag_answers_follow_ofrep() {
    let service = start(&[testkit()]).await;
    let url = service.http("/ofrep/v1/evaluate/flags/some-email-targeted-flag");
    let hit = http(
        "POST",
        &url,
        &[],
        json!({"context": {"targetingKey": "u1", "email": "ballmer@macrosoft.com"}}).to_string(),
    )
    .await;
    assert_eq!(hit.status, 200);
    assert_eq!(
        hit.json(),
        json!({"key": "some-email-targeted-flag", "value": "hi", "variant": "hi", "reason": "TARGETING_MATCH", "metadata": {}})
    );

    let code_default = http(
        "POST",
        &service.http("/ofrep/v1/evaluate/flags/null-default-flag"),
        &[],
        "{}",
    )
    .await;
    assert_eq!(
        code_default.json(),
        json!({"key": "null-default-flag", "reason": "DEFAULT", "metadata": {}}),
        "no value: the caller's default applies"
    );

    let missing = http("POST", &service.http("/ofrep/v1/evaluate/flags/nope"), &[], "{}").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(missing.json()["key"], "nope");

    let broken = http(
        "POST",
        &service.http("/ofrep/v1/evaluate/flags/ref-to-nonexistent-evaluator-flag"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (broken.status, broken.json()["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );

    let metadata = http(
        "POST",
        &service.http("/ofrep/v1/evaluate/flags/metadata-flag"),
        &[],
        "{}",
    )
    .await;
    assert_eq!(
        metadata.json()["metadata"],
        json!({"string": "1.0.2", "integer": 2, "boolean": true, "float": 0.1})
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let service = start(&[testkit()]).await;
    let url = service.http("/ofrep/v1/evaluate/flags/boolean-flag");
    let malformed = http("POST", &url, &[], "{\"context\": ").await;
    assert_eq!(
        (malformed.status, malformed.json()["errorCode"].as_str()),
        (400, Some("INVALID_CONTEXT"))
    );
    let not_object = http("POST", &url, &[], "{\"context\": [1, 2]}").await;
    assert_eq!(
        (not_object.status, not_object.json()["errorCode"].as_str()),
        (400, Some("INVALID_CONTEXT"))
    );
    let bad_selector = http("POST", &url, &[("flagd-selector", "team=x")], "{}").await;
    assert_eq!(
        (bad_selector.status, bad_selector.json()["errorCode"].as_str()),
        (400, Some("GENERAL"))
    );
    let huge = format!("{{\"context\": {{\"blob\": \"{}\"}}}}", "x".repeat(8 * 1024 * 1024));
    assert_eq!(http("POST", &url, &[], huge).await.status, 413);
    let injection = http(
        "POST",
        &service.http("/ofrep/v1/evaluate/flags/x'%3B%20DROP%20TABLE%20flags%3B--"),
        &[],
        "{}",
    )
    .await;
    assert_eq!(injection.status, 404);
}

#[tokio::test]
async fn bulk_answers_carry_an_etag_that_holds_until_flags_or_context_change() {
    let service = start(&[
        json!({"flags": {"banner": boolean_flag("on"), "gone": {"state": "DISABLED", "variants": {"a": "a"}}}}),
    ])
    .await;
    let url = service.http("/ofrep/v1/evaluate/flags");
    let body = json!({"context": {"targetingKey": "u1"}}).to_string();
    let first = http("POST", &url, &[], body.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.json(),
        json!({"flags": [
            {"key": "banner", "value": true, "variant": "on", "reason": "STATIC", "metadata": {}},
            {"key": "gone", "reason": "DISABLED", "metadata": {}}
        ], "metadata": {}})
    );
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    let again = http("POST", &url, &[("if-none-match", &etag)], body.clone()).await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    let other_context = http(
        "POST",
        &url,
        &[("if-none-match", &etag)],
        json!({"context": {"targetingKey": "u2"}}).to_string(),
    )
    .await;
    assert_eq!(other_context.status, 200, "the answer depends on the context");

    service.replace_file(0, &json!({"flags": {"banner": boolean_flag("off")}}));
    let mut changed = None;
    for _ in 0..100 {
        let response = http("POST", &url, &[("if-none-match", &etag)], body.clone()).await;
        if response.status == 200 {
            changed = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let changed = changed.expect("a new answer after the file changed");
    assert_ne!(changed.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(changed.json()["flags"][0]["value"], json!(false));
}

#[tokio::test]
async fn native_evaluate_over_http_checks_types_and_input() {
    let service = start(&[testkit()]).await;
    let url = service.http("/v1/flags:evaluate");
    let ok = http(
        "POST",
        &url,
        &[],
        json!({"flag": "integer-flag", "expectedType": "VALUE_TYPE_INTEGER"}).to_string(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        (ok.json()["value"].clone(), ok.json()["reason"].clone()),
        (json!(10), json!("STATIC"))
    );
    let mismatch = http(
        "POST",
        &url,
        &[],
        json!({"flag": "float-flag", "expectedType": "VALUE_TYPE_INTEGER"}).to_string(),
    )
    .await;
    assert_eq!(
        (mismatch.json()["errorCode"].clone(), mismatch.json()["reason"].clone()),
        (json!("TYPE_MISMATCH"), json!("ERROR"))
    );
    assert_eq!(
        http("POST", &url, &[], json!({"flag": ""}).to_string()).await.status,
        400
    );
    assert_eq!(
        http("POST", &url, &[], json!({"flag": "x", "color": "red"}).to_string())
            .await
            .status,
        400,
        "unknown field"
    );
    assert_eq!(
        http("POST", &url, &[], json!({"flag": 7}).to_string()).await.status,
        400,
        "wrong type"
    );

    let all = http(
        "POST",
        &service.http("/v1/flags:evaluateAll"),
        &[],
        json!({"context": {"email": "ballmer@macrosoft.com"}}).to_string(),
    )
    .await;
    let evaluations = all.json()["evaluations"].as_array().cloned().unwrap();
    let keys: Vec<&str> = evaluations
        .iter()
        .filter_map(|evaluation| evaluation["flag"].as_str())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert!(
        evaluations
            .iter()
            .any(|evaluation| evaluation["flag"] == "some-email-targeted-flag" && evaluation["value"] == "hi")
    );
}
