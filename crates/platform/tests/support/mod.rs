//! Shared by the platform's integration tests: the echo test service hosted on real
//! sockets (port 0) with a temporary SQLite database, and credentials to call it with.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchyard_api::testing::v1::{
    CreateItemRequest, Echo, FailRequest, GetItemRequest, GetShelfRequest, SleepRequest, TicksRequest,
    UpdateItemRequest,
    transcode_test_server::{TranscodeTest, TranscodeTestServer},
};
use switchyard_platform::{
    GrpcServices, Host, Running, ServiceIdentity, Settings, Shutdown,
    auth::{Principal, Role, generate_api_key},
    error::to_status,
    storage::Migrations,
};
use tonic::{Code, Request, Response, Status};

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations/sqlite");
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "echo-service",
    key: "echo_service",
    grpc_port: 0,
    http_port: 0,
};

pub const HS256_SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
pub const RS256_PRIVATE: &str = include_str!("../keys/rs256-private.pem");
pub const RS256_PUBLIC: &str = include_str!("../keys/rs256-public.pem");
pub const OTHER_PRIVATE: &str = include_str!("../keys/other-private.pem");

/// Echoes what it received; `GetShelf` requires a viewer of tenant `acme`.
#[derive(Debug, Default)]
pub struct EchoService {
    shutdown: Shutdown,
}

fn echo<T: serde::Serialize>(method: &str, request: Request<T>) -> Result<Response<Echo>, Status> {
    let principal = request.extensions().get::<Principal>().cloned();
    let traceparent = request
        .metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Response::new(Echo {
        method: method.to_owned(),
        request_json: serde_json::to_string(request.get_ref()).unwrap(),
        tenant: principal.as_ref().map(|p| p.tenant.clone()).unwrap_or_default(),
        subject: principal.map(|p| p.subject).unwrap_or_default(),
        traceparent,
    }))
}

#[tonic::async_trait]
impl TranscodeTest for EchoService {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Echo>, Status> {
        echo("GetItem", request)
    }
    async fn create_item(&self, request: Request<CreateItemRequest>) -> Result<Response<Echo>, Status> {
        echo("CreateItem", request)
    }
    async fn update_item(&self, request: Request<UpdateItemRequest>) -> Result<Response<Echo>, Status> {
        echo("UpdateItem", request)
    }
    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<Echo>, Status> {
        let request = request.into_inner();
        Err(Status::new(Code::from_i32(request.code), request.message))
    }
    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<Echo>, Status> {
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(request.get_ref().millis))).await;
        echo("Sleep", request)
    }

    type TicksStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Echo, Status>> + Send>>;

    async fn ticks(&self, request: Request<TicksRequest>) -> Result<Response<Self::TicksStream>, Status> {
        let TicksRequest { count, interval_millis } = request.into_inner();
        let shutdown = self.shutdown.clone();
        let interval = std::time::Duration::from_millis(u64::from(interval_millis.max(1)));
        // After the shutdown status the stream ends: `done` marks that it was sent.
        let stream = futures::stream::unfold((0u32, false), move |(n, done)| {
            let shutdown = shutdown.clone();
            async move {
                if done || (count != 0 && n >= count) {
                    return None;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => Some((Err(Shutdown::stream_status()), (n, true))),
                    _ = tokio::time::sleep(interval) => Some((Ok(Echo { method: format!("tick-{n}"), ..Echo::default() }), (n + 1, false))),
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_shelf(&self, request: Request<GetShelfRequest>) -> Result<Response<Echo>, Status> {
        let principal = Principal::of(&request).map_err(|error| to_status(&error))?;
        let resource = format!("shelves/{}", request.get_ref().shelf);
        principal
            .authorize("acme", Role::Viewer, &resource)
            .map_err(|error| to_status(&error))?;
        echo("GetShelf", request)
    }
}

pub struct Server {
    pub running: Running,
    pub shutdown: Shutdown,
    pub http: String,
    pub grpc: String,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
    }
}

pub fn settings() -> (Settings<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::<()>::defaults(&IDENTITY);
    settings.grpc.host = [127, 0, 0, 1].into();
    settings.http.host = [127, 0, 0, 1].into();
    settings.data_dir = dir.path().to_path_buf();
    settings.auth.jwt_hs256_secret = Some(HS256_SECRET.to_owned());
    settings.auth.jwt_rs256_public_keys = vec![RS256_PUBLIC.to_owned()];
    settings.shutdown.grace_period_ms = 5_000;
    (settings, dir)
}

pub async fn start() -> Server {
    let (settings, dir) = settings();
    start_with(settings, dir).await
}

pub async fn start_with(settings: Settings<()>, dir: tempfile::TempDir) -> Server {
    let shutdown = Shutdown::new();
    let host = Host::prepare(IDENTITY, settings, shutdown.clone(), &MIGRATIONS)
        .await
        .unwrap();
    let services = GrpcServices::new()
        .with_service(TranscodeTestServer::new(EchoService {
            shutdown: shutdown.clone(),
        }))
        .public("/switchyard.testing.v1.TranscodeTest/GetItem")
        .public("/switchyard.testing.v1.TranscodeTest/CreateItem")
        .public("/switchyard.testing.v1.TranscodeTest/UpdateItem")
        .public("/switchyard.testing.v1.TranscodeTest/Fail")
        .public("/switchyard.testing.v1.TranscodeTest/Sleep")
        .public("/switchyard.testing.v1.TranscodeTest/Ticks");
    let running = host.serve(services).await.unwrap();
    let http = format!("http://{}", running.http_addr);
    let grpc = format!("http://{}", running.grpc_addr);
    Server {
        running,
        shutdown,
        http,
        grpc,
        _dir: dir,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A signed HS256 token for `tenant` with `roles`, expiring `ttl_secs` from now (negative: expired).
pub fn hs256_token(tenant: &str, roles: &[&str], ttl_secs: i64) -> String {
    let claims = json!({ "sub": "user-1", "tenant": tenant, "roles": roles, "exp": (now() as i64 + ttl_secs) as u64 });
    let key = jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .unwrap()
}

/// An RS256 token signed with `private_pem`.
pub fn rs256_token(private_pem: &str, tenant: &str, roles: &[&str]) -> String {
    let claims = json!({ "sub": "svc-1", "tenant": tenant, "roles": roles, "exp": now() + 600 });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

/// A new API key for `tenant`, registered in `settings`.
pub fn api_key(settings: &mut Settings<()>, tenant: &str, roles: &[&str]) -> String {
    let key = generate_api_key(tenant, roles);
    settings.auth.api_keys.push(key.record);
    key.plaintext
}

#[allow(unused_imports)]
pub use switchyard_platform::testing::{fresh_postgres_database, redis_url};
