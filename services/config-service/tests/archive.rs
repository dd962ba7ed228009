//! Backup and restore: export a project, import it elsewhere, and get the same project back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Service, authed, content, get, publish, shop};
use switchyard_api::config::v1 as pb;
use tonic::Code;

async fn populate(service: &Service) {
    shop(service).await;
    let mut client = service.client();
    let configs = [
        (
            "base",
            r#"{"db": {"pool": 5, "password": {"$secret": "s3cret-pa55"}}}"#,
            vec![],
            "db",
        ),
        ("app", r#"{"name": "app-${region}"}"#, vec!["base".to_owned()], "app"),
    ];
    for (id, text, extends, team) in configs {
        client
            .create_config(authed(
                &service.keys.editor,
                pb::CreateConfigRequest {
                    parent: "projects/shop".into(),
                    config_id: id.into(),
                    config: Some(pb::Config {
                        format: pb::Format::Json as i32,
                        content: text.into(),
                        extends,
                        labels: [("team".to_owned(), team.to_owned())].into_iter().collect(),
                        schema: r#"{"type": "object"}"#.into(),
                        rules: vec![pb::Rule {
                            expression: "size(config) > 0".into(),
                            message: "not empty".into(),
                        }],
                        overlays: [("prod".to_owned(), r#"{"tier": "gold"}"#.to_owned())]
                            .into_iter()
                            .collect(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }
    for environment in ["dev", "prod"] {
        publish(service, "base", environment).await.unwrap();
        publish(service, "app", environment).await.unwrap();
    }
    support::edit(
        service,
        "base",
        r#"{"db": {"pool": 9, "password": {"$secret": "s3cret-pa55"}}}"#,
    )
    .await;
    publish(service, "base", "dev").await.unwrap();
}

async fn export(service: &Service, key: &str, project: &str) -> Result<pb::ProjectArchive, tonic::Status> {
    service
        .client()
        .export_project(authed(
            key,
            pb::ExportProjectRequest {
                name: format!("projects/{project}"),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

/// An archive with its project renamed, so two exports of different projects compare.
fn renamed(mut archive: pb::ProjectArchive, to: &str) -> pb::ProjectArchive {
    let text = serde_json::to_string(&archive).unwrap();
    let from = archive.project.as_ref().unwrap().name.clone();
    let text = text
        .replace(&format!("\"{from}/"), &format!("\"projects/{to}/"))
        .replace(&format!("\"{from}\""), &format!("\"projects/{to}\""));
    archive = serde_json::from_str(&text).unwrap();
    archive
}

async fn round_trip(source: Service, target: Service) {
    populate(&source).await;
    let denied = export(&source, &source.keys.publisher, "shop").await.unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "archives carry secrets: admins only"
    );
    let archive = export(&source, &source.keys.admin, "shop").await.unwrap();
    assert_eq!(archive.releases.len(), 5);

    // Into another instance (and backend), under another name.
    let imported = target
        .client()
        .import_project(authed(
            &target.keys.admin,
            pb::ImportProjectRequest {
                archive: Some(archive.clone()),
                project_id: "shop-copy".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.name, "projects/shop-copy");
    let again = export(&target, &target.keys.admin, "shop-copy").await.unwrap();
    assert_eq!(renamed(again, "shop"), archive, "the round trip is lossless");
    let history = target
        .client()
        .list_releases(authed(
            &target.keys.admin,
            pb::ListReleasesRequest {
                parent: "projects/shop-copy/environments/dev/configs/base".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let claimed = archive
        .releases
        .iter()
        .find(|release| release.config == "base")
        .unwrap();
    for release in &history.releases {
        assert_ne!(
            release.author, claimed.author,
            "the importer is the author, not the archive's claim"
        );
        assert_eq!(release.imported_author, claimed.author, "the claim is kept beside");
        assert!(release.imported_time.is_some());
    }

    let served = target
        .client()
        .get_config(authed(
            &target.keys.admin,
            pb::GetConfigRequest {
                name: "projects/shop-copy/environments/dev/configs/app".into(),
                reveal_secrets: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(content(&served)["db"]["password"], "s3cret-pa55");
    assert_eq!(content(&served)["db"]["pool"], 9);

    // The import lives on: publish on top of it.
    let next = target
        .client()
        .publish_config(authed(
            &target.keys.publisher,
            pb::PublishConfigRequest {
                name: "projects/shop-copy/configs/app".into(),
                environment: "dev".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.number, 2);

    // Importing twice under the same name is refused, and the first import is untouched.
    let twice = target
        .client()
        .import_project(authed(
            &target.keys.admin,
            pb::ImportProjectRequest {
                archive: Some(archive),
                project_id: "shop-copy".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);
    assert!(get(&source, &source.keys.viewer, "app", "prod").await.is_ok());
}

#[tokio::test]
async fn a_project_round_trips_from_sqlite_to_postgres() {
    round_trip(support::sqlite().await, support::postgres().await).await;
}

#[tokio::test]
async fn a_project_round_trips_from_postgres_to_sqlite() {
    round_trip(support::postgres().await, support::sqlite().await).await;
}
