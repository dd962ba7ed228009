//! Freeze windows through the real API: a publish refused with the window named, break-glass
//! overriding it (only with the `emergency` scope, audited, reported), deployments held or
//! paused while a window is open, and windows that never open refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use support::{
    Service, authed,
    deploy::{create_strategy, deploy, deployment, duration, in_state, published_and_edited, wait_for},
};
use switchyard_api::config::v1::{self as pb, governance_service_client::GovernanceServiceClient};
use switchyard_platform::{proto_json::timestamp, testing};
use tonic::{Code, Request};

fn governance(service: &Service) -> GovernanceServiceClient<tonic::transport::Channel> {
    GovernanceServiceClient::new(testing::grpc_channel(&service.running))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A window open from a minute ago for an hour, over `environments`.
fn open_now(title: &str, environments: &[&str], during: pb::freeze_window::During) -> pb::FreezeWindow {
    pb::FreezeWindow {
        title: title.into(),
        environments: environments.iter().map(|e| (*e).to_owned()).collect(),
        time_zone: "Asia/Dhaka".into(),
        schedule: Some(pb::freeze_window::Schedule::Once(pb::OneOffWindow {
            start_time: timestamp(now_ms() - 60_000),
            end_time: timestamp(now_ms() + 3_600_000),
        })),
        deployments: during as i32,
        ..Default::default()
    }
}

async fn create_window(
    service: &Service,
    id: &str,
    window: pb::FreezeWindow,
) -> Result<pb::FreezeWindow, tonic::Status> {
    governance(service)
        .create_freeze_window(authed(
            &service.keys.admin,
            pb::CreateFreezeWindowRequest {
                parent: "projects/shop".into(),
                freeze_window_id: id.into(),
                freeze_window: Some(window),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

fn publish_request(key: &str, break_glass: Option<&str>) -> Request<pb::PublishConfigRequest> {
    let mut request = authed(
        key,
        pb::PublishConfigRequest {
            name: "projects/shop/configs/checkout".into(),
            environment: "prod".into(),
            ..Default::default()
        },
    );
    if let Some(reason) = break_glass {
        request
            .metadata_mut()
            .insert("x-switchyard-break-glass", reason.parse().unwrap());
    }
    request
}

async fn a_freeze_refuses_publishing_and_break_glass_overrides_it(service: Service) {
    published_and_edited(&service).await;
    let created = create_window(
        &service,
        "eid",
        open_now("Eid holidays", &[], pb::freeze_window::During::Hold),
    )
    .await
    .unwrap();
    assert!(created.open_now);
    assert!(created.open_until.is_some());

    let refused = service
        .client()
        .publish_config(publish_request(&service.keys.publisher, None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("freeze window eid"), "{}", refused.message());
    assert!(refused.message().contains("Eid holidays"), "{}", refused.message());
    assert!(
        refused.message().contains("x-switchyard-break-glass"),
        "{}",
        refused.message()
    );

    let no_scope = service
        .client()
        .publish_config(publish_request(&service.keys.publisher, Some("checkout is down")))
        .await
        .unwrap_err();
    assert_eq!(no_scope.code(), Code::PermissionDenied, "{no_scope:?}");
    assert!(no_scope.message().contains("emergency"));

    let release = service
        .client()
        .publish_config(publish_request(
            &service.keys.emergency,
            Some("INC-7: checkout is down"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(release.number, 2);

    let report = governance(&service)
        .list_break_glass_uses(authed(
            &service.keys.admin,
            pb::ListBreakGlassUsesRequest {
                parent: "projects/shop".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .uses;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].reason, "INC-7: checkout is down");
    assert_eq!(report[0].action, "config.publish");
    assert_eq!(report[0].windows, ["eid"]);
    assert_eq!(report[0].resource, "projects/shop/environments/prod/configs/checkout");

    let audit = service
        .client()
        .list_audit_records(authed(
            &service.keys.admin,
            pb::ListAuditRecordsRequest {
                resource: "projects/shop/environments/prod/configs/checkout".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .records;
    let actions: Vec<&str> = audit.iter().map(|record| record.action.as_str()).collect();
    assert!(actions.contains(&"freeze.break_glass"), "{actions:?}");
}

#[tokio::test]
async fn a_freeze_refuses_publishing_and_break_glass_overrides_it_on_sqlite() {
    a_freeze_refuses_publishing_and_break_glass_overrides_it(support::sqlite().await).await;
}

#[tokio::test]
async fn a_freeze_refuses_publishing_and_break_glass_overrides_it_on_postgres() {
    a_freeze_refuses_publishing_and_break_glass_overrides_it(support::postgres().await).await;
}

#[tokio::test]
async fn a_window_over_another_environment_changes_nothing_here() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    create_window(
        &service,
        "dev-only",
        open_now("", &["dev"], pb::freeze_window::During::Hold),
    )
    .await
    .unwrap();
    service
        .client()
        .publish_config(publish_request(&service.keys.publisher, None))
        .await
        .unwrap();
}

/// A strategy of two steps 200 ms apart: it would finish at once unless something holds it.
async fn quick_steps(service: &Service) {
    let steps = [10.0, 50.0]
        .iter()
        .map(|percentage| pb::StrategyStep {
            percentage: *percentage,
            pause: duration(200),
            wait_for_resume: false,
        })
        .collect();
    let request = pb::CreateStrategyRequest {
        parent: "projects/shop".into(),
        strategy_id: "quick".into(),
        strategy: Some(pb::Strategy {
            growth: pb::strategy::Growth::Steps as i32,
            steps,
            ..Default::default()
        }),
    };
    create_strategy(service, request).await;
}

#[tokio::test]
async fn deployments_hold_during_a_freeze_and_go_on_after_it() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    quick_steps(&service).await;
    let manual = support::deploy::manual_steps("manual", &[10.0], 0);
    create_strategy(&service, manual).await;
    let created = deploy(&service, deployment("manual", vec![])).await;
    support::deploy::paused_at(&service, &created.name, 10.0).await;
    create_window(
        &service,
        "lunch",
        open_now("lunch", &["prod"], pb::freeze_window::During::Hold),
    )
    .await
    .unwrap();
    support::deploy::operate(&service, &created.name, "resume")
        .await
        .unwrap();
    let held = wait_for(&service, &created.name, |d| {
        d.reason.contains("held by freeze window lunch")
    })
    .await;
    assert_eq!(held.percentage, 10.0, "no step while the window is open");
    let events = support::deploy::events(&service, &created.name).await;
    assert_eq!(events.last().unwrap().kind, "held");
    assert_eq!(events.last().unwrap().actor, "freeze:lunch");

    // New deployments are refused while the window is open, unless the glass is broken.
    let refused = support::deploy::try_deploy(&service, &service.keys.publisher, deployment("quick", vec![]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    governance(&service)
        .delete_freeze_window(authed(
            &service.keys.admin,
            pb::DeleteFreezeWindowRequest {
                name: "projects/shop/freezeWindows/lunch".into(),
            },
        ))
        .await
        .unwrap();
    let done = wait_for(&service, &created.name, in_state(pb::deployment::State::Complete)).await;
    assert!(done.reason.is_empty(), "{}", done.reason);
}

#[tokio::test]
async fn a_pause_window_pauses_running_deployments_and_break_glass_deployments_run_through() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let manual = support::deploy::manual_steps("manual", &[10.0], 0);
    create_strategy(&service, manual).await;
    let created = deploy(&service, deployment("manual", vec![])).await;
    support::deploy::paused_at(&service, &created.name, 10.0).await;
    create_window(&service, "night", open_now("", &[], pb::freeze_window::During::Pause))
        .await
        .unwrap();
    support::deploy::operate(&service, &created.name, "resume")
        .await
        .unwrap();
    let paused = wait_for(&service, &created.name, |d| {
        d.reason.contains("paused by freeze window night")
    })
    .await;
    assert_eq!(paused.state, pb::deployment::State::Paused as i32);
    support::deploy::operate(&service, &created.name, "stop").await.unwrap();

    support::edit(&service, "checkout", "version: 3\n").await;
    let mut request = authed(
        &service.keys.emergency,
        pb::CreateDeploymentRequest {
            parent: support::deploy::ENV.into(),
            deployment: Some(deployment("AllAtOnce", vec![])),
        },
    );
    request
        .metadata_mut()
        .insert("x-switchyard-break-glass", "INC-9 hotfix".parse().unwrap());
    let emergency = support::deploy::delivery(&service)
        .create_deployment(request)
        .await
        .unwrap()
        .into_inner();
    wait_for(&service, &emergency.name, in_state(pb::deployment::State::Baking)).await;
    assert_eq!(support::deploy::version_for(&service, "pod-1").await, 3);
}

#[tokio::test]
async fn windows_that_never_open_or_make_no_sense_are_refused() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let cron = |expression: &str| pb::FreezeWindow {
        time_zone: "Asia/Dhaka".into(),
        schedule: Some(pb::freeze_window::Schedule::Cron(pb::CronWindow {
            expression: expression.into(),
            duration: duration(3_600_000),
        })),
        ..Default::default()
    };
    let cases = [
        (cron("0 0 30 2 *"), "never opens"),
        (cron("whenever"), "schedule.cron"),
        (
            pb::FreezeWindow {
                time_zone: "Dhaka".into(),
                ..cron("0 0 * * *")
            },
            "time_zone",
        ),
        (
            pb::FreezeWindow {
                schedule: None,
                ..cron("0 0 * * *")
            },
            "schedule",
        ),
    ];
    for (window, needle) in cases {
        let refused = create_window(&service, "bad", window).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(needle), "{needle}: {}", refused.message());
    }
    let publisher = governance(&service)
        .create_freeze_window(authed(
            &service.keys.publisher,
            pb::CreateFreezeWindowRequest {
                parent: "projects/shop".into(),
                freeze_window_id: "mine".into(),
                freeze_window: Some(cron("0 0 * * *")),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(publisher.code(), Code::PermissionDenied, "only an admin sets windows");
    let nightly = create_window(&service, "nightly", cron("0 0 * * *")).await.unwrap();
    assert!(nightly.next_open_time.is_some());
    let other = governance(&service)
        .list_freeze_windows(authed(
            &service.keys.other_tenant,
            pb::ListFreezeWindowsRequest {
                parent: "projects/shop".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
}
