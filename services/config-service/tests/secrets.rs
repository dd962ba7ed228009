//! Secrets: sealed at rest, masked for readers, revealed only with the permission, rotatable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{authed, content, get, publish, shop};
use switchyard_api::config::v1 as pb;
use tonic::Code;

const SCHEMA: &str = r#"{"type": "object", "properties": {"db": {"type": "object", "properties": {"password": {"type": "string", "x-secret": true}}}}}"#;
const PASSWORD: &str = "hunter2-correct-horse";
const TOKEN: &str = "tok-4242-battery-staple";

async fn setup(service: &support::Service) {
    shop(service).await;
    service
        .client()
        .create_config(authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: "payments".into(),
                config: Some(pb::Config {
                    format: pb::Format::Json as i32,
                    content: format!(
                        r#"{{"db": {{"host": "db", "password": "{PASSWORD}"}}, "api_token": {{"$secret": "{TOKEN}"}}}}"#
                    ),
                    schema: SCHEMA.into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    publish(service, "payments", "dev").await.unwrap();
}

#[tokio::test]
async fn secrets_are_masked_for_readers_and_revealed_with_the_permission() {
    let service = support::sqlite().await;
    setup(&service).await;
    let masked = get(&service, &service.keys.viewer, "payments", "dev").await.unwrap();
    let text = serde_json::to_string(&content(&masked)).unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN), "{text}");
    assert_eq!(content(&masked)["db"]["host"], "db");
    assert_eq!(masked.secret_paths, vec!["$.api_token", "$.db.password"]);

    let mut client = service.client();
    let reveal = |key: &str| {
        authed(
            key,
            pb::GetConfigRequest {
                name: "projects/shop/environments/dev/configs/payments".into(),
                reveal_secrets: true,
                ..Default::default()
            },
        )
    };
    let denied = client.get_config(reveal(&service.keys.viewer)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let revealed = client
        .get_config(reveal(&service.keys.revealer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(content(&revealed)["db"]["password"], PASSWORD);
    assert_eq!(content(&revealed)["api_token"], TOKEN);

    // Drafts, history and diffs mask them too.
    let draft = client
        .get_config_draft(authed(
            &service.keys.viewer,
            pb::GetConfigDraftRequest {
                name: "projects/shop/configs/payments".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !draft.content.contains(PASSWORD) && !draft.content.contains(TOKEN),
        "{}",
        draft.content
    );
    let history = client
        .list_releases(authed(
            &service.keys.viewer,
            pb::ListReleasesRequest {
                parent: "projects/shop/environments/dev/configs/payments".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let listed = format!("{history:?}");
    assert!(!listed.contains(PASSWORD) && !listed.contains(TOKEN));

    let search = client
        .list_configs(authed(
            &service.keys.viewer,
            pb::ListConfigsRequest {
                parent: "projects/shop".into(),
                text: PASSWORD.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(search.configs.is_empty(), "secret values are not searchable");
}

fn key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// Starts on the given key-encryption keys over the same data directory and database.
async fn start_on_keys(dir: &std::path::Path, keys: &[(&str, u8)], active: &str) -> support::Service {
    let (mut settings, api_keys) = support::settings_with_keys(dir);
    settings.service.secret_keys = keys.iter().map(|(id, byte)| ((*id).to_owned(), key(*byte))).collect();
    settings.service.active_secret_key = active.into();
    support::start_with(settings, api_keys, tempfile::tempdir().unwrap()).await
}

async fn reveal_password(service: &support::Service) -> Result<String, tonic::Status> {
    let revealed = service
        .client()
        .get_config(authed(
            &service.keys.admin,
            pb::GetConfigRequest {
                name: "projects/shop/environments/dev/configs/payments".into(),
                reveal_secrets: true,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    Ok(content(&revealed)["db"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_keys_rotate_online() {
    let data = tempfile::tempdir().unwrap();
    let service = start_on_keys(data.path(), &[("k1", 1)], "k1").await;
    setup(&service).await;
    for file in ["config-service.db", "config-service.db-wal"] {
        let bytes = std::fs::read(data.path().join(file)).unwrap_or_default();
        let haystack = String::from_utf8_lossy(&bytes);
        assert!(
            !haystack.contains(PASSWORD) && !haystack.contains(TOKEN),
            "plaintext secret found in {file}"
        );
    }
    service.stop().await;

    // A new key becomes active; rotation re-wraps the data key under it while serving.
    let service = start_on_keys(data.path(), &[("k1", 1), ("k2", 2)], "k2").await;
    let denied = service
        .client()
        .rotate_secret_keys(authed(&service.keys.publisher, pb::RotateSecretKeysRequest {}))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let rotated = service
        .client()
        .rotate_secret_keys(authed(&service.keys.admin, pb::RotateSecretKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rotated.rewrapped, rotated.active_key.as_str()), (1, "k2"));
    assert_eq!(reveal_password(&service).await.unwrap(), PASSWORD);
    service.stop().await;

    // The old key can be retired: everything opens with the new one alone.
    let service = start_on_keys(data.path(), &[("k2", 2)], "k2").await;
    assert_eq!(reveal_password(&service).await.unwrap(), PASSWORD);
}

#[tokio::test]
async fn a_schema_violation_on_a_secret_does_not_echo_the_value() {
    let service = support::sqlite().await;
    setup(&service).await;
    // The schema says the password is a string; an integer fails, and the error must not quote it.
    support::edit(
        &service,
        "payments",
        r#"{"db": {"host": "db", "password": 9876543210123}, "api_token": {"$secret": "x"}}"#,
    )
    .await;
    let refused = publish(&service, "payments", "dev").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&refused);
    let violations = details.bad_request().unwrap().field_violations.clone();
    assert_eq!(violations[0].field, "$.db.password");
    let everything = format!("{} {violations:?}", refused.message());
    assert!(!everything.contains("9876543210123"), "{everything}");
}

#[tokio::test]
async fn writing_back_a_masked_draft_is_refused_instead_of_destroying_the_secret() {
    let service = support::sqlite().await;
    setup(&service).await;
    let mut client = service.client();
    let masked = client
        .get_config_draft(authed(
            &service.keys.editor,
            pb::GetConfigDraftRequest {
                name: "projects/shop/configs/payments".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let refused = client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(masked) },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("mask"), "{}", refused.message());
}

#[tokio::test]
async fn on_shared_storage_without_a_key_secrets_are_refused_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = support::settings_with_keys(dir.path());
    let settings = switchyard_platform::testing::with_postgres_and_redis(settings).await;
    let service = support::start_with(settings, keys, tempfile::tempdir().unwrap()).await;
    shop(&service).await;
    let refused = service
        .client()
        .create_config(authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: "payments".into(),
                config: Some(pb::Config {
                    content: r#"{"password": {"$secret": "pw"}}"#.into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("secret_keys"), "{}", refused.message());
}

async fn create_json(service: &support::Service, id: &str, content: &str, schema: &str, overlays: &[(&str, &str)]) {
    service
        .client()
        .create_config(authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: id.into(),
                config: Some(pb::Config {
                    content: content.into(),
                    schema: schema.into(),
                    overlays: overlays
                        .iter()
                        .map(|(env, text)| ((*env).to_owned(), (*text).to_owned()))
                        .collect(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
}

async fn update_schema(service: &support::Service, id: &str, schema: &str) {
    let mut client = service.client();
    let mut draft = client
        .get_config_draft(authed(
            &service.keys.admin,
            pb::GetConfigDraftRequest {
                name: format!("projects/shop/configs/{id}"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    draft.schema = schema.into();
    // Admins read drafts masked too; put the secret back in clear.
    draft.content = r#"{"password": "hunter2", "port": 1}"#.into();
    client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(draft) },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rollback_keeps_secrets_secret_after_the_schema_stopped_marking_them() {
    let service = support::sqlite().await;
    shop(&service).await;
    let marked = r#"{"properties": {"password": {"type": "string", "x-secret": true}}}"#;
    create_json(&service, "db", r#"{"password": "hunter2", "port": 1}"#, marked, &[]).await;
    publish(&service, "db", "dev").await.unwrap();
    update_schema(&service, "db", r#"{"type": "object"}"#).await;
    service
        .client()
        .rollback_config(authed(
            &service.keys.publisher,
            pb::RollbackConfigRequest {
                name: "projects/shop/environments/dev/configs/db".into(),
                release: 1,
                message: String::new(),
            },
        ))
        .await
        .unwrap();
    let served = get(&service, &service.keys.viewer, "db", "dev").await.unwrap();
    assert!(!served.text.contains("hunter2"), "{}", served.text);
}

#[tokio::test]
async fn diffs_and_raw_views_mask_secrets_inside_changed_or_overlaid_parts() {
    let service = support::sqlite().await;
    shop(&service).await;
    create_json(
        &service,
        "db",
        r#"{"db": {"host": "h", "password": {"$secret": "s3cret-pw"}}}"#,
        "",
        &[("dev", r#"{"db": null, "mode": "local"}"#)],
    )
    .await;
    let first = publish(&service, "db", "prod").await.unwrap();
    let dev = publish(&service, "db", "dev").await.unwrap();
    let mut client = service.client();
    // prod has db (with its secret); dev's overlay removed it: the diff reports the removed subtree.
    let diff = client
        .diff_releases(authed(
            &service.keys.viewer,
            pb::DiffReleasesRequest {
                from: first.name.clone(),
                to: dev.name.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let shown = format!("{diff:?}");
    assert!(shown.contains("$.db"), "{shown}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    // The raw view of the dev release shows the config's own text, its secret masked even
    // though dev's resolved document has no secret left.
    let raw = client
        .get_release(authed(
            &service.keys.viewer,
            pb::GetReleaseRequest {
                name: dev.name.clone(),
                reveal_secrets: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !raw.content.contains("s3cret-pw") && !raw.content.contains("enc:v1"),
        "{}",
        raw.content
    );
}
