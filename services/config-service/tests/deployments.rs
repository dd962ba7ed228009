//! Progressive delivery of a config release through the real gRPC API, on SQLite and on
//! PostgreSQL: the share of clients on the new release follows the steps, no client ever
//! flips back, watchers get the release meant for them, and completion, stop and revert serve
//! everyone the right release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::HashSet, time::Duration};

use futures::StreamExt;
use support::{
    Service, authed,
    deploy::{
        CONFIG, create_strategy, deploy, deployment, events, fleet, in_state, manual_steps, operate, paused_at,
        published_and_edited, sightings_recorded, version_for, wait_for,
    },
    publish,
};
use switchyard_api::config::v1::{self as pb, deployment::State};
use tonic::Code;

const CLIENTS: usize = 1000;

fn client_ids() -> Vec<String> {
    (0..CLIENTS).map(|n| format!("pod-{n}")).collect()
}

/// Which clients are on the new release now.
async fn on_new_release(service: &Service) -> HashSet<String> {
    let mut on_new = HashSet::new();
    for id in client_ids() {
        if version_for(service, &id).await == 2 {
            on_new.insert(id);
        }
    }
    on_new
}

async fn shares_follow_the_steps_and_no_client_flips_back(service: Service) {
    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("tenths", &[10.0, 30.0, 60.0], 0)).await;
    // The fleet reads the config once before the deployment: each step is then measured
    // against it, and gets exactly its share of it.
    assert!(on_new_release(&service).await.is_empty());
    sightings_recorded(&service, CLIENTS as i64).await;
    let created = deploy(&service, deployment("tenths", vec![])).await;
    assert_eq!(created.state, State::Queued as i32);
    assert_eq!(created.release, 2, "the draft was staged as release 2");

    let mut previous: HashSet<String> = HashSet::new();
    for target in [10.0, 30.0, 60.0] {
        let current = paused_at(&service, &created.name, target).await;
        assert_eq!(current.previous_release, 1);
        let on_new = on_new_release(&service).await;
        let share = on_new.len() as f64 * 100.0 / CLIENTS as f64;
        assert!(
            (share - target).abs() <= 0.1,
            "{share}% of clients on the new release at step {target}%"
        );
        assert!(
            previous.is_subset(&on_new),
            "a client went back to the old release at {target}%"
        );
        previous = on_new;
        operate(&service, &created.name, "resume").await.unwrap();
    }
    let done = wait_for(&service, &created.name, in_state(State::Complete)).await;
    assert_eq!(done.percentage, 100.0);
    assert_eq!(on_new_release(&service).await.len(), CLIENTS);
    assert_eq!(
        version_for(&service, "").await,
        2,
        "a client without an id gets the release once it is everyone's"
    );
    let kinds: Vec<String> = events(&service, &created.name)
        .await
        .into_iter()
        .filter(|event| event.kind == "percentage_changed")
        .map(|event| event.percentage.to_string())
        .collect();
    assert_eq!(kinds, ["10", "30", "60", "100"], "each step happened once, in order");
    // The completed release is the config's release now: a publication builds on it.
    support::edit(&service, "checkout", "version: 3\n").await;
    let release = publish(&service, "checkout", "prod").await.unwrap();
    assert_eq!(release.number, 3);
}

#[tokio::test]
async fn shares_follow_the_steps_on_sqlite() {
    shares_follow_the_steps_and_no_client_flips_back(fleet(false).await).await;
}

#[tokio::test]
async fn shares_follow_the_steps_on_postgres() {
    shares_follow_the_steps_and_no_client_flips_back(fleet(true).await).await;
}

async fn watch(service: &Service, client_id: &str) -> tonic::Streaming<pb::WatchResponse> {
    service
        .client()
        .watch(authed(
            &service.keys.viewer,
            pb::WatchRequest {
                parent: support::deploy::ENV.into(),
                client_id: client_id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn next_version(stream: &mut tonic::Streaming<pb::WatchResponse>) -> i64 {
    let response = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a watch response")
        .expect("the stream is open")
        .expect("not an error");
    let config = &response.configs[0];
    serde_json::from_str::<serde_json::Value>(&config.text).unwrap()["version"]
        .as_i64()
        .unwrap()
}

/// Watchers get the release meant for them: one inside the first step's share switches at
/// that step, one outside it stays until the deployment reaches it, and a stop brings both
/// back at once.
async fn watchers_get_their_side(service: Service) {
    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("half", &[50.0], 0)).await;
    let created = deploy(&service, deployment("half", vec![])).await;
    paused_at(&service, &created.name, 50.0).await;
    // A client id on either side of 50% for this seed.
    let mut inside = None;
    let mut outside = None;
    for id in client_ids() {
        match version_for(&service, &id).await {
            2 if inside.is_none() => inside = Some(id),
            1 if outside.is_none() => outside = Some(id),
            _ => {}
        }
    }
    let (inside, outside) = (inside.unwrap(), outside.unwrap());
    let mut inside_watch = watch(&service, &inside).await;
    let mut outside_watch = watch(&service, &outside).await;
    assert_eq!(next_version(&mut inside_watch).await, 2);
    assert_eq!(next_version(&mut outside_watch).await, 1);
    operate(&service, &created.name, "stop").await.unwrap();
    assert_eq!(next_version(&mut inside_watch).await, 1, "stopped: back on release 1");
    let stopped = read_state(&service, &created.name).await;
    assert_eq!(stopped, State::RolledBack as i32);
    // The outside watcher never saw release 2; its next message is the next real change.
    support::edit(&service, "checkout", "version: 4\n").await;
    publish(&service, "checkout", "prod").await.unwrap();
    let next = next_version(&mut outside_watch).await;
    assert_eq!(next, 4, "the outside watcher was not sent anything in between");
}

async fn read_state(service: &Service, name: &str) -> i32 {
    support::deploy::read(service, name).await.state
}

#[tokio::test]
async fn watchers_get_their_side_on_sqlite() {
    watchers_get_their_side(fleet(false).await).await;
}

#[tokio::test]
async fn watchers_get_their_side_on_postgres() {
    watchers_get_their_side(fleet(true).await).await;
}

#[tokio::test]
async fn publishing_during_a_deployment_is_refused_and_later_deployments_queue() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("manual", &[20.0], 0)).await;
    let first = deploy(&service, deployment("manual", vec![])).await;
    paused_at(&service, &first.name, 20.0).await;

    let refused = publish(&service, "checkout", "prod").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("being deployed"), "{}", refused.message());

    support::edit(&service, "checkout", "version: 3\n").await;
    let second = deploy(&service, deployment("AllAtOnce", vec![])).await;
    assert_eq!(second.release, 3);
    let queued = support::deploy::read(&service, &second.name).await;
    assert_eq!(queued.state, State::Queued as i32, "waits for the active deployment");

    operate(&service, &first.name, "promote").await.unwrap();
    wait_for(&service, &first.name, in_state(State::Complete)).await;
    let started = wait_for(&service, &second.name, in_state(State::Baking)).await;
    assert_eq!(
        started.previous_release, 2,
        "the second starts from what the first completed"
    );
    assert_eq!(version_for(&service, "anyone").await, 3);
}

#[tokio::test]
async fn a_completed_deployment_reverts_at_once_and_only_once() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("manual", &[20.0], 0)).await;
    let created = deploy(&service, deployment("manual", vec![])).await;
    paused_at(&service, &created.name, 20.0).await;
    let refused = operate(&service, &created.name, "revert").await.unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "only a completed deployment reverts"
    );
    operate(&service, &created.name, "resume").await.unwrap();
    wait_for(&service, &created.name, in_state(State::Complete)).await;
    assert_eq!(version_for(&service, "pod-1").await, 2);

    let reverted = operate(&service, &created.name, "revert").await.unwrap();
    assert_eq!(reverted.state, State::Reverted as i32);
    assert_eq!(version_for(&service, "pod-1").await, 1);
    assert_eq!(version_for(&service, "").await, 1);
    let again = operate(&service, &created.name, "revert").await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let log: Vec<String> = events(&service, &created.name)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(log.last().map(String::as_str), Some("reverted"));
    assert!(log.contains(&"resumed".to_owned()));
    let actors: Vec<String> = events(&service, &created.name)
        .await
        .into_iter()
        .map(|e| e.actor)
        .collect();
    assert!(
        actors.iter().any(|actor| actor.starts_with("apikey:")),
        "people are named: {actors:?}"
    );
    assert!(
        actors.iter().any(|actor| actor == "driver"),
        "scheduled moves are the driver's: {actors:?}"
    );
}

#[tokio::test]
async fn the_config_resource_names_the_live_release_for_a_client_and_unknown_clients_stay() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    create_strategy(&service, manual_steps("manual", &[99.0], 0)).await;
    let created = deploy(&service, deployment("manual", vec![])).await;
    paused_at(&service, &created.name, 99.0).await;
    assert_eq!(version_for(&service, "").await, 1, "no id, no new release before 100%");
    let resolved = service
        .client()
        .get_config(authed(
            &service.keys.viewer,
            pb::GetConfigRequest {
                name: CONFIG.into(),
                client_instance: "instance-7".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let by_instance = resolved.release;
    assert_eq!(
        by_instance as i64,
        version_for(&service, "instance-7").await,
        "client_instance stands in for client_id"
    );
    let too_long = service
        .client()
        .get_config(authed(
            &service.keys.viewer,
            pb::GetConfigRequest {
                name: CONFIG.into(),
                client_id: "x".repeat(257),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument);
    assert!(too_long.message().contains("client_id"));
}
