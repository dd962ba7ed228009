//! Exposures and metric events through `LogExposures` / `LogEvents` over HTTP: per-item
//! refusals with reasons, replayed ids counted once (also after a restart: an acknowledged
//! batch is durable), units seen in two arms set apart, and batch limits. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, Service, restart, service};

const EXPOSURES: &str = "/v1/projects/shop/exposures:log";
const EVENTS: &str = "/v1/projects/shop/events:log";
const COUNTS: &str = "/v1/projects/shop/experiments/green-button/exposureCounts";

/// A running experiment `green-button` (blue/green) with a `purchase` metric.
async fn running_experiment(service: &Service) {
    let keys = &service.keys;
    service.create_flag("checkout-button", &["blue", "green"]).await;
    let metric = json!({"metricId": "purchase", "metric": {"type": "METRIC_TYPE_BINOMIAL", "event": "purchase"}});
    let (status, _) = service
        .call(&keys.editor, "POST", "/v1/projects/shop/metrics", &metric.to_string())
        .await;
    assert_eq!(status, 200);
    let experiment = json!({"experimentId": "green-button", "experiment": {
        "flag": "checkout-button", "environments": ["prod"],
        "arms": [{"variant": "blue", "weight": 1}, {"variant": "green", "weight": 1}],
        "primaryMetrics": ["purchase"]}});
    let (status, _) = service
        .call(
            &keys.editor,
            "POST",
            "/v1/projects/shop/experiments",
            &experiment.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = service
        .call(
            &keys.publisher,
            "POST",
            "/v1/projects/shop/experiments/green-button:start",
            "{}",
        )
        .await;
    assert_eq!(status, 200);
}

fn exposure(id: &str, unit: &str, variant: &str) -> Value {
    json!({"id": id, "experiment": "green-button", "unit": unit, "variant": variant, "environment": "prod",
           "attributes": {"country": "BD"}})
}

async fn log(service: &Service, path: &str, field: &str, items: Vec<Value>) -> (u16, Value) {
    let body = json!({ field: items }).to_string();
    service.call(&service.keys.editor, "POST", path, &body).await
}

fn arm_units(counts: &Value) -> Vec<(String, i64)> {
    counts["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arm| {
            (
                arm["variant"].as_str().unwrap().to_owned(),
                arm["units"].as_str().unwrap_or("0").parse().unwrap(),
            )
        })
        .collect()
}

async fn exposures_count_each_unit_once_and_set_apart_units_in_two_arms(backend: Backend) {
    let service = service(backend).await;
    running_experiment(&service).await;
    let batch: Vec<Value> = (0..300)
        .map(|i| {
            exposure(
                &format!("x-{i}"),
                &format!("user-{}", i % 100),
                if i % 100 < 40 { "blue" } else { "green" },
            )
        })
        .collect();
    let (status, outcome) = log(&service, EXPOSURES, "exposures", batch.clone()).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["stored"], 300);
    let (_, counts) = service.call(&service.keys.viewer, "GET", COUNTS, "").await;
    assert_eq!(
        arm_units(&counts),
        [("blue".to_owned(), 40), ("green".to_owned(), 60)],
        "{counts}"
    );

    // The same batch again: every id is a duplicate, nothing moves.
    let (_, replay) = log(&service, EXPOSURES, "exposures", batch).await;
    assert_eq!(
        (replay["stored"].as_i64(), replay["duplicates"].as_i64()),
        (Some(0), Some(300)),
        "{replay}"
    );

    // user-1 (blue) now sees green too: it leaves the counts and is reported apart.
    let (_, outcome) = log(
        &service,
        EXPOSURES,
        "exposures",
        vec![exposure("x-300", "user-1", "green")],
    )
    .await;
    assert_eq!(outcome["stored"], 1);
    let (_, counts) = service.call(&service.keys.viewer, "GET", COUNTS, "").await;
    assert_eq!(arm_units(&counts), [("blue".to_owned(), 39), ("green".to_owned(), 60)]);
    assert_eq!(counts["multipleExposures"], "1");
    service.stop().await;
}

async fn bad_exposures_are_refused_one_by_one(backend: Backend) {
    let service = service(backend).await;
    running_experiment(&service).await;
    let future = "2099-01-01T00:00:00Z";
    let ancient = "2001-01-01T00:00:00Z";
    let mut batch = vec![
        exposure("ok-1", "user-1", "blue"),
        exposure("bad-variant", "user-2", "red"),
        json!({"id": "bad-experiment", "experiment": "nope", "unit": "u", "variant": "blue"}),
        json!({"id": "bad-environment", "experiment": "green-button", "unit": "u", "variant": "blue", "environment": "staging"}),
        json!({"id": "", "experiment": "green-button", "unit": "u", "variant": "blue"}),
        json!({"id": "no-unit", "experiment": "green-button", "unit": "", "variant": "blue"}),
        json!({"id": "future", "experiment": "green-button", "unit": "u", "variant": "blue", "time": future}),
        json!({"id": "ancient", "experiment": "green-button", "unit": "u", "variant": "blue", "time": ancient}),
        json!({"id": "x'; DROP TABLE exposures;--", "experiment": "green-button", "unit": "u\u{0}", "variant": "blue"}),
    ];
    batch.push(exposure("ok-2", "user-3", "green"));
    let (status, outcome) = log(&service, EXPOSURES, "exposures", batch).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["stored"], 2, "{outcome}");
    let rejected = outcome["rejected"].as_array().unwrap();
    let indexes: Vec<i64> = rejected.iter().map(|r| r["index"].as_i64().unwrap_or(0)).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5, 6, 7, 8], "{outcome}");
    let reasons: Vec<&str> = rejected.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(reasons[0].contains("not an arm"), "{reasons:?}");
    assert!(reasons[1].contains("no experiment"), "{reasons:?}");
    assert!(reasons[5].contains("ahead of the server"), "{reasons:?}");
    assert!(reasons[6].contains("in the past"), "{reasons:?}");

    // A draft is not running: its exposures have no phase to belong to.
    let draft = json!({"experimentId": "draft", "experiment": {"flag": "f", "environments": ["prod"],
        "arms": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 1}]}});
    service
        .call(
            &service.keys.editor,
            "POST",
            "/v1/projects/shop/experiments",
            &draft.to_string(),
        )
        .await;
    let (_, outcome) = log(
        &service,
        EXPOSURES,
        "exposures",
        vec![json!({"id": "d", "experiment": "draft", "unit": "u", "variant": "a"})],
    )
    .await;
    assert!(
        outcome["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not running"),
        "{outcome}"
    );

    for (body, expected) in [
        (json!({"exposures": []}).to_string(), 400),
        (
            json!({"exposures": vec![exposure("a", "u", "blue"); 10_001]}).to_string(),
            400,
        ),
        ("{\"exposures\": [".to_owned(), 400),
        (
            json!({"exposures": [{"id": "a", "experiment": "green-button", "unit": 7, "variant": "blue"}]}).to_string(),
            400,
        ),
    ] {
        let (status, _) = service.call(&service.keys.editor, "POST", EXPOSURES, &body).await;
        assert_eq!(status, expected, "{}", &body[..body.len().min(80)]);
    }
    let (status, _) = service
        .call(
            &service.keys.viewer,
            "POST",
            EXPOSURES,
            &json!({"exposures": [exposure("v", "u", "blue")]}).to_string(),
        )
        .await;
    assert_eq!(status, 403, "viewers read, they do not log");
    let (status, _) = service
        .call(
            &service.keys.other_tenant,
            "POST",
            EXPOSURES,
            &json!({"exposures": [exposure("o", "u", "blue")]}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "another tenant may log to its own project named shop");
    let (_, counts) = service.call(&service.keys.viewer, "GET", COUNTS, "").await;
    assert_eq!(
        arm_units(&counts),
        [("blue".to_owned(), 1), ("green".to_owned(), 1)],
        "nothing else was stored"
    );
    service.stop().await;
}

async fn acknowledged_events_survive_a_restart_and_replays_count_once(backend: Backend) {
    let service = service(backend).await;
    running_experiment(&service).await;
    let events: Vec<Value> = (0..500)
        .map(|i| json!({"id": format!("e-{i}"), "name": "purchase", "unit": format!("user-{i}"), "value": 12.5}))
        .collect();
    let (status, outcome) = log(&service, EVENTS, "events", events.clone()).await;
    assert_eq!((status, outcome["stored"].as_i64()), (200, Some(500)), "{outcome}");

    let service = restart(service).await;
    let (_, replay) = log(&service, EVENTS, "events", events).await;
    assert_eq!(
        (replay["stored"].as_i64(), replay["duplicates"].as_i64()),
        (Some(0), Some(500)),
        "{replay}"
    );

    let bad = vec![
        json!({"id": "unknown", "name": "refund", "unit": "u"}),
        json!({"id": "nan", "name": "purchase", "unit": "u", "value": "NaN"}),
        json!({"id": "future", "name": "purchase", "unit": "u", "time": "2099-01-01T00:00:00Z"}),
        json!({"id": "fine", "name": "purchase", "unit": "u"}),
        json!({"id": "fine", "name": "purchase", "unit": "u"}),
    ];
    let (_, outcome) = log(&service, EVENTS, "events", bad).await;
    assert_eq!(outcome["stored"], 1, "{outcome}");
    assert_eq!(
        outcome["duplicates"], 1,
        "the same id twice in one batch counts once: {outcome}"
    );
    let reasons: Vec<&str> = outcome["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{outcome}");
    assert!(reasons[0].contains("no metric"), "{reasons:?}");
    service.stop().await;
}

async fn concurrent_batches_all_land(backend: Backend) {
    let service = std::sync::Arc::new(service(backend).await);
    running_experiment(&service).await;
    // Eight batches at once, each touching today and two days ago (the day's partition on
    // PostgreSQL is created by whichever comes first, and never fails the others).
    let mut tasks = Vec::new();
    for batch in 0..8 {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            let events: Vec<Value> = (0..100)
                .map(|i| json!({"id": format!("c{batch}-{i}"), "name": "purchase", "unit": format!("u{i}")}))
                .collect();
            log(&service, EVENTS, "events", events).await
        }));
    }
    for task in tasks {
        let (status, outcome) = task.await.unwrap();
        assert_eq!((status, outcome["stored"].as_i64()), (200, Some(100)), "{outcome}");
    }
}

/// POSTs an NDJSON body to the streaming form of LogEvents.
async fn stream_ndjson(service: &Service, lines: &[String]) -> (u16, Value) {
    let url = format!("http://{}/v1/projects/shop/events:stream", service.running.http_addr);
    let response = switchyard_platform::testing::http_as(
        "POST",
        &url,
        Some(&service.keys.editor),
        &[("content-type", "application/x-ndjson")],
        lines.join("\n"),
    )
    .await;
    (response.status, response.json())
}

async fn events_stream_in_as_ndjson_and_over_grpc(backend: Backend) {
    use switchyard_api::experiments::v1::{self as pb, experiment_service_client::ExperimentServiceClient};

    let service = service(backend).await;
    running_experiment(&service).await;
    // 1,200 events, one per line; the 701st names an event no metric uses.
    let lines: Vec<String> = (0..1_200)
        .map(|i| {
            let name = if i == 700 { "nobody-measures-this" } else { "purchase" };
            json!({"id": format!("n{i}"), "name": name, "unit": format!("user-{i}")}).to_string()
        })
        .collect();
    let (status, answer) = stream_ndjson(&service, &lines).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 1_199, "{answer}");
    assert_eq!(
        answer["rejected"][0]["index"], 700,
        "positions count across the stream: {answer}"
    );
    // Replayed, every event is a duplicate.
    let (_, again) = stream_ndjson(&service, &lines).await;
    assert_eq!(again["duplicates"], 1_199, "{again}");
    // A malformed line refuses the whole body before anything is stored, naming the line.
    let mut broken = vec![json!({"id": "fresh-1", "name": "purchase", "unit": "u"}).to_string()];
    broken.push("{\"id\": \"fresh-2\", \"name\": ".to_owned());
    let (status, answer) = stream_ndjson(&service, &broken).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().starts_with("line 2"), "{answer}");
    // A line that is no event at all (JSON null) is refused; an empty object is an event
    // refused on its own ("id is required").
    let (status, answer) = stream_ndjson(&service, &["null".to_owned()]).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = stream_ndjson(&service, &["{}".to_owned()]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rejected"][0]["reason"], "id is required", "{answer}");
    let (_, replay) = stream_ndjson(&service, &broken[..1]).await;
    assert_eq!(replay["stored"], 1, "the first line was not stored before: {replay}");

    // gRPC client streaming: three messages, one event or several each.
    let event = |id: &str| pb::Event {
        id: id.to_owned(),
        name: "purchase".to_owned(),
        unit: format!("unit-{id}"),
        ..Default::default()
    };
    let messages = vec![
        pb::StreamEventsRequest {
            parent: "projects/shop".into(),
            event: Some(event("g1")),
            events: vec![],
        },
        pb::StreamEventsRequest {
            parent: "projects/shop".into(),
            event: None,
            events: vec![event("g2"), event("g3")],
        },
    ];
    let mut request = tonic::Request::new(futures::stream::iter(messages));
    let bearer = format!("Bearer {}", service.keys.editor).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let answer = ExperimentServiceClient::new(service.grpc())
        .stream_events(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.stored, 3, "{answer:?}");
    // A viewer may not write events.
    let mut request = tonic::Request::new(futures::stream::iter(vec![pb::StreamEventsRequest {
        parent: "projects/shop".into(),
        event: Some(event("g4")),
        events: vec![],
    }]));
    let bearer = format!("Bearer {}", service.keys.viewer).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let refused = ExperimentServiceClient::new(service.grpc())
        .stream_events(request)
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    service.stop().await;
}

/// Ids are remembered for the event age limit plus the clock skew after they arrive (a replay
/// is counted once until then, and refused as too old after), per tenant, then forgotten.
async fn ids_are_remembered_for_their_window_per_tenant_then_forgotten(backend: Backend) {
    use experiment_service::biz::{id_retention::forget_before, repository::ExperimentRepository};

    let service = service(backend).await;
    running_experiment(&service).await;
    let events: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("kept-{i}"), "name": "purchase", "unit": format!("user-{i}")}))
        .collect();
    let (_, outcome) = log(&service, EVENTS, "events", events.clone()).await;
    assert_eq!(outcome["stored"], 3, "{outcome}");

    let url = service.settings.storage_url("experiment-service");
    let database = switchyard_platform::storage::Database::connect(
        &url,
        2,
        std::time::Duration::from_secs(10),
        &experiment_service::data::MIGRATIONS,
    )
    .await
    .unwrap();
    let repository = experiment_service::data::repository::SqlRepository::new(&database);
    let limits = service.settings.service.ingest_limits();
    let now = switchyard_platform::clock::now_ms();
    assert_eq!(
        repository.forget_ids(forget_before(&limits, now)).await.unwrap(),
        0,
        "ids received just now are inside the window"
    );
    let (_, replay) = log(&service, EVENTS, "events", events.clone()).await;
    assert_eq!(replay["duplicates"], 3, "{replay}");

    // Another tenant's events with the same ids are its own.
    let other = experiment_service::biz::ingest::NewEvent {
        id: "kept-0".into(),
        name: "purchase".into(),
        unit: "user-0".into(),
        value: 1.0,
        occurred_ms: now,
        environment: String::new(),
    };
    let stored = repository
        .store_events("other", "shop", std::slice::from_ref(&other), now)
        .await
        .unwrap();
    assert_eq!(stored, [true]);
    let stored = repository.store_events("other", "shop", &[other], now).await.unwrap();
    assert_eq!(stored, [false]);

    // Once the window has passed (seen from a clock one window ahead), every id is forgotten.
    let later = now + limits.max_age_ms + limits.max_skew_ms + 1;
    assert_eq!(repository.forget_ids(forget_before(&limits, later)).await.unwrap(), 4);
    let (_, replay) = log(&service, EVENTS, "events", events).await;
    assert_eq!(replay["stored"], 3, "a forgotten id is new again: {replay}");
    service.stop().await;
}

on_both_backends!(
    ids_are_remembered_for_their_window_per_tenant_then_forgotten,
    events_stream_in_as_ndjson_and_over_grpc,
    concurrent_batches_all_land,
    exposures_count_each_unit_once_and_set_apart_units_in_two_arms,
    bad_exposures_are_refused_one_by_one,
    acknowledged_events_survive_a_restart_and_replays_count_once,
);
