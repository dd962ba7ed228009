//! Exactly once across a crash: the replica driving a deployment is killed with SIGKILL
//! mid-deployment; another replica on the same database takes the deployment over when the
//! lease runs out, and every step happens exactly once, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{authed, deploy::duration};
use switchyard_api::config::v1::{
    self as pb, config_service_client::ConfigServiceClient, delivery_service_client::DeliveryServiceClient,
};
use switchyard_platform::testing::{self, ServiceProcess};
use tonic::transport::Channel;

async fn channel(url: &str) -> Channel {
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(url.to_owned()).unwrap().connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {url}");
}

async fn deployment(delivery: &mut DeliveryServiceClient<Channel>, key: &str, name: &str) -> pb::Deployment {
    delivery
        .get_deployment(authed(key, pb::GetDeploymentRequest { name: name.into() }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_killed_driver_is_replaced_without_skipping_or_repeating_a_step() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (settings, keys) = support::settings_with_keys(dir_a.path());
    let mut settings = testing::with_postgres_and_redis(settings).await;
    settings.service.secret_keys = [(
        "k".to_owned(),
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned(),
    )]
    .into();
    settings.service.deployments.lease_ms = 1500;
    let binary = env!("CARGO_BIN_EXE_config-service");
    let mut first = ServiceProcess::spawn(binary, &settings, dir_a.path());
    let channel_a = channel(&first.grpc_url).await;
    let mut config = ConfigServiceClient::new(channel_a.clone());
    config
        .create_project(authed(
            &keys.admin,
            pb::CreateProjectRequest {
                project_id: "shop".into(),
                project: None,
                environment_ids: vec!["prod".into()],
            },
        ))
        .await
        .unwrap();
    for (content, publish) in [("version: 1\n", true), ("version: 2\n", false)] {
        let draft = pb::Config {
            name: "projects/shop/configs/checkout".into(),
            format: pb::Format::Yaml as i32,
            content: content.into(),
            ..Default::default()
        };
        if publish {
            config
                .create_config(authed(
                    &keys.editor,
                    pb::CreateConfigRequest {
                        parent: "projects/shop".into(),
                        config_id: "checkout".into(),
                        config: Some(draft),
                    },
                ))
                .await
                .unwrap();
            config
                .publish_config(authed(
                    &keys.publisher,
                    pb::PublishConfigRequest {
                        name: "projects/shop/configs/checkout".into(),
                        environment: "prod".into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap();
        } else {
            let current = config
                .get_config_draft(authed(
                    &keys.editor,
                    pb::GetConfigDraftRequest {
                        name: "projects/shop/configs/checkout".into(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            config
                .update_config(authed(
                    &keys.editor,
                    pb::UpdateConfigRequest {
                        config: Some(pb::Config {
                            etag: current.etag,
                            ..draft
                        }),
                    },
                ))
                .await
                .unwrap();
        }
    }
    let mut delivery = DeliveryServiceClient::new(channel_a);
    let steps: Vec<pb::StrategyStep> = (1..=9)
        .map(|tenth| pb::StrategyStep {
            percentage: f64::from(tenth) * 10.0,
            pause: duration(300),
            wait_for_resume: false,
        })
        .collect();
    delivery
        .create_strategy(authed(
            &keys.editor,
            pb::CreateStrategyRequest {
                parent: "projects/shop".into(),
                strategy_id: "tenths".into(),
                strategy: Some(pb::Strategy {
                    growth: pb::strategy::Growth::Steps as i32,
                    steps,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let created = delivery
        .create_deployment(authed(
            &keys.publisher,
            pb::CreateDeploymentRequest {
                parent: "projects/shop/environments/prod".into(),
                deployment: Some(pb::Deployment {
                    config: "checkout".into(),
                    strategy: "tenths".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // A second replica joins while the first drives; it cannot take the lease yet.
    let mut second = ServiceProcess::spawn(binary, &settings, dir_b.path());
    let mut delivery_b = DeliveryServiceClient::new(channel(&second.grpc_url).await);
    for _ in 0..400 {
        if deployment(&mut delivery_b, &keys.viewer, &created.name)
            .await
            .percentage
            >= 30.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let mut done = None;
    for _ in 0..600 {
        let current = deployment(&mut delivery_b, &keys.viewer, &created.name).await;
        if current.state == pb::deployment::State::Complete as i32 {
            done = Some(current);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = done.expect("the second replica completes the deployment");
    assert_eq!(done.percentage, 100.0);
    let events = delivery_b
        .list_deployment_events(authed(
            &keys.viewer,
            pb::ListDeploymentEventsRequest {
                parent: created.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let shares: Vec<f64> = events
        .iter()
        .filter(|event| event.kind == "percentage_changed")
        .map(|event| event.percentage)
        .collect();
    assert_eq!(
        shares,
        [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0],
        "every step exactly once, in order, across the crash"
    );
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert!(sequences.windows(2).all(|pair| pair[1] == pair[0] + 1), "{sequences:?}");
    assert_eq!(events.iter().filter(|event| event.kind == "started").count(), 1);
    assert_eq!(events.iter().filter(|event| event.kind == "completed").count(), 1);
    second.kill();
}
