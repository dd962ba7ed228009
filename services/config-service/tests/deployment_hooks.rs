//! Deployment hooks through real HTTP and a real realtime-gateway: a pre-start webhook that
//! refuses, and every event announced in order on `$deployments:{project}` and to the
//! deployment's webhooks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    authed,
    deploy::{
        create_strategy, deploy, deployment, in_state, manual_steps, published_and_edited, version_for, wait_for,
    },
    webhook::Webhook,
};
use switchyard_api::{
    config::v1::{self as pb, deployment::State},
    realtime::v1::{HistoryRequest, realtime_service_client::RealtimeServiceClient},
};
use switchyard_platform::{Shutdown, auth::generate_api_key, testing};

#[tokio::test]
async fn a_refusing_pre_start_webhook_stops_the_deployment_before_any_client_sees_it() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let gatekeeper = Webhook::start().await;
    gatekeeper.answer(200, r#"{"allow": false, "reason": "CAB has not approved CHG-42"}"#);
    let notified = Webhook::start().await;
    let request = pb::Deployment {
        pre_start_webhook: gatekeeper.url(),
        notification_webhooks: vec![notified.url()],
        ..deployment("AllAtOnce", vec![])
    };
    let created = deploy(&service, request).await;
    let refused = wait_for(&service, &created.name, in_state(State::RolledBack)).await;
    assert!(refused.reason.contains("CHG-42"), "{}", refused.reason);
    assert_eq!(refused.percentage, 0.0);
    assert_eq!(version_for(&service, "pod-1").await, 1, "nobody was served the release");
    let asked = gatekeeper.received();
    assert_eq!(asked[0]["type"], "deployment_pre_start");
    assert_eq!(asked[0]["release"], 2);
    assert_eq!(asked[0]["previousRelease"], 1);
    let events = notified.wait_for_kind("refused").await;
    let kinds: Vec<&str> = events.iter().map(|body| body["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["queued", "refused"]);
    assert_eq!(events[1]["actor"], "webhook:pre-start");

    // A webhook that errors refuses too, and says how it answered.
    gatekeeper.answer(503, "down for maintenance");
    let created = deploy(
        &service,
        pb::Deployment {
            pre_start_webhook: gatekeeper.url(),
            ..deployment("AllAtOnce", vec![])
        },
    )
    .await;
    let refused = wait_for(&service, &created.name, in_state(State::RolledBack)).await;
    assert!(
        refused.reason.contains("503") && refused.reason.contains("maintenance"),
        "{}",
        refused.reason
    );
    // One that agrees lets it start.
    gatekeeper.answer(200, r#"{"allow": true}"#);
    let created = deploy(
        &service,
        pb::Deployment {
            pre_start_webhook: gatekeeper.url(),
            ..deployment("AllAtOnce", vec![])
        },
    )
    .await;
    wait_for(&service, &created.name, in_state(State::Baking)).await;
    assert_eq!(version_for(&service, "pod-1").await, 2);
}

/// config-service beside a realtime-gateway that shares the services' credential.
#[tokio::test]
async fn every_event_reaches_the_channel_and_the_webhook_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = support::settings_with_keys(dir.path());
    let credential = generate_api_key("switchyard-services", &[]).plaintext;
    let mut gateway_settings = testing::local(realtime_gateway::conf::defaults(), &dir.path().join("gateway"));
    gateway_settings.auth.api_keys = settings.auth.api_keys.clone();
    gateway_settings.auth.key_sync_credential = Some(credential.clone());
    gateway_settings
        .peers
        .insert("config-service".to_owned(), vec!["http://127.0.0.1:9".to_owned()]);
    let gateway_shutdown = Shutdown::new();
    let gateway = realtime_gateway::start(gateway_settings, gateway_shutdown.clone())
        .await
        .unwrap();
    settings.auth.key_sync_credential = Some(credential);
    settings.peers.insert(
        "realtime-gateway".to_owned(),
        vec![format!("http://{}", gateway.grpc_addr)],
    );
    let settings = testing::with_postgres_and_redis(settings).await;
    let service = support::start_with(settings, keys, dir).await;

    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("two", &[25.0, 50.0], 0)).await;
    let notified = Webhook::start().await;
    let created = deploy(
        &service,
        pb::Deployment {
            notification_webhooks: vec![notified.url()],
            ..deployment("two", vec![])
        },
    )
    .await;
    support::deploy::paused_at(&service, &created.name, 25.0).await;
    support::deploy::operate(&service, &created.name, "resume")
        .await
        .unwrap();
    support::deploy::paused_at(&service, &created.name, 50.0).await;
    support::deploy::operate(&service, &created.name, "promote")
        .await
        .unwrap();
    wait_for(&service, &created.name, in_state(State::Complete)).await;

    let posted = notified.wait_for_kind("completed").await;
    let stored = support::deploy::events(&service, &created.name).await;
    let expected: Vec<String> = stored.iter().map(|event| event.kind.clone()).collect();
    let posted_kinds: Vec<String> = posted
        .iter()
        .map(|body| body["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(posted_kinds, expected, "the webhook got every event, in order");
    assert!(expected.contains(&"promoted".to_owned()) && expected.contains(&"resumed".to_owned()));
    let sequences: Vec<u64> = posted.iter().map(|body| body["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, (1..=stored.len() as u64).collect::<Vec<_>>());

    let mut realtime = RealtimeServiceClient::new(testing::grpc_channel(&gateway));
    let mut published = Vec::new();
    for _ in 0..200 {
        published = realtime
            .history(authed(
                &service.keys.admin,
                HistoryRequest {
                    channel: "$deployments:shop".into(),
                    limit: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .publications;
        if published.len() == stored.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let channel_kinds: Vec<String> = published
        .iter()
        .map(|publication| {
            let data = switchyard_platform::proto_json::from_proto_value(publication.data.as_ref().unwrap());
            assert_eq!(data["deployment"], created.name.as_str());
            data["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(channel_kinds, expected, "the channel got every event once, in order");
    gateway_shutdown.trigger();
    gateway.wait().await;
}
