//! Progressive delivery, measured end to end against real processes (PostgreSQL, Redis):
//!
//! - shares: a config deployed to 1,000 watching clients in 10% steps; at each step, the share
//!   of watchers on the new release against the step's target, and whether any watcher ever
//!   went back to the old release while the share grew;
//! - rollback: a client-health gate checked every second starts failing (error reports are
//!   acknowledged); the time until every watcher has the previous release again;
//! - takeover: the replica driving a deployment is killed with SIGKILL at a random step; the
//!   time until the other replica moves the deployment on, and steps skipped or repeated.
//!
//! Results go to `bench/results/delivery.json`. `make bench-delivery` runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use config_service::biz::deployments::{
    strategy::{FULL, client_bucket, share_of},
    threshold::calibrated,
};
use futures::StreamExt;
use serde_json::json;
use switchyard_api::config::v1::{
    self as pb, config_service_client::ConfigServiceClient, delivery_service_client::DeliveryServiceClient,
};
use switchyard_platform::{auth::generate_api_key, testing};
use tonic::{Request, transport::Channel};

const WATCHERS: usize = 1_000;
const ROLLBACK_ROUNDS: usize = 10;
const TAKEOVER_ROUNDS: usize = 5;
const SEED: &str = "bench-seed";

struct Replica {
    process: testing::ServiceProcess,
    _dir: tempfile::TempDir,
}

struct Cluster {
    settings: config_service::conf::Settings,
    key: String,
    replicas: Vec<Replica>,
}

impl Cluster {
    async fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = testing::local(config_service::conf::defaults(), dir.path());
        settings = testing::with_postgres_and_redis(settings).await;
        settings.limits.per_principal_rps = 10_000_000;
        settings.limits.max_concurrent_requests = 100_000;
        settings.telemetry.log_filter = "warn,switchyard_platform::server=info".into();
        settings.service.secret_keys = [(
            "k".to_owned(),
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned(),
        )]
        .into();
        let key = generate_api_key("bench", &["admin"]);
        settings.auth.api_keys.push(key.record);
        Cluster {
            settings,
            key: key.plaintext,
            replicas: Vec::new(),
        }
    }

    fn spawn(&mut self) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let process = testing::ServiceProcess::spawn(env!("CARGO_BIN_EXE_config-service"), &self.settings, dir.path());
        self.replicas.push(Replica { process, _dir: dir });
        self.replicas.len() - 1
    }

    async fn channel(&self, replica: usize) -> Channel {
        let url = self.replicas[replica].process.grpc_url.clone();
        Channel::from_shared(url).unwrap().connect().await.unwrap()
    }

    fn authed<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", self.key).parse().unwrap());
        request
    }
}

/// Project `bench` with `prod` and config `app` published at `version: 1`.
async fn prepare(cluster: &Cluster, channel: Channel) {
    let mut config = ConfigServiceClient::new(channel.clone());
    config
        .create_project(cluster.authed(pb::CreateProjectRequest {
            project_id: "bench".into(),
            project: None,
            environment_ids: vec!["prod".into()],
        }))
        .await
        .unwrap();
    config
        .create_config(cluster.authed(pb::CreateConfigRequest {
            parent: "projects/bench".into(),
            config_id: "app".into(),
            config: Some(pb::Config {
                content: r#"{"version": 1}"#.into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    publish(cluster, channel, 1).await;
}

async fn set_draft(cluster: &Cluster, channel: Channel, version: i64) {
    let mut config = ConfigServiceClient::new(channel);
    let mut draft = config
        .get_config_draft(cluster.authed(pb::GetConfigDraftRequest {
            name: "projects/bench/configs/app".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    draft.content = format!(r#"{{"version": {version}}}"#);
    config
        .update_config(cluster.authed(pb::UpdateConfigRequest { config: Some(draft) }))
        .await
        .unwrap();
}

async fn publish(cluster: &Cluster, channel: Channel, _version: i64) {
    ConfigServiceClient::new(channel)
        .publish_config(cluster.authed(pb::PublishConfigRequest {
            name: "projects/bench/configs/app".into(),
            environment: "prod".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
}

async fn strategy(cluster: &Cluster, channel: Channel, id: &str, steps: Vec<pb::StrategyStep>) {
    DeliveryServiceClient::new(channel)
        .create_strategy(cluster.authed(pb::CreateStrategyRequest {
            parent: "projects/bench".into(),
            strategy_id: id.into(),
            strategy: Some(pb::Strategy {
                growth: pb::strategy::Growth::Steps as i32,
                steps,
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
}

fn step(percentage: f64, pause_ms: Option<i64>) -> pb::StrategyStep {
    pb::StrategyStep {
        percentage,
        pause: pause_ms.map(|ms| pbjson_types::Duration {
            seconds: ms / 1000,
            nanos: ((ms % 1000) * 1_000_000) as i32,
        }),
        wait_for_resume: pause_ms.is_none(),
    }
}

async fn deploy(cluster: &Cluster, channel: Channel, strategy: &str, gates: Vec<pb::Gate>) -> pb::Deployment {
    DeliveryServiceClient::new(channel)
        .create_deployment(cluster.authed(pb::CreateDeploymentRequest {
            parent: "projects/bench/environments/prod".into(),
            deployment: Some(pb::Deployment {
                config: "app".into(),
                strategy: strategy.into(),
                gates,
                seed: SEED.into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner()
}

async fn read(cluster: &Cluster, channel: Channel, name: &str) -> pb::Deployment {
    DeliveryServiceClient::new(channel)
        .get_deployment(cluster.authed(pb::GetDeploymentRequest { name: name.into() }))
        .await
        .unwrap()
        .into_inner()
}

async fn wait_for(
    cluster: &Cluster,
    channel: Channel,
    name: &str,
    done: impl Fn(&pb::Deployment) -> bool,
) -> pb::Deployment {
    for _ in 0..6000 {
        let current = read(cluster, channel.clone(), name).await;
        if done(&current) {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deployment {name} never reached the expected state");
}

/// Every watcher's history: the `version` values it was sent, in order, with when.
type Histories = Arc<Mutex<Vec<Vec<(i64, Instant)>>>>;

async fn start_watchers(cluster: &Cluster, channels: &[Channel]) -> Histories {
    let histories: Histories = Arc::new(Mutex::new(vec![Vec::new(); WATCHERS]));
    for index in 0..WATCHERS {
        let channel = channels[index % channels.len()].clone();
        let request = cluster.authed(pb::WatchRequest {
            parent: "projects/bench/environments/prod".into(),
            client_id: format!("pod-{index}"),
            ..Default::default()
        });
        let mut stream = ConfigServiceClient::new(channel)
            .watch(request)
            .await
            .unwrap()
            .into_inner();
        let histories = histories.clone();
        tokio::spawn(async move {
            while let Some(Ok(response)) = stream.next().await {
                for config in &response.configs {
                    let version = serde_json::from_str::<serde_json::Value>(&config.text).unwrap()["version"]
                        .as_i64()
                        .unwrap_or(0);
                    histories.lock().unwrap()[index].push((version, Instant::now()));
                }
            }
        });
    }
    histories
}

fn current(histories: &Histories) -> Vec<i64> {
    let histories = histories.lock().unwrap();
    histories
        .iter()
        .map(|history| history.last().map_or(0, |(version, _)| *version))
        .collect()
}

/// Waits until every watcher holds what `expected` says; returns when it did.
async fn converge(histories: &Histories, expected: impl Fn(usize) -> i64) -> Instant {
    for _ in 0..30_000 {
        let now = current(histories);
        if now
            .iter()
            .enumerate()
            .all(|(index, version)| *version == expected(index))
        {
            let histories = histories.lock().unwrap();
            return histories
                .iter()
                .filter_map(|history| history.last().map(|(_, at)| *at))
                .max()
                .unwrap_or_else(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("watchers never converged");
}

fn ids() -> Vec<String> {
    (0..WATCHERS).map(|index| format!("pod-{index}")).collect()
}

/// The threshold the service sets for `percentage` of this fleet (which it has seen).
fn threshold(percentage: f64, floor: u32) -> u32 {
    calibrated(share_of(percentage), SEED, &ids(), floor)
}

fn inside(index: usize, threshold: u32) -> bool {
    threshold >= FULL || client_bucket(SEED, &format!("pod-{index}")) < threshold
}

fn rows_max_deviation(largest: &mut f64, deviation: f64) {
    if deviation.abs() > largest.abs() {
        *largest = deviation;
    }
}

fn percentile(mut values: Vec<f64>, fraction: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let index = ((values.len() as f64 - 1.0) * fraction).round() as usize;
    values[index]
}

async fn shares(cluster: &Cluster, channels: &[Channel], histories: &Histories) -> serde_json::Value {
    let targets: Vec<f64> = (1..=9).map(|tenth| f64::from(tenth) * 10.0).collect();
    strategy(
        cluster,
        channels[0].clone(),
        "tenths",
        targets.iter().map(|p| step(*p, None)).collect(),
    )
    .await;
    set_draft(cluster, channels[0].clone(), 2).await;
    let created = deploy(cluster, channels[0].clone(), "tenths", vec![]).await;
    let mut rows = Vec::new();
    let mut within = true;
    let mut floor = 0;
    let mut max_deviation: f64 = 0.0;
    for target in &targets {
        let line = threshold(*target, floor);
        floor = line;
        let paused = wait_for(cluster, channels[0].clone(), &created.name, |d| {
            d.state == pb::deployment::State::Paused as i32 && (d.percentage - target).abs() < 1e-9
        })
        .await;
        let stepped = Instant::now();
        let converged = converge(histories, |index| if inside(index, line) { 2 } else { 1 }).await;
        let on_new = current(histories).iter().filter(|version| **version == 2).count();
        let share = on_new as f64 * 100.0 / WATCHERS as f64;
        within &= (share - target).abs() <= 2.0;
        rows_max_deviation(&mut max_deviation, share - target);
        rows.push(json!({
            "target_percent": target,
            "watchers_on_new_release_percent": share,
            "deviation_points": share - target,
            "converged_after_pause_seen_ms": converged.saturating_duration_since(stepped).as_secs_f64() * 1000.0,
            "percentage_reported": paused.percentage,
        }));
        DeliveryServiceClient::new(channels[0].clone())
            .resume_deployment(cluster.authed(pb::OperateDeploymentRequest {
                name: created.name.clone(),
                reason: String::new(),
            }))
            .await
            .unwrap();
    }
    wait_for(cluster, channels[0].clone(), &created.name, |d| {
        d.state == pb::deployment::State::Complete as i32
    })
    .await;
    converge(histories, |_| 2).await;
    let flipped_back = histories
        .lock()
        .unwrap()
        .iter()
        .filter(|history| history.windows(2).any(|pair| pair[0].0 == 2 && pair[1].0 == 1))
        .count();
    json!({
        "watchers": WATCHERS,
        "replicas": channels.len(),
        "steps": rows,
        "every_step_within_2_points": within,
        "largest_deviation_points": max_deviation,
        "watchers_that_ever_went_back": flipped_back,
    })
}

async fn rollbacks(cluster: &Cluster, channels: &[Channel], histories: &Histories) -> serde_json::Value {
    strategy(
        cluster,
        channels[0].clone(),
        "hold-half",
        vec![step(50.0, Some(3_600_000))],
    )
    .await;
    let mut delays = Vec::new();
    let mut version = 2;
    for round in 0..ROLLBACK_ROUNDS {
        version += 1;
        set_draft(cluster, channels[0].clone(), version).await;
        let gate = pb::Gate {
            name: "errors".into(),
            check: Some(pb::gate::Check::ClientHealth(pb::ClientHealthCheck {
                max_error_rate: 0.05,
                max_relative_increase: 0.0,
                min_sample: 1,
            })),
            interval: Some(pbjson_types::Duration { seconds: 1, nanos: 0 }),
            failure_limit: 0,
            consecutive_successes: 0,
        };
        let created = deploy(cluster, channels[0].clone(), "hold-half", vec![gate]).await;
        let deploying = wait_for(cluster, channels[0].clone(), &created.name, |d| {
            d.state == pb::deployment::State::Deploying as i32
        })
        .await;
        let previous_version = version - 1;
        let line = threshold(50.0, 0);
        converge(
            histories,
            |index| if inside(index, line) { version } else { previous_version },
        )
        .await;
        // The gate starts failing the moment the error reports are acknowledged.
        let failing = Instant::now();
        DeliveryServiceClient::new(channels[round % channels.len()].clone())
            .report_health(cluster.authed(pb::ReportHealthRequest {
                config: "projects/bench/environments/prod/configs/app".into(),
                release: deploying.release,
                ok_count: 10,
                error_count: 90,
            }))
            .await
            .unwrap();
        let back = converge(histories, |_| previous_version).await;
        delays.push(back.saturating_duration_since(failing).as_secs_f64() * 1000.0);
        wait_for(cluster, channels[0].clone(), &created.name, |d| {
            d.state == pb::deployment::State::RolledBack as i32
        })
        .await;
        // The next round deploys a new draft on top of the same served release.
        version = previous_version;
        set_draft(cluster, channels[0].clone(), version).await;
    }
    json!({
        "check_interval_ms": 1000,
        "rounds": ROLLBACK_ROUNDS,
        "watchers": WATCHERS,
        "failure_to_every_watcher_back_ms": {
            "p50": percentile(delays.clone(), 0.5),
            "p99": percentile(delays.clone(), 0.99),
            "max": percentile(delays, 1.0),
        },
        "target_p99_ms": 3000,
    })
}

async fn takeovers(cluster: &mut Cluster) -> serde_json::Value {
    let mut delays = Vec::new();
    let mut wrong_steps = 0;
    let lease_ms = cluster.settings.service.deployments.lease_ms;
    let mut version = 100;
    for round in 0..TAKEOVER_ROUNDS {
        let first = cluster.spawn();
        let first_channel = cluster.channel(first).await;
        if round == 0 {
            let steps = (1..=9).map(|tenth| step(f64::from(tenth) * 10.0, Some(300))).collect();
            strategy(cluster, first_channel.clone(), "tenths-timed", steps).await;
        }
        version += 1;
        set_draft(cluster, first_channel.clone(), version).await;
        let created = deploy(cluster, first_channel.clone(), "tenths-timed", vec![]).await;
        wait_for(cluster, first_channel.clone(), &created.name, |d| {
            d.state == pb::deployment::State::Deploying as i32
        })
        .await;
        let second = cluster.spawn();
        let second_channel = cluster.channel(second).await;
        let kill_at = 10.0 * (1 + round % 5) as f64;
        wait_for(cluster, second_channel.clone(), &created.name, |d| {
            d.percentage >= kill_at
        })
        .await;
        cluster.replicas[first].process.kill();
        let killed = Instant::now();
        let seen = read(cluster, second_channel.clone(), &created.name).await.percentage;
        wait_for(cluster, second_channel.clone(), &created.name, |d| d.percentage > seen).await;
        delays.push(killed.elapsed().as_secs_f64() * 1000.0);
        wait_for(cluster, second_channel.clone(), &created.name, |d| {
            d.state == pb::deployment::State::Complete as i32
        })
        .await;
        let events = DeliveryServiceClient::new(second_channel.clone())
            .list_deployment_events(cluster.authed(pb::ListDeploymentEventsRequest {
                parent: created.name.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .events;
        let shares: Vec<f64> = events
            .iter()
            .filter(|e| e.kind == "percentage_changed")
            .map(|e| e.percentage)
            .collect();
        let expected: Vec<f64> = (1..=10).map(|tenth| f64::from(tenth) * 10.0).collect();
        if shares != expected {
            wrong_steps += 1;
            eprintln!("round {round}: steps {shares:?}");
        }
        cluster.replicas[second].process.kill();
    }
    json!({
        "rounds": TAKEOVER_ROUNDS,
        "lease_ms": lease_ms,
        "kill_to_next_step_by_the_other_replica_ms": {
            "p50": percentile(delays.clone(), 0.5),
            "max": percentile(delays, 1.0),
        },
        "rounds_with_a_step_skipped_or_repeated": wrong_steps,
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut cluster = Cluster::new().await;
        let a = cluster.spawn();
        let b = cluster.spawn();
        let channels = vec![cluster.channel(a).await, cluster.channel(b).await];
        prepare(&cluster, channels[0].clone()).await;
        let histories = start_watchers(&cluster, &channels).await;
        converge(&histories, |_| 1).await;
        // The replicas write down which clients they saw on their next resync; steps are
        // measured against that fleet.
        tokio::time::sleep(Duration::from_millis(2 * cluster.settings.service.resync_interval_ms + 500)).await;
        let shares = shares(&cluster, &channels, &histories).await;
        eprintln!("shares: {shares}");
        let rollbacks = rollbacks(&cluster, &channels, &histories).await;
        eprintln!("rollbacks: {rollbacks}");
        for replica in &mut cluster.replicas {
            replica.process.kill();
        }
        cluster.replicas.clear();
        let takeovers = takeovers(&mut cluster).await;
        eprintln!("takeovers: {takeovers}");
        let report = json!({
            "benchmark": "progressive delivery of a config: shares, rollback on a failing gate, takeover after kill -9",
            "machine": testing::machine(),
            "setup": {
                "storage": "postgresql + redis bus, config-service replicas as processes",
                "load_generator": "this process: 1,000 gRPC Watch streams with client ids, over one connection per replica",
                "driver_tick_ms": cluster.settings.service.deployments.tick_ms,
            },
            "shares_at_each_10_percent_step": shares,
            "rollback_on_a_failing_gate": rollbacks,
            "takeover_after_kill_9": takeovers,
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/delivery.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
        eprintln!("wrote {}", path.display());
    });
}
