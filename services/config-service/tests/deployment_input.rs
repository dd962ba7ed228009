//! Bad input to strategies and deployments gets a clear error and changes nothing; another
//! tenant sees none of it; HTTP clients get the same API as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    Service, authed,
    deploy::{ENV, create_strategy, delivery, deployment, duration, manual_steps, published_and_edited, try_deploy},
};
use switchyard_api::config::v1 as pb;
use switchyard_platform::testing;
use tonic::Code;

async fn refused_strategy(service: &Service, strategy: pb::Strategy) -> tonic::Status {
    delivery(service)
        .create_strategy(authed(
            &service.keys.editor,
            pb::CreateStrategyRequest {
                parent: "projects/shop".into(),
                strategy_id: "bad".into(),
                strategy: Some(strategy),
            },
        ))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn bad_strategies_are_refused_with_the_field_named() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let no_steps = pb::Strategy {
        growth: pb::strategy::Growth::Steps as i32,
        ..Default::default()
    };
    let cases = [
        (no_steps, "at least one step"),
        (pb::Strategy::default(), "strategy.growth"),
        (
            pb::Strategy {
                growth: pb::strategy::Growth::Linear as i32,
                growth_factor: 150.0,
                ..Default::default()
            },
            "strategy.growth_factor",
        ),
        (
            pb::Strategy {
                growth: pb::strategy::Growth::Linear as i32,
                growth_factor: 10.0,
                deployment_duration: Some(pbjson_types::Duration { seconds: -5, nanos: 0 }),
                ..Default::default()
            },
            "strategy.deployment_duration",
        ),
        (
            pb::Strategy {
                growth: pb::strategy::Growth::Exponential as i32,
                growth_factor: 10.0,
                final_bake_time: duration(25 * 3_600_000),
                ..Default::default()
            },
            "strategy.bake",
        ),
    ];
    for (strategy, field) in cases {
        let status = refused_strategy(&service, strategy).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
    let predefined = delivery(&service)
        .create_strategy(authed(
            &service.keys.editor,
            pb::CreateStrategyRequest {
                strategy_id: "AllAtOnce".into(),
                ..manual_steps("x", &[10.0], 0)
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(predefined.code(), Code::InvalidArgument);
    let listed = delivery(&service)
        .list_strategies(authed(
            &service.keys.viewer,
            pb::ListStrategiesRequest {
                parent: "projects/shop".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.strategies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "projects/shop/strategies/AllAtOnce",
            "projects/shop/strategies/Linear50PercentEvery30Seconds",
            "projects/shop/strategies/Linear20PercentEvery6Minutes",
            "projects/shop/strategies/Canary10Percent20Minutes",
        ],
        "nothing was created"
    );
}

fn gate(interval_ms: i64, success: &str, address: &str) -> pb::Gate {
    pb::Gate {
        name: "g".into(),
        check: Some(pb::gate::Check::Prometheus(pb::PrometheusCheck {
            address: address.into(),
            query: "up".into(),
            success_condition: success.into(),
            failure_condition: String::new(),
        })),
        interval: duration(interval_ms),
        failure_limit: 0,
        consecutive_successes: 0,
    }
}

#[tokio::test]
async fn bad_deployments_are_refused_and_nothing_is_deployed() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let publisher = service.keys.publisher.clone();
    let cases: Vec<(pb::Deployment, Code, &str)> = vec![
        (deployment("", vec![]), Code::InvalidArgument, "strategy"),
        (
            deployment("NoSuchStrategy", vec![]),
            Code::NotFound,
            "strategies/NoSuchStrategy",
        ),
        (
            deployment("AllAtOnce", vec![gate(10, "result < 1", "http://127.0.0.1:9")]),
            Code::InvalidArgument,
            "gates[0].interval",
        ),
        (
            deployment("AllAtOnce", vec![gate(1000, "result <", "http://127.0.0.1:9")]),
            Code::InvalidArgument,
            "gates[0].success_condition",
        ),
        (
            deployment("AllAtOnce", vec![gate(1000, "result < 1", "file:///etc/passwd")]),
            Code::InvalidArgument,
            "gates[0].address",
        ),
        (
            deployment(
                "AllAtOnce",
                vec![
                    gate(1000, "result < 1", "http://127.0.0.1:9"),
                    gate(1000, "result < 1", "http://127.0.0.1:9"),
                ],
            ),
            Code::InvalidArgument,
            "unique",
        ),
        (
            pb::Deployment {
                config: "nope".into(),
                ..deployment("AllAtOnce", vec![])
            },
            Code::FailedPrecondition,
            "not published",
        ),
        (
            pb::Deployment {
                release: 99,
                ..deployment("AllAtOnce", vec![])
            },
            Code::NotFound,
            "releases/99",
        ),
        (
            pb::Deployment {
                description: "'; DROP TABLE deployments; --".repeat(100),
                ..deployment("AllAtOnce", vec![])
            },
            Code::InvalidArgument,
            "description",
        ),
    ];
    for (request, code, needle) in cases {
        let status = try_deploy(&service, &publisher, request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(needle), "{needle}: {}", status.message());
    }
    let viewer = try_deploy(&service, &service.keys.viewer, deployment("AllAtOnce", vec![]))
        .await
        .unwrap_err();
    assert_eq!(viewer.code(), Code::PermissionDenied);
    let listed = delivery(&service)
        .list_deployments(authed(
            &service.keys.viewer,
            pb::ListDeploymentsRequest {
                parent: ENV.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.deployments.is_empty(),
        "nothing was deployed: {:?}",
        listed.deployments
    );
    let releases = service
        .client()
        .list_releases(authed(
            &service.keys.viewer,
            pb::ListReleasesRequest {
                parent: support::deploy::CONFIG.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        releases.releases.len(),
        1,
        "no release was staged by a refused deployment"
    );
}

#[tokio::test]
async fn a_base_config_is_never_deployed_progressively() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    support::create_yaml(&service, "child", "x: 1\n", "").await;
    let mut client = service.client();
    let mut draft = client
        .get_config_draft(authed(
            &service.keys.editor,
            pb::GetConfigDraftRequest {
                name: "projects/shop/configs/child".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    draft.extends = vec!["checkout".into()];
    client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(draft) },
        ))
        .await
        .unwrap();
    let refused = try_deploy(&service, &service.keys.publisher, deployment("AllAtOnce", vec![]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("child extends"), "{}", refused.message());
}

#[tokio::test]
async fn another_tenant_sees_and_changes_nothing() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("manual", &[10.0], 0)).await;
    let created = support::deploy::deploy(&service, deployment("manual", vec![])).await;
    let other = service.keys.other_tenant.clone();
    let mut client = delivery(&service);
    let read = client
        .get_deployment(authed(
            &other,
            pb::GetDeploymentRequest {
                name: created.name.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::NotFound);
    let stop = client
        .stop_deployment(authed(
            &other,
            pb::OperateDeploymentRequest {
                name: created.name.clone(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stop.code(), Code::NotFound);
    let strategy = client
        .get_strategy(authed(
            &other,
            pb::GetStrategyRequest {
                name: "projects/shop/strategies/manual".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(strategy.code(), Code::NotFound);
    let health = client
        .report_health(authed(
            &other,
            pb::ReportHealthRequest {
                config: support::deploy::CONFIG.into(),
                release: 2,
                ok_count: 1,
                error_count: 1000,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(health.code(), Code::NotFound);
    let mine = support::deploy::read(&service, &created.name).await;
    assert_ne!(mine.state, pb::deployment::State::RolledBack as i32);
}

#[tokio::test]
async fn the_http_api_speaks_json_and_refuses_bad_json() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let url = service.http("/v1/projects/shop/environments/prod/deployments");
    let auth = format!("Bearer {}", service.keys.publisher);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    for body in [
        r#"{"config": "checkout", "strategy": "AllAtOnce""#,
        r#"{"config": "checkout", "strategy": "AllAtOnce", "colour": "red"}"#,
        r#"{"config": "checkout", "strategy": 7}"#,
        r#"{"config": "checkout", "strategy": "AllAtOnce", "gates": [{"name": "g", "interval": "soon"}]}"#,
    ] {
        let response = testing::http("POST", &url, &headers, body.to_owned()).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
    }
    let response = testing::http(
        "POST",
        &url,
        &headers,
        r#"{"config": "checkout", "strategy": "AllAtOnce", "description": "via HTTP"}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let created = response.json();
    assert_eq!(created["name"], "projects/shop/environments/prod/deployments/1");
    assert_eq!(created["state"], "QUEUED");
    assert_eq!(created["strategyDefinition"]["finalBakeTime"], "600s");
    let events = testing::http(
        "GET",
        &service.http("/v1/projects/shop/environments/prod/deployments/1/events"),
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(events.status, 200);
    assert_eq!(events.json()["events"][0]["kind"], "queued");
}

#[tokio::test]
async fn services_report_health_with_the_environments_sdk_key() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let report = |key: String, release: u64| {
        let mut client = delivery(&service);
        async move {
            client
                .report_health(authed(
                    &key,
                    pb::ReportHealthRequest {
                        config: support::deploy::CONFIG.into(),
                        release,
                        ok_count: 10,
                        error_count: 1,
                    },
                ))
                .await
        }
    };
    report(service.keys.sdk_prod.clone(), 1).await.unwrap();
    report(service.keys.viewer.clone(), 1).await.unwrap();
    let no_release = report(service.keys.sdk_prod.clone(), 0).await.unwrap_err();
    assert_eq!(no_release.code(), Code::InvalidArgument);
    let wrong_env = delivery(&service)
        .report_health(authed(
            &service.keys.sdk_prod,
            pb::ReportHealthRequest {
                config: "projects/shop/environments/dev/configs/checkout".into(),
                release: 1,
                ok_count: 1,
                error_count: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        wrong_env.code(),
        Code::PermissionDenied,
        "an SDK key reports only for its environment"
    );
}
