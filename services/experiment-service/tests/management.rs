//! Metrics and experiments through the HTTP API as a user drives them: define metrics, draft
//! an experiment, start, change weights (a new phase), stop with a decision, archive; every
//! step versioned; wrong input, wrong roles, stale etags and other tenants refused without
//! changing anything. Each test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, Service, service, violations};

const METRICS: &str = "/v1/projects/shop/metrics";
const EXPERIMENTS: &str = "/v1/projects/shop/experiments";

async fn define_metrics(service: &Service) {
    let key = &service.keys.editor;
    for (id, metric) in [
        (
            "purchase",
            json!({"type": "METRIC_TYPE_BINOMIAL", "event": "purchase", "windowHours": 72}),
        ),
        (
            "revenue",
            json!({"type": "METRIC_TYPE_MEAN", "event": "purchase", "capping": {"type": "CAPPING_TYPE_PERCENTILE", "value": 0.99}, "cuped": {"enabled": true}}),
        ),
        ("orders", json!({"type": "METRIC_TYPE_MEAN", "event": "order"})),
        ("sessions", json!({"type": "METRIC_TYPE_MEAN", "event": "session"})),
        (
            "orders-per-session",
            json!({"type": "METRIC_TYPE_RATIO", "numerator": "orders", "denominator": "sessions"}),
        ),
        (
            "errors",
            json!({"type": "METRIC_TYPE_MEAN", "event": "error", "inverse": true}),
        ),
    ] {
        let body = json!({"metricId": id, "metric": metric}).to_string();
        let (status, created) = service.call(key, "POST", METRICS, &body).await;
        assert_eq!(status, 200, "{id}: {created}");
    }
}

fn experiment_body() -> Value {
    json!({
        "experimentId": "green-button",
        "experiment": {
            "displayName": "Green checkout button",
            "hypothesis": "A green button converts better",
            "owner": "growth",
            "flag": "checkout-button",
            "environments": ["prod"],
            "arms": [{"variant": "blue", "weight": 1}, {"variant": "green", "weight": 1}],
            "coverage": 0.5,
            "targeting": {"==": [{"var": "country"}, "BD"]},
            "primaryMetrics": ["purchase"],
            "secondaryMetrics": ["revenue", "orders-per-session"],
            "guardrailMetrics": ["errors"],
            "analysis": {"sequential": true}
        }
    })
}

async fn metrics_are_defined_read_and_listed(backend: Backend) {
    let service = service(backend).await;
    define_metrics(&service).await;
    let (status, metric) = service
        .call(&service.keys.viewer, "GET", "/v1/projects/shop/metrics/revenue", "")
        .await;
    assert_eq!(status, 200);
    assert_eq!(metric["type"], "METRIC_TYPE_MEAN");
    assert_eq!(metric["cuped"]["lookbackDays"], 14, "the default lookback");
    assert_eq!(metric["capping"]["value"], 0.99);
    assert_eq!(metric["etag"], "1");

    let (_, first) = service
        .call(&service.keys.viewer, "GET", &format!("{METRICS}?pageSize=4"), "")
        .await;
    let keys: Vec<&str> = first["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "projects/shop/metrics/errors",
            "projects/shop/metrics/orders",
            "projects/shop/metrics/orders-per-session",
            "projects/shop/metrics/purchase"
        ]
    );
    let token = first["nextPageToken"].as_str().unwrap();
    let (_, second) = service
        .call(
            &service.keys.viewer,
            "GET",
            &format!("{METRICS}?pageSize=4&pageToken={token}"),
            "",
        )
        .await;
    assert_eq!(second["metrics"].as_array().unwrap().len(), 2);
    assert_eq!(second["nextPageToken"], "");

    // Update with the etag read; a second write with the same etag is stale.
    let body = json!({"metric": {"name": "projects/shop/metrics/orders", "type": "METRIC_TYPE_MEAN", "event": "order", "windowHours": 24}, "etag": "1"}).to_string();
    let (status, updated) = service
        .call(&service.keys.editor, "PUT", "/v1/projects/shop/metrics/orders", &body)
        .await;
    assert_eq!(
        (status, updated["version"].as_str()),
        (200, Some("2")),
        "int64 is a JSON string: {updated}"
    );
    let (status, _) = service
        .call(&service.keys.editor, "PUT", "/v1/projects/shop/metrics/orders", &body)
        .await;
    assert_eq!(status, 409);
    service.stop().await;
}

async fn bad_metrics_are_refused_with_their_fields(backend: Backend) {
    let service = service(backend).await;
    define_metrics(&service).await;
    let key = &service.keys.editor;
    for (metric, field) in [
        (json!({"type": "METRIC_TYPE_BINOMIAL"}), "metric.event"),
        (json!({"event": "x"}), "metric.type"),
        (json!({"type": 99, "event": "x"}), "metric.type"),
        (
            json!({"type": "METRIC_TYPE_RATIO", "numerator": "orders", "denominator": "nope"}),
            "metric.denominator",
        ),
        (
            json!({"type": "METRIC_TYPE_RATIO", "numerator": "orders-per-session", "denominator": "orders"}),
            "metric.numerator",
        ),
        (
            json!({"type": "METRIC_TYPE_MEAN", "event": "x", "capping": {"type": "CAPPING_TYPE_PERCENTILE", "value": 1.5}}),
            "metric.capping.value",
        ),
        (
            json!({"type": "METRIC_TYPE_MEAN", "event": "x", "cuped": {"enabled": true, "lookbackDays": 400}}),
            "metric.cuped.lookback_days",
        ),
    ] {
        let body = json!({"metricId": "bad", "metric": metric}).to_string();
        let (status, error) = service.call(key, "POST", METRICS, &body).await;
        assert_eq!(status, 400, "{metric}: {error}");
        let fields: Vec<String> = violations(&error).into_iter().map(|(field, _)| field).collect();
        assert!(fields.iter().any(|f| f == field), "{metric}: {fields:?}");
    }
    for (body, expected) in [
        (
            "{\"metricId\": \"x\", \"metric\": {\"type\": \"METRIC_TYPE_MEAN\", \"event\": \"x\"",
            400,
        ),
        (
            r#"{"metricId": "x", "metric": {"type": "METRIC_TYPE_MEAN", "event": "x", "colour": 1}}"#,
            400,
        ),
        (
            r#"{"metricId": "x'; DROP TABLE metrics;--", "metric": {"type": "METRIC_TYPE_MEAN", "event": "x"}}"#,
            400,
        ),
        (
            r#"{"metricId": "orders", "metric": {"type": "METRIC_TYPE_MEAN", "event": "x"}}"#,
            409,
        ),
    ] {
        let (status, _) = service.call(key, "POST", METRICS, body).await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, _) = service
        .call(
            &service.keys.viewer,
            "POST",
            METRICS,
            r#"{"metricId": "v", "metric": {"type": "METRIC_TYPE_MEAN", "event": "x"}}"#,
        )
        .await;
    assert_eq!(status, 403, "viewers do not define metrics");
    let (_, list) = service.call(key, "GET", METRICS, "").await;
    assert_eq!(list["metrics"].as_array().unwrap().len(), 6, "nothing was written");
    service.stop().await;
}

async fn an_experiment_lives_its_whole_life(backend: Backend) {
    let service = service(backend).await;
    define_metrics(&service).await;
    service.create_flag("checkout-button", &["blue", "green"]).await;
    let keys = &service.keys;
    let (status, draft) = service
        .call(&keys.editor, "POST", EXPERIMENTS, &experiment_body().to_string())
        .await;
    assert_eq!(status, 200, "{draft}");
    assert_eq!(draft["state"], "EXPERIMENT_STATE_DRAFT");
    assert_eq!(draft["seed"], "green-button", "the key seeds the hash by default");
    assert_eq!(draft["bucketingAttribute"], "targetingKey");
    assert_eq!(draft["analysis"]["alpha"], 0.05);
    assert_eq!(draft["analysis"]["sequentialTuning"], 5000.0);
    let path = "/v1/projects/shop/experiments/green-button";

    let (status, _) = service.call(&keys.editor, "POST", &format!("{path}:start"), "{}").await;
    assert_eq!(status, 403, "starting serves users: publisher");
    let (status, running) = service
        .call(
            &keys.publisher,
            "POST",
            &format!("{path}:start"),
            r#"{"message": "go"}"#,
        )
        .await;
    assert_eq!(status, 200, "{running}");
    assert_eq!(running["state"], "EXPERIMENT_STATE_RUNNING");
    assert_eq!(running["phases"].as_array().unwrap().len(), 1);

    // More coverage: same phase. New weights: a new, sticky phase.
    let mut wider = running.clone();
    wider["coverage"] = json!(0.8);
    let body = json!({"experiment": wider, "message": "ramp"}).to_string();
    let (status, wider) = service.call(&keys.editor, "PUT", path, &body).await;
    assert_eq!(status, 200, "{wider}");
    assert_eq!(wider["phases"].as_array().unwrap().len(), 1);
    assert_eq!(wider["phases"][0]["coverage"], 0.8);
    let mut reweighted = wider.clone();
    reweighted["arms"][1]["weight"] = json!(3);
    let body = json!({"experiment": reweighted, "message": "more green"}).to_string();
    let (status, reweighted) = service.call(&keys.editor, "PUT", path, &body).await;
    assert_eq!(status, 200, "{reweighted}");
    let phases = reweighted["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert!(phases[0]["endTime"].is_string());
    assert_eq!(phases[1]["reassigned"], false);

    // What decides a unit's arm is frozen now.
    let mut reseeded = reweighted.clone();
    reseeded["seed"] = json!("other");
    let (status, error) = service
        .call(&keys.editor, "PUT", path, &json!({"experiment": reseeded}).to_string())
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], 9, "FAILED_PRECONDITION");

    let (status, error) = service
        .call(
            &keys.publisher,
            "POST",
            &format!("{path}:stop"),
            r#"{"decision": {"type": "DECISION_TYPE_SHIP", "variant": "red"}}"#,
        )
        .await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(9)), "{error}");
    let (status, _) = service
        .call(&keys.publisher, "POST", &format!("{path}:stop"), "{}")
        .await;
    assert_eq!(status, 400, "a stop says what was decided");
    let (status, stopped) = service
        .call(
            &keys.publisher,
            "POST",
            &format!("{path}:stop"),
            r#"{"decision": {"type": "DECISION_TYPE_SHIP", "variant": "green", "reason": "won"}}"#,
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "EXPERIMENT_STATE_STOPPED");
    assert_eq!(stopped["decision"]["variant"], "green");
    assert!(
        stopped["decision"]["actor"].as_str().unwrap().starts_with("apikey:"),
        "{}",
        stopped["decision"]
    );

    let (status, archived) = service
        .call(&keys.editor, "POST", &format!("{path}:archive"), "{}")
        .await;
    assert_eq!(
        (status, archived["state"].as_str()),
        (200, Some("EXPERIMENT_STATE_ARCHIVED"))
    );
    let (status, _) = service
        .call(
            &keys.editor,
            "PUT",
            path,
            &json!({"experiment": reweighted}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "archived experiments are read-only");

    let (_, history) = service.call(&keys.viewer, "GET", &format!("{path}/versions"), "").await;
    let actions: Vec<&str> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["archive", "stop", "update", "update", "start", "create"]);
    assert_eq!(history["versions"][2]["message"], "more green");

    let (_, stopped_list) = service
        .call(
            &keys.viewer,
            "GET",
            &format!("{EXPERIMENTS}?state=EXPERIMENT_STATE_ARCHIVED"),
            "",
        )
        .await;
    assert_eq!(stopped_list["experiments"].as_array().unwrap().len(), 1);
    let (_, running_list) = service
        .call(
            &keys.viewer,
            "GET",
            &format!("{EXPERIMENTS}?state=EXPERIMENT_STATE_RUNNING"),
            "",
        )
        .await;
    assert_eq!(running_list["experiments"].as_array().map(Vec::len), Some(0));
    service.stop().await;
}

async fn bad_experiments_are_refused_and_change_nothing(backend: Backend) {
    let service = service(backend).await;
    define_metrics(&service).await;
    let key = &service.keys.editor;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("arms", json!([{"variant": "blue", "weight": 1}]), "experiment.arms"),
        (
            "arms",
            json!([{"variant": "blue", "weight": 1}, {"variant": "blue", "weight": 1}]),
            "experiment.arms[1].variant",
        ),
        (
            "arms",
            json!([{"variant": "blue", "weight": 1}, {"variant": "green", "weight": -1}]),
            "experiment.arms[1].weight",
        ),
        ("coverage", json!(1.5), "experiment.coverage"),
        ("environments", json!([]), "experiment.environments"),
        ("flag", json!("no spaces allowed"), "experiment.flag"),
        ("primaryMetrics", json!(["nope"]), "experiment.metrics"),
        ("segment", json!("vip"), "experiment.segment"),
        ("analysis", json!({"alpha": 0.9}), "experiment.analysis.alpha"),
        (
            "analysis",
            json!({"engine": "STATS_ENGINE_BAYESIAN", "sequential": true}),
            "experiment.analysis.sequential",
        ),
    ];
    for (field, value, violation) in cases {
        let mut body = experiment_body();
        body["experiment"][field] = value.clone();
        let (status, error) = service.call(key, "POST", EXPERIMENTS, &body.to_string()).await;
        assert_eq!(status, 400, "{field}={value}: {error}");
        let fields: Vec<String> = violations(&error).into_iter().map(|(field, _)| field).collect();
        assert!(fields.iter().any(|f| f == violation), "{field}={value}: {fields:?}");
    }
    let mut wrong_type = experiment_body();
    wrong_type["experiment"]["coverage"] = json!("half");
    let (status, _) = service.call(key, "POST", EXPERIMENTS, &wrong_type.to_string()).await;
    assert_eq!(status, 400);
    let (status, error) = service.call(key, "GET", "/v1/projects/shop/experiments/nope", "").await;
    assert_eq!(status, 404, "{error}");
    let (_, list) = service.call(key, "GET", EXPERIMENTS, "").await;
    assert_eq!(
        list["experiments"].as_array().map(Vec::len),
        Some(0),
        "nothing was written"
    );

    // Two editors who read the same version: the second write is stale.
    let (_, draft) = service
        .call(key, "POST", EXPERIMENTS, &experiment_body().to_string())
        .await;
    let path = "/v1/projects/shop/experiments/green-button";
    let mut first = draft.clone();
    first["hypothesis"] = json!("first");
    let mut second = draft.clone();
    second["hypothesis"] = json!("second");
    let (status, _) = service
        .call(key, "PUT", path, &json!({"experiment": first}).to_string())
        .await;
    assert_eq!(status, 200);
    let (status, _) = service
        .call(key, "PUT", path, &json!({"experiment": second}).to_string())
        .await;
    assert_eq!(status, 409, "the etag in the body was read before the first write");
    let (_, current) = service.call(key, "GET", path, "").await;
    assert_eq!(current["hypothesis"], "first");
    service.stop().await;
}

async fn tenants_see_only_their_own(backend: Backend) {
    let service = service(backend).await;
    define_metrics(&service).await;
    let (status, _) = service
        .call(
            &service.keys.editor,
            "POST",
            EXPERIMENTS,
            &experiment_body().to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let other = &service.keys.other_tenant;
    let (status, _) = service
        .call(other, "GET", "/v1/projects/shop/experiments/green-button", "")
        .await;
    assert_eq!(status, 404);
    let (_, list) = service.call(other, "GET", EXPERIMENTS, "").await;
    assert_eq!(list["experiments"].as_array().map(Vec::len), Some(0));
    let (status, _) = service
        .call(other, "POST", "/v1/projects/shop/experiments/green-button:start", "{}")
        .await;
    assert_eq!(status, 404);
    // The other tenant's metric namespace is its own: the same keys are free there.
    let (status, error) = service
        .call(other, "POST", EXPERIMENTS, &experiment_body().to_string())
        .await;
    assert_eq!(status, 400, "its project has no metric `purchase`: {error}");
    let (status, _) = service.call("sy_nope_nope", "GET", EXPERIMENTS, "").await;
    assert_eq!(status, 401);
    service.stop().await;
}

on_both_backends!(
    metrics_are_defined_read_and_listed,
    bad_metrics_are_refused_with_their_fields,
    an_experiment_lives_its_whole_life,
    bad_experiments_are_refused_and_change_nothing,
    tenants_see_only_their_own,
);
