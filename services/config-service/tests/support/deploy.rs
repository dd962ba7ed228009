//! Deployments through the real gRPC API: a client, a config published once, steps that wait
//! for a human (so a test moves a deployment exactly when it wants), and waiting for states.
#![allow(dead_code)]

use std::time::Duration;

use switchyard_api::config::v1::{self as pb, delivery_service_client::DeliveryServiceClient};
use switchyard_platform::testing;
use tonic::transport::Channel;

use super::{Service, authed, create_yaml, publish, shop};

pub type Delivery = DeliveryServiceClient<Channel>;

pub const ENV: &str = "projects/shop/environments/prod";
pub const CONFIG: &str = "projects/shop/environments/prod/configs/checkout";

/// A service whose per-key rate limit lets one test key stand for a fleet of clients.
pub async fn fleet(postgres: bool) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = super::settings_with_keys(dir.path());
    settings.limits.per_principal_rps = 1_000_000;
    if postgres {
        settings = testing::with_postgres_and_redis(settings).await;
    }
    super::start_with(settings, keys, dir).await
}

pub fn delivery(service: &Service) -> Delivery {
    DeliveryServiceClient::new(testing::grpc_channel(&service.running))
}

/// Project `shop` with `checkout` published to prod (`version: 1`), and the draft moved on to
/// `version: 2`, ready to deploy.
pub async fn published_and_edited(service: &Service) {
    shop(service).await;
    create_yaml(service, "checkout", "version: 1\n", "").await;
    publish(service, "checkout", "prod").await.unwrap();
    super::edit(service, "checkout", "version: 2\n").await;
}

pub fn duration(ms: i64) -> Option<pbjson_types::Duration> {
    Some(pbjson_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

/// A strategy of steps that each wait for someone to resume, then a bake of `bake_ms`.
pub fn manual_steps(id: &str, percentages: &[f64], bake_ms: i64) -> pb::CreateStrategyRequest {
    pb::CreateStrategyRequest {
        parent: "projects/shop".into(),
        strategy_id: id.into(),
        strategy: Some(pb::Strategy {
            growth: pb::strategy::Growth::Steps as i32,
            steps: percentages
                .iter()
                .map(|percentage| pb::StrategyStep {
                    percentage: *percentage,
                    pause: None,
                    wait_for_resume: true,
                })
                .collect(),
            final_bake_time: duration(bake_ms),
            ..Default::default()
        }),
    }
}

pub async fn create_strategy(service: &Service, request: pb::CreateStrategyRequest) -> pb::Strategy {
    delivery(service)
        .create_strategy(authed(&service.keys.editor, request))
        .await
        .unwrap()
        .into_inner()
}

pub fn deployment(strategy: &str, gates: Vec<pb::Gate>) -> pb::Deployment {
    pb::Deployment {
        config: "checkout".into(),
        strategy: strategy.into(),
        gates,
        seed: "test-seed".into(),
        ..Default::default()
    }
}

pub async fn try_deploy(
    service: &Service,
    key: &str,
    deployment: pb::Deployment,
) -> Result<pb::Deployment, tonic::Status> {
    delivery(service)
        .create_deployment(authed(
            key,
            pb::CreateDeploymentRequest {
                parent: ENV.into(),
                deployment: Some(deployment),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

pub async fn deploy(service: &Service, deployment: pb::Deployment) -> pb::Deployment {
    try_deploy(service, &service.keys.publisher, deployment).await.unwrap()
}

pub async fn read(service: &Service, name: &str) -> pb::Deployment {
    delivery(service)
        .get_deployment(authed(
            &service.keys.viewer,
            pb::GetDeploymentRequest { name: name.into() },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Polls the deployment until `done` holds (the driver moves it in the background); fails
/// the test after 30 s with the last state seen.
pub async fn wait_for(service: &Service, name: &str, done: impl Fn(&pb::Deployment) -> bool) -> pb::Deployment {
    let mut last = None;
    for _ in 0..600 {
        let current = read(service, name).await;
        if done(&current) {
            return current;
        }
        last = Some(current);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the deployment never reached the expected state: {last:#?}");
}

pub fn in_state(state: pb::deployment::State) -> impl Fn(&pb::Deployment) -> bool {
    move |deployment| deployment.state == state as i32
}

/// Waits until the deployment holds at `percentage`, paused for a human.
pub async fn paused_at(service: &Service, name: &str, percentage: f64) -> pb::Deployment {
    wait_for(service, name, |d| {
        d.state == pb::deployment::State::Paused as i32 && (d.percentage - percentage).abs() < 1e-9
    })
    .await
}

pub async fn operate(service: &Service, name: &str, operation: &str) -> Result<pb::Deployment, tonic::Status> {
    let request = authed(
        &service.keys.publisher,
        pb::OperateDeploymentRequest {
            name: name.into(),
            reason: format!("test {operation}"),
        },
    );
    let mut client = delivery(service);
    let response = match operation {
        "pause" => client.pause_deployment(request).await,
        "resume" => client.resume_deployment(request).await,
        "promote" => client.promote_deployment(request).await,
        "stop" => client.stop_deployment(request).await,
        "revert" => client.revert_deployment(request).await,
        other => panic!("no operation {other}"),
    };
    response.map(|response| response.into_inner())
}

pub async fn events(service: &Service, name: &str) -> Vec<pb::DeploymentEvent> {
    delivery(service)
        .list_deployment_events(authed(
            &service.keys.viewer,
            pb::ListDeploymentEventsRequest {
                parent: name.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events
}

/// Waits until the service has written down `count` client ids seen reading configs (it does
/// on every resync), reading its database directly.
pub async fn sightings_recorded(service: &Service, count: i64) {
    sqlx::any::install_default_drivers();
    let url = service.settings.storage_url("config-service");
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for _ in 0..600 {
        let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM client_sightings")
            .fetch_one(&pool)
            .await
            .unwrap();
        if recorded >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service never recorded {count} client sightings");
}

/// The `version` a client with `client_id` is served now.
pub async fn version_for(service: &Service, client_id: &str) -> i64 {
    let config = service
        .client()
        .get_config(authed(
            &service.keys.viewer,
            pb::GetConfigRequest {
                name: CONFIG.into(),
                client_id: client_id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    super::content(&config)["version"].as_i64().unwrap()
}

/// Reports `ok` and `errors` for `release`, as an SDK would.
pub async fn report(service: &Service, release: u64, ok: u64, errors: u64) {
    delivery(service)
        .report_health(authed(
            &service.keys.viewer,
            pb::ReportHealthRequest {
                config: CONFIG.into(),
                release,
                ok_count: ok,
                error_count: errors,
            },
        ))
        .await
        .unwrap();
}
