//! A config-service on loopback with API keys for each role, and a gRPC client for each.
#![allow(dead_code)]

pub mod deploy;
pub mod prometheus;
pub mod webhook;

use config_service::conf::{Settings, defaults};
use switchyard_api::config::v1::{self as pb, config_service_client::ConfigServiceClient};
use switchyard_platform::{Running, Shutdown, auth::generate_api_key, testing};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

pub type Client = ConfigServiceClient<Channel>;

/// API keys of tenant `acme` (one per role, plus a reveal-scoped viewer) and of tenant `other`.
#[derive(Debug, Clone)]
pub struct Keys {
    pub admin: String,
    pub publisher: String,
    pub editor: String,
    pub viewer: String,
    pub revealer: String,
    pub other_tenant: String,
    /// Editor of `projects/shop` only.
    pub shop_editor: String,
    /// A publisher with the `emergency` scope: may break the glass of a freeze window.
    pub emergency: String,
    /// An SDK server key of `projects/shop/environments/prod`.
    pub sdk_prod: String,
}

pub struct Service {
    pub running: Running,
    pub shutdown: Shutdown,
    pub keys: Keys,
    pub settings: Settings,
    pub dir: tempfile::TempDir,
}

/// Settings with one API key per role.
pub fn settings_with_keys(dir: &std::path::Path) -> (Settings, Keys) {
    let mut settings = testing::local(defaults(), dir);
    let mut add = |tenant: &str, roles: &[&str], scopes: &[&str]| {
        let mut key = generate_api_key(tenant, roles);
        key.record.scopes = scopes.iter().map(|scope| (*scope).to_owned()).collect();
        settings.auth.api_keys.push(key.record);
        key.plaintext
    };
    let keys = Keys {
        admin: add("acme", &["admin"], &[]),
        publisher: add("acme", &["publisher"], &[]),
        editor: add("acme", &["editor"], &[]),
        viewer: add("acme", &["viewer"], &[]),
        revealer: add("acme", &["viewer"], &["secrets:reveal"]),
        other_tenant: add("other", &["admin"], &[]),
        shop_editor: add("acme", &["editor:projects/shop"], &[]),
        emergency: add("acme", &["publisher"], &["emergency"]),
        sdk_prod: add("acme", &["sdk-server:projects/shop/environments/prod"], &[]),
    };
    settings.service.resync_interval_ms = 200;
    (settings, keys)
}

pub async fn start_with(settings: Settings, keys: Keys, dir: tempfile::TempDir) -> Service {
    let shutdown = Shutdown::new();
    let running = match config_service::start(settings.clone(), shutdown.clone()).await {
        Ok(running) => running,
        Err(error) => panic!("config-service did not start: {error}"),
    };
    Service {
        running,
        shutdown,
        keys,
        settings,
        dir,
    }
}

/// Embedded mode: SQLite and the in-process bus.
pub async fn sqlite() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = settings_with_keys(dir.path());
    start_with(settings, keys, dir).await
}

/// Production shape: a fresh PostgreSQL database, the Redis bus and a key-encryption key
/// from settings, as replicas share it.
pub async fn postgres() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = settings_with_keys(dir.path());
    let mut settings = testing::with_postgres_and_redis(settings).await;
    settings.service.secret_keys = [(
        "primary".to_owned(),
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned(),
    )]
    .into();
    start_with(settings, keys, dir).await
}

impl Service {
    /// Shuts down and waits for the drain, as SIGTERM would.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
    }

    pub fn client(&self) -> Client {
        ConfigServiceClient::new(testing::grpc_channel(&self.running))
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http_addr)
    }
}

/// A request carrying `key` as its bearer credential.
pub fn authed<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// Creates project `shop` with dev → staging → prod, each with a `region` variable.
pub async fn shop(service: &Service) -> pb::Project {
    let mut client = service.client();
    let project = client
        .create_project(authed(
            &service.keys.admin,
            pb::CreateProjectRequest {
                project_id: "shop".into(),
                project: Some(pb::Project {
                    display_name: "Shop".into(),
                    ..Default::default()
                }),
                environment_ids: vec!["dev".into(), "staging".into(), "prod".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for (environment, region) in [("dev", "local"), ("staging", "ap-south-1"), ("prod", "ap-southeast-1")] {
        let name = format!("projects/shop/environments/{environment}");
        let current = client
            .get_environment(authed(
                &service.keys.viewer,
                pb::GetEnvironmentRequest { name: name.clone() },
            ))
            .await
            .unwrap()
            .into_inner();
        client
            .update_environment(authed(
                &service.keys.admin,
                pb::UpdateEnvironmentRequest {
                    name,
                    variables: [("region".to_owned(), region.to_owned())].into_iter().collect(),
                    etag: current.etag,
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    project
}

/// Creates config `id` in `shop` with the given YAML and schema.
pub async fn create_yaml(service: &Service, id: &str, content: &str, schema: &str) -> pb::Config {
    service
        .client()
        .create_config(authed(
            &service.keys.editor,
            pb::CreateConfigRequest {
                parent: "projects/shop".into(),
                config_id: id.into(),
                config: Some(pb::Config {
                    format: pb::Format::Yaml as i32,
                    content: content.into(),
                    schema: schema.into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

pub async fn publish(service: &Service, config: &str, environment: &str) -> Result<pb::Release, tonic::Status> {
    service
        .client()
        .publish_config(authed(
            &service.keys.publisher,
            pb::PublishConfigRequest {
                name: format!("projects/shop/configs/{config}"),
                environment: environment.into(),
                message: format!("publish {config} to {environment}"),
                etag: String::new(),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

pub async fn get(
    service: &Service,
    key: &str,
    config: &str,
    environment: &str,
) -> Result<pb::ResolvedConfig, tonic::Status> {
    service
        .client()
        .get_config(authed(
            key,
            pb::GetConfigRequest {
                name: format!("projects/shop/environments/{environment}/configs/{config}"),
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner())
}

/// The resolved content as JSON.
pub fn content(config: &pb::ResolvedConfig) -> serde_json::Value {
    serde_json::from_str(&config.text).unwrap()
}

/// Replaces a draft's content, keeping everything else.
pub async fn edit(service: &Service, config: &str, content: &str) -> pb::Config {
    let mut client = service.client();
    let mut draft = client
        .get_config_draft(authed(
            &service.keys.editor,
            pb::GetConfigDraftRequest {
                name: format!("projects/shop/configs/{config}"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    draft.content = content.into();
    client
        .update_config(authed(
            &service.keys.editor,
            pb::UpdateConfigRequest { config: Some(draft) },
        ))
        .await
        .unwrap()
        .into_inner()
}
