//! Crash and outage behaviour: an acknowledged release survives `kill -9`, and replicas keep
//! serving through a Redis outage and resume cross-replica pushes when Redis returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use support::{authed, create_yaml, shop};
use switchyard_api::config::v1::{self as pb, config_service_client::ConfigServiceClient};
use switchyard_platform::testing::{self, PrivateRedis, ServiceProcess};

async fn client(url: &str) -> ConfigServiceClient<tonic::transport::Channel> {
    for _ in 0..50 {
        if let Ok(client) = ConfigServiceClient::connect(url.to_owned()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {url}");
}

#[tokio::test]
async fn every_acknowledged_release_survives_kill_9_during_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = support::settings_with_keys(dir.path());
    let mut settings = testing::with_postgres_and_redis(settings).await;
    settings.redis_url = None;
    let binary = env!("CARGO_BIN_EXE_config-service");
    let mut process = ServiceProcess::spawn(binary, &settings, dir.path());
    let mut admin = client(&process.grpc_url).await;
    admin
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
    admin
        .create_config(authed(
            &keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: "app".into(),
                config: Some(pb::Config {
                    content: r#"{"port": 1}"#.into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();

    // Four publishers in a loop; the process is killed while they run.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut publishers = Vec::new();
    for _ in 0..4 {
        let mut client = admin.clone();
        let acknowledged = acknowledged.clone();
        let key = keys.publisher.clone();
        publishers.push(tokio::spawn(async move {
            loop {
                let request = authed(
                    &key,
                    pb::PublishConfigRequest {
                        name: "projects/shop/configs/app".into(),
                        environment: "prod".into(),
                        message: "burst".into(),
                        etag: String::new(),
                    },
                );
                match client.publish_config(request).await {
                    Ok(release) => acknowledged.lock().unwrap().push(release.into_inner().number),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    process.kill();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "the burst published something: {}",
        acknowledged.len()
    );

    let mut restarted = ServiceProcess::spawn(binary, &settings, dir.path());
    let mut client = client(&restarted.grpc_url).await;
    let mut stored = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_releases(authed(
                &keys.viewer,
                pb::ListReleasesRequest {
                    parent: "projects/shop/environments/prod/configs/app".into(),
                    page_size: 500,
                    page_token: token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        stored.extend(page.releases.iter().map(|release| (release.number, release.revision)));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    stored.sort();
    let numbers: Vec<u64> = stored.iter().map(|(number, _)| *number).collect();
    for number in &acknowledged {
        assert!(numbers.contains(number), "acknowledged release {number} was lost");
    }
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "numbers are contiguous: no half-written release");
    let revisions: Vec<u64> = stored.iter().map(|(_, revision)| *revision).collect();
    assert_eq!(revisions, expected, "each release took exactly one revision");
    let current = client
        .get_config(authed(
            &keys.viewer,
            pb::GetConfigRequest {
                name: "projects/shop/environments/prod/configs/app".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        current.release,
        numbers.len() as u64,
        "the environment serves the last release"
    );
    let chain = client
        .verify_audit_chain(authed(&keys.admin, pb::VerifyAuditChainRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(chain.intact, "{}", chain.problem);
    assert_eq!(
        chain.records_checked,
        2 + numbers.len() as u64,
        "one audit record per release, same transaction"
    );
    restarted.kill();
}

async fn next(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next());
    next.await.expect("a response in time").unwrap().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn replicas_serve_through_a_redis_outage_and_resume_pushing_when_it_returns() {
    let port = free_port();
    let mut redis = PrivateRedis::on_port(port).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = support::settings_with_keys(dir.path());
    let mut settings = testing::with_postgres_and_redis(settings).await;
    settings.redis_url = Some(redis.url());
    settings.service.resync_interval_ms = 600_000; // only the bus may carry changes here
    let first = support::start_with(settings.clone(), keys.clone(), tempfile::tempdir().unwrap()).await;
    let second = support::start_with(settings, keys, tempfile::tempdir().unwrap()).await;
    shop(&first).await;
    create_yaml(&first, "app", "port: 1\n", "").await;
    support::publish(&first, "app", "dev").await.unwrap();

    let watch = |service: &support::Service| {
        let mut client = service.client();
        let key = service.keys.viewer.clone();
        async move {
            client
                .watch(authed(
                    &key,
                    pb::WatchRequest {
                        parent: "projects/shop/environments/dev".into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut local = watch(&first).await;
    let mut remote = watch(&second).await;
    assert!(next(&mut local).await.snapshot);
    assert!(next(&mut remote).await.snapshot);

    redis.stop();
    support::edit(&first, "app", "port: 2\n").await;
    let during = support::publish(&first, "app", "dev")
        .await
        .expect("publishing does not need Redis");
    let change = next(&mut local).await;
    assert_eq!(change.revision, during.revision, "local watchers keep working");
    let read = support::get(&second, &second.keys.viewer, "app", "dev")
        .await
        .expect("reads keep working");
    assert_eq!(read.release, 1, "the other replica has not heard yet");

    let mut redis = PrivateRedis::on_port(port).await;
    // Once the replica has resubscribed it catches up on what it missed, then follows live.
    let caught_up = next(&mut remote).await;
    assert_eq!(caught_up.revision, during.revision);
    support::edit(&first, "app", "port: 3\n").await;
    let after = support::publish(&first, "app", "dev").await.unwrap();
    let pushed = next(&mut remote).await;
    assert_eq!(pushed.revision, after.revision, "cross-replica propagation resumed");
    redis.stop();
}
