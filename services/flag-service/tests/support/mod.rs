//! A flag-service on loopback serving flag files from a private directory, with gRPC clients
//! for each protocol and a way to edit the files the way deployment tools do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use flag_service::conf::{Settings, defaults};
use serde_json::{Value, json};
use switchyard_api::flagd::{
    evaluation::{v1::service_client::ServiceClient as V1Client, v2::service_client::ServiceClient as V2Client},
    sync::v1::flag_sync_service_client::FlagSyncServiceClient,
};
use switchyard_platform::{Running, Shutdown, testing};
use tonic::transport::Channel;

pub struct Service {
    pub running: Running,
    pub shutdown: Shutdown,
    pub dir: tempfile::TempDir,
    pub files: Vec<PathBuf>,
}

impl Service {
    pub fn v1(&self) -> V1Client<Channel> {
        V1Client::new(testing::grpc_channel(&self.running))
    }

    pub fn v2(&self) -> V2Client<Channel> {
        V2Client::new(testing::grpc_channel(&self.running))
    }

    pub fn sync(&self) -> FlagSyncServiceClient<Channel> {
        FlagSyncServiceClient::new(testing::grpc_channel(&self.running))
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http_addr)
    }

    /// Replaces flag file `index` by writing a sibling and renaming it over the original.
    pub fn replace_file(&self, index: usize, document: &Value) {
        write_atomically(&self.files[index], &document.to_string());
    }

    /// The name a selector uses for flag file `index`.
    pub fn source(&self, index: usize) -> String {
        self.files[index].display().to_string()
    }
}

pub fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Starts flag-service on `documents`, one flag file each, in priority order.
pub async fn start(documents: &[Value]) -> Service {
    start_with(documents, |_| {}).await
}

/// Like [`start`], with settings adjusted by `adjust` first.
pub async fn start_with(documents: &[Value], adjust: impl FnOnce(&mut Settings)) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let path = dir.path().join(format!("flags-{index}.json"));
            std::fs::write(&path, document.to_string()).unwrap();
            path
        })
        .collect();
    let mut settings: Settings = testing::local(defaults(), dir.path());
    settings.service.flags_files = files.clone();
    settings.service.flags_file_poll_ms = 10;
    adjust(&mut settings);
    let shutdown = Shutdown::new();
    let running = match flag_service::start(settings, shutdown.clone()).await {
        Ok(running) => running,
        Err(error) => panic!("flag-service did not start: {error}"),
    };
    Service {
        running,
        shutdown,
        dir,
        files,
    }
}

/// The flagd-testbed evaluator flags.
pub fn testkit() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/flagd-testbed/evaluator/flags/testkit-flags.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A boolean flag with the given default variant.
pub fn boolean_flag(default: &str) -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": default})
}

/// A `google.protobuf.Struct` from a JSON object.
pub fn context(value: Value) -> Option<pbjson_types::Struct> {
    value.as_object().map(switchyard_platform::proto_json::to_proto_struct)
}

/// A request carrying the `flagd-selector` header and `key` as its bearer credential.
pub fn evaluating<T>(key: &str, message: T, selector: &str) -> tonic::Request<T> {
    let mut request = with_selector(message, selector);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// A request carrying the `flagd-selector` header.
pub fn with_selector<T>(message: T, selector: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("flagd-selector", selector.parse().unwrap());
    request
}

/// API keys of tenant `acme` (one per role, an editor of `projects/shop/environments/dev`
/// only, SDK keys) and of tenant `other`.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Evaluates every flag of the tenant.
    pub sdk_server: String,
    /// Evaluates the client-visible flags of `projects/shop/environments/prod`.
    pub sdk_client: String,
    pub admin: String,
    pub editor: String,
    pub viewer: String,
    pub dev_editor: String,
    pub other_tenant: String,
}

/// Settings with one API key per role; anonymous callers evaluate in tenant `acme`.
pub fn settings_with_keys(dir: &Path) -> (Settings, Keys) {
    let mut settings: Settings = testing::local(defaults(), dir);
    let mut add = |tenant: &str, roles: &[&str]| {
        let key = switchyard_platform::auth::generate_api_key(tenant, roles);
        settings.auth.api_keys.push(key.record);
        key.plaintext
    };
    let keys = Keys {
        sdk_server: add("acme", &["sdk-server"]),
        sdk_client: add("acme", &["sdk-client:projects/shop/environments/prod"]),
        admin: add("acme", &["admin"]),
        editor: add("acme", &["editor"]),
        viewer: add("acme", &["viewer"]),
        dev_editor: add("acme", &["viewer", "editor:projects/shop/environments/dev"]),
        other_tenant: add("other", &["admin"]),
    };
    settings.service.anonymous_tenant = "acme".to_owned();
    settings.service.resync_interval_ms = 200;
    (settings, keys)
}

pub async fn start_settings(settings: Settings) -> (Running, Shutdown) {
    let shutdown = Shutdown::new();
    match flag_service::start(settings, shutdown.clone()).await {
        Ok(running) => (running, shutdown),
        Err(error) => panic!("flag-service did not start: {error}"),
    }
}

/// A management client that sends `key`.
pub fn management(running: &Running, key: &str) -> ManagementClient {
    let channel = testing::grpc_channel(running);
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    switchyard_api::flags::v1::flag_service_client::FlagServiceClient::with_interceptor(
        channel,
        Box::new(move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("authorization", bearer.clone());
            Ok(request)
        }) as Authorize,
    )
}

pub type Authorize = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;
pub type ManagementClient = switchyard_api::flags::v1::flag_service_client::FlagServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Authorize>,
>;

/// A protobuf Struct from JSON.
pub fn proto_struct(value: Value) -> Option<pbjson_types::Struct> {
    context(value)
}
