//! The HTTP/JSON transcoder against the echo test service on real sockets: path
//! templates (nested fields, additional bindings), both body forms, query parameters,
//! error mapping, and the generated OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use switchyard_platform::testing::{get, http};

fn echoed(response: &switchyard_platform::testing::HttpResponse) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    serde_json::from_str(body["requestJson"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn nested_path_fields_and_repeated_nested_query_parameters() {
    let server = support::start().await;
    let url = server.url("/v1/shelves/s%201/items/i1?tags=a&tags=b&filter.kind=book&filter.limit=5&verbose=true");
    let request = echoed(&get(&url).await);
    assert_eq!(request["item"]["shelf"], "s 1");
    assert_eq!(request["item"]["name"], "i1");
    assert_eq!(request["tags"], json!(["a", "b"]));
    assert_eq!(request["filter"], json!({ "kind": "book", "limit": 5 }));
    assert_eq!(request["verbose"], true);
    server.stop().await;
}

#[tokio::test]
async fn additional_bindings_are_served() {
    let server = support::start().await;
    let request = echoed(&get(&server.url("/v1/items/x1")).await);
    assert_eq!(request["item"]["name"], "items/x1");
    server.stop().await;
}

#[tokio::test]
async fn body_field_fills_one_field_and_the_query_the_rest() {
    let server = support::start().await;
    let body = json!({ "name": "n1", "quantity": "3", "labels": ["x"] }).to_string();
    let response = http("POST", &server.url("/v1/shelves/s1/items?requestId=r-9"), &[], body).await;
    let request = echoed(&response);
    assert_eq!(request["shelf"], "s1");
    assert_eq!(request["requestId"], "r-9");
    assert_eq!(
        request["item"],
        json!({ "name": "n1", "quantity": "3", "labels": ["x"] })
    );
    server.stop().await;
}

#[tokio::test]
async fn body_star_fills_every_field_not_in_the_path() {
    let server = support::start().await;
    let body = json!({ "quantity": 7, "labels": ["a", "b"] }).to_string();
    let request = echoed(&http("PATCH", &server.url("/v1/shelves/s1/items/i2"), &[], body).await);
    assert_eq!(request["shelf"], "s1");
    assert_eq!(request["itemName"], "i2");
    assert_eq!(request["quantity"], "7");
    assert_eq!(request["labels"], json!(["a", "b"]));
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_verbs_405() {
    let server = support::start().await;
    let missing = get(&server.url("/v1/nothing/here")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], 5);
    assert!(missing.json()["message"].as_str().unwrap().contains("/v1/nothing/here"));

    let wrong = http("DELETE", &server.url("/v1/shelves/s1/items/i1"), &[], "").await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.headers.get("allow").unwrap().to_str().unwrap().contains("GET"));
    server.stop().await;
}

#[tokio::test]
async fn malformed_input_is_400_with_the_field_named() {
    let server = support::start().await;
    let cases = [
        ("PATCH", "/v1/shelves/s1/items/i1", "{not json", "body"),
        ("PATCH", "/v1/shelves/s1/items/i1", r#"{"quantity": "many"}"#, "body"),
        ("PATCH", "/v1/shelves/s1/items/i1", r#"{"unknownField": 1}"#, "body"),
        ("GET", "/v1/shelves/s1/items/i1?filter.limit=abc", "", "filter.limit"),
        ("GET", "/v1/shelves/s1/items/i1?nope=1", "", "nope"),
        ("GET", "/v1/shelves/s1/items/i1", r#"{"x":1}"#, "body"),
        ("PATCH", "/v1/shelves/s1/items/i1?quantity=3", "{}", "quantity"),
    ];
    for (method, path, body, field) in cases {
        let response = http(method, &server.url(path), &[], body).await;
        assert_eq!(response.status, 400, "{method} {path} {body}: {}", response.text());
        let status = response.json();
        assert_eq!(status["code"], 3);
        assert!(!status["message"].as_str().unwrap().is_empty());
        assert_eq!(
            status["details"][0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(
            status["details"][0]["fieldViolations"][0]["field"], field,
            "{method} {path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (mut settings, dir) = support::settings();
    settings.limits.max_request_bytes = 1024;
    let server = support::start_with(settings, dir).await;
    let labels: Vec<String> = (0..200).map(|i| format!("label-{i}")).collect();
    let body = json!({ "labels": labels }).to_string();
    let response = http("PATCH", &server.url("/v1/shelves/s1/items/i1"), &[], body).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["code"], 8);
    server.stop().await;
}

#[tokio::test]
async fn grpc_codes_map_to_http_statuses() {
    let server = support::start().await;
    let cases = [
        (3, 400),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (12, 501),
        (13, 500),
        (14, 503),
        (16, 401),
        (4, 504),
    ];
    for (code, expected) in cases {
        let body = json!({ "message": "boom" }).to_string();
        let response = http("POST", &server.url(&format!("/v1/fail/{code}")), &[], body).await;
        assert_eq!(response.status, expected, "gRPC code {code}");
        assert_eq!(response.json()["code"], code);
        assert_eq!(response.json()["message"], "boom");
    }
    server.stop().await;
}

#[tokio::test]
async fn openapi_lists_every_annotated_route() {
    let server = support::start().await;
    let document = get(&server.url("/openapi.json")).await.json();
    assert_eq!(document["openapi"], "3.0.3");
    let paths = &document["paths"];
    assert!(paths["/v1/shelves/{item_shelf}/items/{item_name}"]["get"].is_object());
    assert_eq!(
        paths["/v1/items/{item}"]["get"]["operationId"], "TranscodeTest_GetItem1",
        "the additional binding"
    );
    assert!(paths["/v1/shelves/{shelf}/items"]["post"]["requestBody"].is_object());
    assert!(paths["/v1/shelves/{shelf}/items/{item_name}"]["patch"]["requestBody"].is_object());
    assert!(paths["/v1/fail/{code}"]["post"].is_object());
    assert!(paths["/v1/shelves/{shelf}"]["get"].is_object());
    let query: Vec<&str> = paths["/v1/shelves/{item_shelf}/items/{item_name}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(query.contains(&"filter.limit") && query.contains(&"tags"), "{query:?}");
    assert!(document["components"]["schemas"]["switchyard.testing.v1.Echo"].is_object());
    server.stop().await;
}

#[tokio::test]
async fn trace_context_reaches_the_handler() {
    let server = support::start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = http("GET", &server.url("/v1/items/t"), &[("traceparent", traceparent)], "").await;
    assert_eq!(response.status, 200);
    let seen = response.json()["traceparent"].as_str().unwrap().to_owned();
    assert!(seen.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{seen}");
    server.stop().await;
}
