//! Templates and inheritance: bases, environment overlays, variables, cycles, dependents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{authed, content, get, publish, shop};
use switchyard_api::config::v1 as pb;
use tonic::Code;

async fn create(
    service: &support::Service,
    id: &str,
    content: &str,
    extends: &[&str],
    overlays: &[(&str, &str)],
) -> Result<pb::Config, tonic::Status> {
    service
        .client()
        .create_config(authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: id.into(),
                config: Some(pb::Config {
                    format: pb::Format::Json as i32,
                    content: content.into(),
                    extends: extends.iter().map(|base| (*base).to_owned()).collect(),
                    overlays: overlays
                        .iter()
                        .map(|(env, text)| ((*env).to_owned(), (*text).to_owned()))
                        .collect(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

#[tokio::test]
async fn bases_overlays_and_variables_resolve_with_documented_merge_rules() {
    let service = support::sqlite().await;
    shop(&service).await;
    create(
        &service,
        "base",
        r#"{"db": {"host": "db.${region}.internal", "pool": 10, "debug": true}, "hosts": ["a", "b"], "timeout_ms": 500}"#,
        &[],
        &[],
    )
    .await
    .unwrap();
    create(
        &service,
        "checkout",
        r#"{"db": {"pool": 20, "debug": null}, "hosts": ["c"], "name": "checkout-${region}"}"#,
        &["base"],
        &[("prod", r#"{"db": {"pool": 50}, "timeout_ms": 250}"#)],
    )
    .await
    .unwrap();

    let refused = publish(&service, "checkout", "prod").await.unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "the base is not published in prod yet"
    );
    assert!(refused.message().contains("base"), "{}", refused.message());

    publish(&service, "base", "prod").await.unwrap();
    publish(&service, "checkout", "prod").await.unwrap();
    let resolved = get(&service, &service.keys.viewer, "checkout", "prod").await.unwrap();
    assert_eq!(
        content(&resolved),
        json!({
            "db": {"host": "db.ap-southeast-1.internal", "pool": 50},
            "hosts": ["c"],
            "name": "checkout-ap-southeast-1",
            "timeout_ms": 250
        }),
        "objects merge, arrays replace, null deletes, the overlay wins, variables fill in"
    );

    // The raw view is the config's own published text.
    let raw = service
        .client()
        .get_config(authed(
            &service.keys.viewer,
            pb::GetConfigRequest {
                name: "projects/shop/environments/prod/configs/checkout".into(),
                view: pb::View::Raw as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(raw.text.contains("checkout-${region}"), "{}", raw.text);
}

#[tokio::test]
async fn cycles_are_refused_with_the_path() {
    let service = support::sqlite().await;
    shop(&service).await;
    create(&service, "a", "{}", &[], &[]).await.unwrap();
    create(&service, "b", "{}", &["a"], &[]).await.unwrap();
    let mut client = service.client();
    let mut a = client
        .get_config_draft(authed(
            &service.keys.editor,
            pb::GetConfigDraftRequest {
                name: "projects/shop/configs/a".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    a.extends = vec!["b".into()];
    let cycle = client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(a) },
        ))
        .await
        .unwrap_err();
    assert_eq!(cycle.code(), Code::InvalidArgument);
    assert!(cycle.message().contains("cycle"), "{}", cycle.message());
    let itself = create(&service, "c", "{}", &["c"], &[]).await.unwrap_err();
    assert_eq!(itself.code(), Code::InvalidArgument);
    let missing = create(&service, "d", "{}", &["nope"], &[]).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn publishing_a_base_re_resolves_its_dependents_and_says_who_they_are() {
    let service = support::sqlite().await;
    shop(&service).await;
    create(&service, "base", r#"{"feature": {"limit": 1}}"#, &[], &[])
        .await
        .unwrap();
    create(&service, "middle", r#"{"middle": true}"#, &["base"], &[])
        .await
        .unwrap();
    create(&service, "leaf", r#"{"leaf": true}"#, &["middle"], &[])
        .await
        .unwrap();
    for config in ["base", "middle", "leaf"] {
        publish(&service, config, "dev").await.unwrap();
    }
    let dependents = service
        .client()
        .list_dependents(authed(
            &service.keys.viewer,
            pb::ListDependentsRequest {
                name: "projects/shop/configs/base".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let found: Vec<(&str, bool)> = dependents
        .dependents
        .iter()
        .map(|dependent| (dependent.config.as_str(), dependent.direct))
        .collect();
    assert_eq!(
        found,
        vec![
            ("projects/shop/configs/middle", true),
            ("projects/shop/configs/leaf", false)
        ]
    );

    let before = get(&service, &service.keys.viewer, "leaf", "dev").await.unwrap();
    support::edit(&service, "base", r#"{"feature": {"limit": 5}}"#).await;
    publish(&service, "base", "dev").await.unwrap();
    let after = get(&service, &service.keys.viewer, "leaf", "dev").await.unwrap();
    assert_eq!(
        content(&after),
        json!({"feature": {"limit": 5}, "middle": true, "leaf": true})
    );
    assert_eq!(
        after.release, before.release,
        "re-resolution is not a new release of the leaf"
    );
    assert!(after.revision > before.revision);
    assert_ne!(after.etag, before.etag);
}

#[tokio::test]
async fn extending_a_config_of_another_project_needs_the_right_to_read_it() {
    let service = support::sqlite().await;
    shop(&service).await;
    let mut client = service.client();
    client
        .create_project(authed(
            &service.keys.admin,
            pb::CreateProjectRequest {
                project_id: "payments".into(),
                project: None,
                environment_ids: vec!["dev".into()],
            },
        ))
        .await
        .unwrap();
    client
        .create_config(authed(
            &service.keys.admin,
            pb::CreateConfigRequest {
                parent: "projects/payments".into(),
                config_id: "keys".into(),
                config: Some(pb::Config {
                    content: r#"{"merchant": "m-1"}"#.into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let denied = client
        .create_config(authed(
            &service.keys.shop_editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: "thief".into(),
                config: Some(pb::Config {
                    content: "{}".into(),
                    extends: vec!["projects/payments/configs/keys".into()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

async fn publish_as(service: &support::Service, config: &str) -> Result<pb::Release, tonic::Status> {
    publish(service, config, "dev").await
}

#[tokio::test]
async fn concurrent_publications_of_a_base_and_its_dependent_never_serve_a_stale_mix() {
    let service = support::postgres().await;
    shop(&service).await;
    create(&service, "base", r#"{"base": 0}"#, &[], &[]).await.unwrap();
    create(&service, "child", r#"{"child": 0}"#, &["base"], &[])
        .await
        .unwrap();
    publish_as(&service, "base").await.unwrap();
    publish_as(&service, "child").await.unwrap();
    for round in 1..=8 {
        support::edit(&service, "base", &format!(r#"{{"base": {round}}}"#)).await;
        support::edit(&service, "child", &format!(r#"{{"child": {round}}}"#)).await;
        let (base, child) = tokio::join!(publish_as(&service, "base"), publish_as(&service, "child"));
        base.unwrap();
        child.unwrap();
        let served = get(&service, &service.keys.viewer, "child", "dev").await.unwrap();
        assert_eq!(
            content(&served),
            json!({"base": round, "child": round}),
            "round {round}: the child serves both latest publications"
        );
    }
}

#[tokio::test]
async fn diamond_inheritance_re_resolves_bases_before_the_configs_that_extend_them() {
    let service = support::sqlite().await;
    shop(&service).await;
    create(&service, "b", r#"{"x": 1}"#, &[], &[]).await.unwrap();
    create(&service, "c", r#"{"c": true}"#, &["b"], &[]).await.unwrap();
    // `a` sorts before `c`, and extends both: `c` must be fresh when `a` is resolved.
    create(&service, "a", r#"{"a": true}"#, &["b", "c"], &[]).await.unwrap();
    for config in ["b", "c", "a"] {
        publish(&service, config, "dev").await.unwrap();
    }
    support::edit(&service, "b", r#"{"x": 2}"#).await;
    publish(&service, "b", "dev").await.unwrap();
    let a = get(&service, &service.keys.viewer, "a", "dev").await.unwrap();
    assert_eq!(content(&a), json!({"x": 2, "c": true, "a": true}));
}

#[tokio::test]
async fn variables_that_would_make_a_served_config_invalid_are_refused_and_change_nothing() {
    let service = support::sqlite().await;
    shop(&service).await;
    let schema = r#"{"properties": {"region": {"enum": ["local", "ap-south-1", "ap-southeast-1"]}}}"#;
    support::create_yaml(&service, "app", "region: ${region}\n", schema).await;
    publish(&service, "app", "dev").await.unwrap();
    let mut client = service.client();
    let name = "projects/shop/environments/dev".to_owned();
    let before = client
        .get_environment(authed(
            &service.keys.viewer,
            pb::GetEnvironmentRequest { name: name.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    let refused = client
        .update_environment(authed(
            &service.keys.admin,
            pb::UpdateEnvironmentRequest {
                name: name.clone(),
                variables: [("region".to_owned(), "mars".to_owned())].into_iter().collect(),
                etag: before.etag.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let after = client
        .get_environment(authed(
            &service.keys.viewer,
            pb::GetEnvironmentRequest { name: name.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before, "variables, etag and revision unchanged");
    let served = get(&service, &service.keys.viewer, "app", "dev").await.unwrap();
    assert_eq!(content(&served)["region"], "local");

    // A valid change re-resolves what the environment serves, in the same step.
    let changed = client
        .update_environment(authed(
            &service.keys.admin,
            pb::UpdateEnvironmentRequest {
                name,
                variables: [("region".to_owned(), "ap-south-1".to_owned())].into_iter().collect(),
                etag: before.etag,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.revision, before.revision + 1);
    let served = get(&service, &service.keys.viewer, "app", "dev").await.unwrap();
    assert_eq!(content(&served)["region"], "ap-south-1");
}
