//! Health gates through the real API: a real Prometheus scraping a test exporter, and error
//! rates that clients report. A failing gate rolls the deployment back, an inconclusive one
//! pauses it for a human.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    Service,
    deploy::{deploy, deployment, duration, events, in_state, published_and_edited, report, version_for, wait_for},
    prometheus::{Exporter, Prometheus},
};
use switchyard_api::config::v1::{self as pb, deployment::State};

/// A strategy that holds 50% for an hour: the gates decide what happens, never the clock.
async fn long_half(service: &Service) {
    let request = pb::CreateStrategyRequest {
        parent: "projects/shop".into(),
        strategy_id: "long-half".into(),
        strategy: Some(pb::Strategy {
            growth: pb::strategy::Growth::Steps as i32,
            steps: vec![pb::StrategyStep {
                percentage: 50.0,
                pause: duration(3_600_000),
                wait_for_resume: false,
            }],
            ..Default::default()
        }),
    };
    support::deploy::create_strategy(service, request).await;
}

fn prometheus_gate(address: &str, query: &str) -> pb::Gate {
    pb::Gate {
        name: "error-ratio".into(),
        check: Some(pb::gate::Check::Prometheus(pb::PrometheusCheck {
            address: address.into(),
            query: query.into(),
            success_condition: "result < 0.05".into(),
            failure_condition: "result >= 0.05".into(),
        })),
        interval: duration(200),
        failure_limit: 0,
        consecutive_successes: 1,
    }
}

/// Clients of the new release see it until the gate fails, then every client is on the
/// previous release again.
async fn a_failing_prometheus_query_rolls_back(service: Service) {
    let exporter = Exporter::start().await;
    exporter.set(r#"checkout_error_ratio{release="2"}"#, 0.01);
    let prometheus = Prometheus::scraping(&exporter).await;
    prometheus
        .wait_for_value(r#"checkout_error_ratio{release="2"}"#, 0.01)
        .await;
    published_and_edited(&service).await;
    long_half(&service).await;
    let gate = prometheus_gate(&prometheus.address, r#"checkout_error_ratio{release="{{release}}"}"#);
    let created = deploy(&service, deployment("long-half", vec![gate])).await;
    let passing = wait_for(&service, &created.name, |d| {
        d.gate_status
            .first()
            .is_some_and(|status| status.last_outcome == "passed")
    })
    .await;
    assert_eq!(passing.state, State::Deploying as i32);
    assert!(
        passing.gate_status[0].last_detail.contains("0.01"),
        "{:?}",
        passing.gate_status
    );
    let mut on_new = 0;
    for n in 0..200 {
        on_new += usize::from(version_for(&service, &format!("pod-{n}")).await == 2);
    }
    assert!(on_new > 50, "half the clients are on the new release: {on_new} of 200");

    exporter.set(r#"checkout_error_ratio{release="2"}"#, 0.2);
    let rolled_back = wait_for(&service, &created.name, in_state(State::RolledBack)).await;
    assert!(rolled_back.reason.contains("0.2"), "{}", rolled_back.reason);
    assert_eq!(rolled_back.percentage, 0.0);
    for n in 0..200 {
        assert_eq!(
            version_for(&service, &format!("pod-{n}")).await,
            1,
            "pod-{n} is back on release 1"
        );
    }
    let kinds: Vec<String> = events(&service, &created.name)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let tail: Vec<&str> = kinds.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(tail, ["check_failed", "rolling_back", "rolled_back"]);
}

#[tokio::test]
async fn a_failing_prometheus_query_rolls_back_on_sqlite() {
    a_failing_prometheus_query_rolls_back(support::sqlite().await).await;
}

#[tokio::test]
async fn a_failing_prometheus_query_rolls_back_on_postgres() {
    a_failing_prometheus_query_rolls_back(support::postgres().await).await;
}

#[tokio::test]
async fn a_query_without_data_pauses_for_a_human_who_can_resume_or_stop() {
    let exporter = Exporter::start().await;
    exporter.set("unrelated_metric", 1.0);
    let prometheus = Prometheus::scraping(&exporter).await;
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    long_half(&service).await;
    let gate = prometheus_gate(&prometheus.address, r#"checkout_error_ratio{release="{{release}}"}"#);
    let created = deploy(&service, deployment("long-half", vec![gate])).await;
    let paused = wait_for(&service, &created.name, in_state(State::Paused)).await;
    assert!(paused.reason.contains("no data"), "{}", paused.reason);
    assert_eq!(paused.percentage, 50.0, "a pause keeps the share where it was");
    let kinds: Vec<String> = events(&service, &created.name)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"check_inconclusive".to_owned()), "{kinds:?}");

    support::deploy::operate(&service, &created.name, "stop").await.unwrap();
    assert_eq!(version_for(&service, "pod-1").await, 1);
}

#[tokio::test]
async fn a_query_that_returns_a_string_is_inconclusive() {
    let exporter = Exporter::start().await;
    let prometheus = Prometheus::scraping(&exporter).await;
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    long_half(&service).await;
    let gate = prometheus_gate(&prometheus.address, r#""a string""#);
    let created = deploy(&service, deployment("long-half", vec![gate])).await;
    let paused = wait_for(&service, &created.name, in_state(State::Paused)).await;
    assert!(paused.reason.contains("string"), "{}", paused.reason);
}

fn client_health_gate(min_sample: u64) -> pb::Gate {
    pb::Gate {
        name: "client-errors".into(),
        check: Some(pb::gate::Check::ClientHealth(pb::ClientHealthCheck {
            max_error_rate: 0.05,
            max_relative_increase: 0.5,
            min_sample,
        })),
        interval: duration(100),
        failure_limit: 1,
        consecutive_successes: 0,
    }
}

async fn client_reported_errors_roll_back(service: Service) {
    published_and_edited(&service).await;
    long_half(&service).await;
    let created = deploy(&service, deployment("long-half", vec![client_health_gate(100)])).await;
    wait_for(&service, &created.name, in_state(State::Deploying)).await;
    report(&service, 1, 980, 20).await;
    report(&service, 2, 196, 4).await;
    let passing = wait_for(&service, &created.name, |d| d.gate_status[0].last_outcome == "passed").await;
    assert!(
        passing.gate_status[0].last_detail.contains("0.0200"),
        "{:?}",
        passing.gate_status
    );
    // 4.4% is under the absolute 5%, but more than 50% worse than the previous release's 2%:
    // the relative threshold fails it (twice, as the failure limit is 1).
    report(&service, 2, 0, 5).await;
    let rolled_back = wait_for(&service, &created.name, in_state(State::RolledBack)).await;
    assert!(
        rolled_back.reason.contains("above the previous"),
        "{}",
        rolled_back.reason
    );
    assert_eq!(rolled_back.gate_status[0].failures, 2);
    assert_eq!(version_for(&service, "pod-1").await, 1);
}

#[tokio::test]
async fn client_reported_errors_roll_back_on_sqlite() {
    client_reported_errors_roll_back(support::sqlite().await).await;
}

#[tokio::test]
async fn client_reported_errors_roll_back_on_postgres() {
    client_reported_errors_roll_back(support::postgres().await).await;
}

#[tokio::test]
async fn too_few_client_reports_pause_instead_of_guessing() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    long_half(&service).await;
    let created = deploy(&service, deployment("long-half", vec![client_health_gate(1000)])).await;
    report(&service, 2, 10, 0).await;
    let paused = wait_for(&service, &created.name, in_state(State::Paused)).await;
    assert!(paused.reason.contains("1000 needed"), "{}", paused.reason);
}
