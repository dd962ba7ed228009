//! Publishing through the real gRPC and HTTP interfaces: drafts, releases, history, diff,
//! rollback, promotion and client tracking, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{Service, authed, content, create_yaml, edit, get, publish, shop};
use switchyard_api::config::v1 as pb;
use switchyard_platform::testing;
use tonic::Code;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["port", "replicas"],
  "properties": {
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "replicas": {"type": "integer"},
    "max_replicas": {"type": "integer"},
    "region": {"type": "string"}
  }
}"#;

async fn release_lifecycle(service: Service) {
    shop(&service).await;
    let created = create_yaml(
        &service,
        "checkout",
        "port: 8080\nreplicas: 2\nregion: ${region}\n",
        SCHEMA,
    )
    .await;
    assert_eq!(created.name, "projects/shop/configs/checkout");
    assert_eq!(created.format, pb::Format::Yaml as i32);

    let first = publish(&service, "checkout", "dev").await.unwrap();
    assert_eq!(first.number, 1);
    assert_eq!(first.name, "projects/shop/environments/dev/configs/checkout/releases/1");
    assert!(!first.content_hash.is_empty());

    let served = get(&service, &service.keys.viewer, "checkout", "dev").await.unwrap();
    assert_eq!(
        content(&served),
        json!({"port": 8080, "replicas": 2, "region": "local"})
    );
    assert_eq!(served.release, 1);
    assert_eq!(served.etag, first.content_hash);

    // The same config over HTTP/JSON, as a service without gRPC reads it.
    let http = testing::http(
        "GET",
        &service.http("/v1/projects/shop/environments/dev/configs/checkout"),
        &[("authorization", &format!("Bearer {}", service.keys.viewer))],
        "",
    )
    .await;
    assert_eq!(http.status, 200, "{}", http.text());
    assert_eq!(
        http.json()["content"],
        json!({"port": 8080, "replicas": 2, "region": "local"})
    );
    assert_eq!(http.json()["release"], "1");

    edit(&service, "checkout", "port: 9090\nreplicas: 3\nregion: ${region}\n").await;
    let second = publish(&service, "checkout", "dev").await.unwrap();
    assert_eq!(second.number, 2);
    assert_ne!(second.content_hash, first.content_hash);

    let mut client = service.client();
    let history = client
        .list_releases(authed(
            &service.keys.viewer,
            pb::ListReleasesRequest {
                parent: "projects/shop/environments/dev/configs/checkout".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let numbers: Vec<u64> = history.releases.iter().map(|release| release.number).collect();
    assert_eq!(numbers, vec![2, 1], "newest first");
    assert!(
        history
            .releases
            .iter()
            .all(|release| release.author.starts_with("apikey:")),
        "each release names its publisher"
    );

    let diff = client
        .diff_releases(authed(
            &service.keys.viewer,
            pb::DiffReleasesRequest {
                from: first.name.clone(),
                to: second.name.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<&str> = diff.changes.iter().map(|change| change.path.as_str()).collect();
    assert_eq!(paths, vec!["$.port", "$.replicas"], "only the changed paths");

    let rolled = client
        .rollback_config(authed(
            &service.keys.publisher,
            pb::RollbackConfigRequest {
                name: "projects/shop/environments/dev/configs/checkout".into(),
                release: 1,
                message: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.number, 3, "a rollback is a new release");
    assert_eq!(rolled.content_hash, first.content_hash, "equal to the earlier one");
    assert_eq!(rolled.source, first.name);
    let served = get(&service, &service.keys.viewer, "checkout", "dev").await.unwrap();
    assert_eq!(served.release, 3);
    assert_eq!(content(&served)["port"], 8080);

    // Promotion carries release 3's content to staging, resolved with staging's variables.
    let promoted = client
        .promote_release(authed(
            &service.keys.publisher,
            pb::PromoteReleaseRequest {
                name: rolled.name.clone(),
                message: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        promoted.name,
        "projects/shop/environments/staging/configs/checkout/releases/1"
    );
    let staging = get(&service, &service.keys.viewer, "checkout", "staging")
        .await
        .unwrap();
    assert_eq!(
        content(&staging),
        json!({"port": 8080, "replicas": 2, "region": "ap-south-1"})
    );

    // Diff between environments: what differs between dev and staging now.
    let across = client
        .diff_releases(authed(
            &service.keys.viewer,
            pb::DiffReleasesRequest {
                from: "projects/shop/environments/dev/configs/checkout".into(),
                to: "projects/shop/environments/staging/configs/checkout".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(across.changes.len(), 1);
    assert_eq!(across.changes[0].path, "$.region");

    // Who holds which release: a client on release 3, then the config moves on.
    let mut request = pb::GetConfigRequest {
        name: "projects/shop/environments/dev/configs/checkout".into(),
        client_service: "cart".into(),
        client_instance: "cart-7f9c".into(),
        ..Default::default()
    };
    client
        .get_config(authed(&service.keys.viewer, request.clone()))
        .await
        .unwrap();
    request.client_instance = "cart-2b1a".into();
    client
        .get_config(authed(&service.keys.viewer, request.clone()))
        .await
        .unwrap();
    edit(&service, "checkout", "port: 7070\nreplicas: 3\n").await;
    publish(&service, "checkout", "dev").await.unwrap();
    client.get_config(authed(&service.keys.viewer, request)).await.unwrap();
    let clients = client
        .list_config_clients(authed(
            &service.keys.viewer,
            pb::ListConfigClientsRequest {
                name: "projects/shop/environments/dev/configs/checkout".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(clients.current_release, 4);
    assert_eq!(clients.fetch_count, 3);
    let stale: Vec<(&str, bool)> = clients
        .clients
        .iter()
        .map(|client| (client.instance.as_str(), client.stale))
        .collect();
    assert_eq!(
        stale,
        vec![("cart-2b1a", false), ("cart-7f9c", true)],
        "who is still on the old release"
    );
}

#[tokio::test]
async fn releases_history_diff_rollback_promotion_on_sqlite() {
    release_lifecycle(support::sqlite().await).await;
}

#[tokio::test]
async fn releases_history_diff_rollback_promotion_on_postgres() {
    release_lifecycle(support::postgres().await).await;
}

#[tokio::test]
async fn a_failing_publish_reports_every_violation_and_changes_nothing() {
    let service = support::sqlite().await;
    shop(&service).await;
    let mut client = service.client();
    client
        .create_config(authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: "checkout".into(),
                config: Some(pb::Config {
                    format: pb::Format::Json as i32,
                    content: r#"{"port": 8080, "replicas": 2, "max_replicas": 4}"#.into(),
                    schema: SCHEMA.into(),
                    rules: vec![pb::Rule {
                        expression: "config.replicas <= config.max_replicas".into(),
                        message: "replicas must not exceed max_replicas".into(),
                    }],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    publish(&service, "checkout", "dev").await.unwrap();

    edit(
        &service,
        "checkout",
        r#"{"port": 70000, "replicas": 9, "max_replicas": 4}"#,
    )
    .await;
    let validated = client
        .validate_config(authed(
            &service.keys.viewer,
            pb::ValidateConfigRequest {
                name: "projects/shop/configs/checkout".into(),
                environment: "dev".into(),
                content: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!validated.valid);
    let found: Vec<(&str, &str)> = validated
        .violations
        .iter()
        .map(|violation| (violation.path.as_str(), violation.source.as_str()))
        .collect();
    assert_eq!(found, vec![("$.port", "schema"), ("$", "rule")]);

    let refused = publish(&service, "checkout", "dev").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&refused);
    let violations = details
        .bad_request()
        .expect("field violations")
        .field_violations
        .clone();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert_eq!(violations[0].field, "$.port");
    assert!(
        violations[1]
            .description
            .contains("replicas must not exceed max_replicas")
    );

    let served = get(&service, &service.keys.viewer, "checkout", "dev").await.unwrap();
    assert_eq!(served.release, 1, "nothing was published");
    assert_eq!(content(&served)["port"], 8080);

    // Validate a candidate without storing it.
    let candidate = client
        .validate_config(authed(
            &service.keys.viewer,
            pb::ValidateConfigRequest {
                name: "projects/shop/configs/checkout".into(),
                environment: "dev".into(),
                content: Some(r#"{"port": 80, "replicas": 1, "max_replicas": 4}"#.into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(candidate.valid, "{:?}", candidate.violations);
}

#[tokio::test]
async fn roles_separate_editing_from_publishing_and_tenants_do_not_see_each_other() {
    let service = support::sqlite().await;
    shop(&service).await;
    create_yaml(&service, "checkout", "port: 1\nreplicas: 1\n", "").await;
    let mut client = service.client();
    let publish_as = |key: &str| {
        authed(
            key,
            pb::PublishConfigRequest {
                name: "projects/shop/configs/checkout".into(),
                environment: "dev".into(),
                ..Default::default()
            },
        )
    };
    let denied = client
        .publish_config(publish_as(&service.keys.editor))
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "editors edit, publishers publish"
    );
    let denied = client
        .create_config(authed(
            &service.keys.viewer,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: "x".into(),
                config: Some(pb::Config::default()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    client
        .publish_config(publish_as(&service.keys.publisher))
        .await
        .unwrap();

    let hidden = get(&service, &service.keys.other_tenant, "checkout", "dev")
        .await
        .unwrap_err();
    assert_eq!(
        hidden.code(),
        Code::NotFound,
        "another tenant's project does not exist for it"
    );
    let unauthenticated = client
        .get_project(tonic::Request::new(pb::GetProjectRequest {
            name: "projects/shop".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn bad_input_gets_a_precise_error_and_changes_nothing() {
    let service = support::sqlite().await;
    shop(&service).await;
    let created = create_yaml(&service, "checkout", "port: 1\nreplicas: 1\n", "").await;
    let mut client = service.client();

    let create = |id: &str, format: pb::Format, content: &str| {
        authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: id.into(),
                config: Some(pb::Config {
                    format: format as i32,
                    content: content.into(),
                    ..Default::default()
                }),
            },
        )
    };
    let malformed = client
        .create_config(create("broken", pb::Format::Json, "{\"a\": "))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(malformed.message().contains("content"), "{}", malformed.message());
    let yaml = client
        .create_config(create("broken", pb::Format::Yaml, "a: [1, 2\nb: c"))
        .await
        .unwrap_err();
    assert_eq!(yaml.code(), Code::InvalidArgument);
    let duplicate = client
        .create_config(create("broken", pb::Format::Json, r#"{"a": 1, "a": 2}"#))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::InvalidArgument);
    let injection = client
        .create_config(create("x'; DROP TABLE configs; --", pb::Format::Json, "{}"))
        .await
        .unwrap_err();
    assert_eq!(injection.code(), Code::InvalidArgument);
    let oversized = "x".repeat(2 * 1024 * 1024);
    let too_big = client
        .create_config(create("big", pb::Format::Text, &oversized))
        .await
        .unwrap_err();
    assert!(
        matches!(
            too_big.code(),
            Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange
        ),
        "{too_big:?}"
    );

    // A concurrent edit: the second writer's etag is stale.
    let mut first = created.clone();
    first.content = "port: 2\nreplicas: 1\n".into();
    client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(first) },
        ))
        .await
        .unwrap();
    let mut second = created.clone();
    second.content = "port: 3\nreplicas: 1\n".into();
    let conflict = client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(second) },
        ))
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::Aborted, "wrong etag");

    // Unknown fields and wrong types over HTTP are refused before anything runs.
    let auth = format!("Bearer {}", service.keys.editor);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let unknown = testing::http(
        "POST",
        &service.http("/v1/projects/shop/configs?configId=y"),
        &headers,
        r#"{"content": "{}", "colour": "blue"}"#,
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    let wrong_type = testing::http(
        "POST",
        &service.http("/v1/projects/shop/configs?configId=y"),
        &headers,
        r#"{"content": 42, "format": "FORMAT_JSON"}"#,
    )
    .await;
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.text());

    let drafts = client
        .list_configs(authed(
            &service.keys.viewer,
            pb::ListConfigsRequest {
                parent: "projects/shop".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = drafts.configs.iter().map(|config| config.name.as_str()).collect();
    assert_eq!(ids, vec!["projects/shop/configs/checkout"], "nothing else was created");
    assert_eq!(drafts.configs[0].content, "port: 2\nreplicas: 1\n");
}
