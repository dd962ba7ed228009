//! Test support for services' integration tests (feature `testing`): the Consul fake and
//! a plain HTTP/1.1 client for calling the HTTP port as an outside client would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

pub use crate::discovery::fake_consul::{CheckStatus, FakeConsul};

/// An HTTP response, fully read.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request; `headers` are `(name, value)` pairs.
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> HttpResponse {
    let (parts, body) = send(method, url, headers, body.into()).await.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => panic!("reading {url} failed: {error}"),
    };
    HttpResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A streamed response read one JSON line at a time (NDJSON watches).
pub struct JsonLines {
    body: hyper::body::Incoming,
    buffered: Vec<u8>,
}

impl JsonLines {
    /// The next line as JSON; panics when the stream ends or nothing arrives within 10 s.
    pub async fn next_json(&mut self) -> serde_json::Value {
        loop {
            if let Some(end) = self.buffered.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffered.drain(..=end).collect();
                match serde_json::from_slice(&line) {
                    Ok(value) => return value,
                    Err(error) => panic!("not a JSON line {:?}: {error}", String::from_utf8_lossy(&line)),
                }
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.buffered.extend_from_slice(data);
                    }
                }
                Ok(other) => panic!("the stream ended: {:?}", other.map(|frame| frame.err())),
                Err(_) => panic!("no line within 10 s"),
            }
        }
    }
}

/// Opens a GET whose body is a stream of JSON lines; panics unless it answers 200.
pub async fn ndjson(url: &str, headers: &[(&str, &str)]) -> JsonLines {
    let response = send("GET", url, headers, Bytes::new()).await;
    assert_eq!(response.status(), 200, "GET {url}");
    JsonLines {
        body: response.into_body(),
        buffered: Vec::new(),
    }
}

/// As [`http`], with `key` (when there is one) sent as `authorization: Bearer <key>`.
pub async fn http_as(
    method: &str,
    url: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> HttpResponse {
    let bearer = key.map(|key| format!("Bearer {key}"));
    let mut all: Vec<(&str, &str)> = bearer.iter().map(|bearer| ("authorization", bearer.as_str())).collect();
    all.extend_from_slice(headers);
    http(method, url, &all, body).await
}

/// A streamed response read as text (Server-Sent Events, long responses).
pub struct TextStream {
    pub status: u16,
    body: hyper::body::Incoming,
    received: String,
}

impl TextStream {
    /// Reads until the text received so far contains `needle` and returns it all; panics
    /// when the stream ends or nothing new arrives within 10 s.
    pub async fn read_until(&mut self, needle: &str) -> &str {
        while !self.received.contains(needle) {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.received.push_str(&String::from_utf8_lossy(data));
                    }
                }
                Ok(other) => panic!(
                    "the stream ended before {needle:?} (got {:?}): {:?}",
                    self.received,
                    other.map(|frame| frame.err())
                ),
                Err(_) => panic!("no {needle:?} within 10 s (got {:?})", self.received),
            }
        }
        &self.received
    }
}

/// Opens a GET and returns its status with the body still streaming.
pub async fn text_stream(url: &str, headers: &[(&str, &str)]) -> TextStream {
    let response = send("GET", url, headers, Bytes::new()).await;
    TextStream {
        status: response.status().as_u16(),
        body: response.into_body(),
        received: String::new(),
    }
}

/// Sends one request and returns the response with its body unread.
async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Bytes) -> http::Response<hyper::body::Incoming> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = match builder.body(Full::new(body)) {
        Ok(request) => request,
        Err(error) => panic!("bad test request: {error}"),
    };
    match client.request(request).await {
        Ok(response) => response,
        Err(error) => panic!("{method} {url} failed: {error}"),
    }
}

pub async fn get(url: &str) -> HttpResponse {
    http("GET", url, &[], Bytes::new()).await
}

/// The PostgreSQL server tests use (`make test` makes sure it runs).
pub fn postgres_admin_url() -> String {
    std::env::var("POSTGRES_TEST_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis server tests use (`make test` makes sure it runs).
pub fn redis_url() -> String {
    std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh, empty PostgreSQL database for one test; returns its URL.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(error) => panic!("PostgreSQL must be running at {admin} (make test starts it): {error}"),
    };
    let name = format!("sy_test_{}", uuid::Uuid::new_v4().simple());
    if let Err(error) = sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await {
        panic!("cannot create test database: {error}");
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// What every service must do, checked the same way for each: boot on port 0, report
/// SERVING over grpc.health.v1, answer `/healthz`, serve `GetServiceInfo` over gRPC and
/// over its transcoded HTTP route, and drain on shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Contract {
    pub name: &'static str,
    /// The fully qualified gRPC service, e.g. `switchyard.config.v1.ConfigService`.
    pub grpc_service: &'static str,
    /// The HTTP route of `GetServiceInfo`, e.g. `/v1/config/info`.
    pub info_route: &'static str,
}

/// Loopback ports chosen by the OS and a private data directory.
pub fn local<S>(mut settings: crate::Settings<S>, data_dir: &std::path::Path) -> crate::Settings<S> {
    settings.grpc = crate::settings::Listener {
        host: [127, 0, 0, 1].into(),
        port: 0,
    };
    settings.http = crate::settings::Listener {
        host: [127, 0, 0, 1].into(),
        port: 0,
    };
    settings.data_dir = data_dir.to_path_buf();
    settings
}

/// The production shape: a fresh PostgreSQL database and the Redis change bus.
pub async fn with_postgres_and_redis<S>(mut settings: crate::Settings<S>) -> crate::Settings<S> {
    settings.storage.url = fresh_postgres_database().await;
    settings.redis_url = Some(redis_url());
    settings
}

impl Contract {
    /// Embedded mode: SQLite and the in-process bus.
    pub async fn boots_on_sqlite<S, F, Fut>(&self, defaults: fn() -> crate::Settings<S>, start: F)
    where
        F: FnOnce(crate::Settings<S>, crate::Shutdown) -> Fut,
        Fut: std::future::Future<Output = Result<crate::Running, crate::StartError>>,
    {
        let dir = temp_dir();
        let shutdown = crate::Shutdown::new();
        let running = started(start(local(defaults(), dir.path()), shutdown.clone()).await);
        self.check(running, shutdown, "sqlite", "in-process").await;
    }

    /// Production shape: a fresh PostgreSQL database and the Redis bus.
    pub async fn runs_on_postgres_with_redis<S, F, Fut>(&self, defaults: fn() -> crate::Settings<S>, start: F)
    where
        F: FnOnce(crate::Settings<S>, crate::Shutdown) -> Fut,
        Fut: std::future::Future<Output = Result<crate::Running, crate::StartError>>,
    {
        let dir = temp_dir();
        let settings = with_postgres_and_redis(local(defaults(), dir.path())).await;
        let shutdown = crate::Shutdown::new();
        let running = started(start(settings, shutdown.clone()).await);
        self.check(running, shutdown, "postgres", "redis").await;
    }

    /// With Consul configured: registered while serving, deregistered after the drain.
    pub async fn registers_with_consul<S, F, Fut>(&self, defaults: fn() -> crate::Settings<S>, start: F)
    where
        F: FnOnce(crate::Settings<S>, crate::Shutdown) -> Fut,
        Fut: std::future::Future<Output = Result<crate::Running, crate::StartError>>,
    {
        let consul = match FakeConsul::start().await {
            Ok(consul) => consul,
            Err(error) => panic!("cannot start the Consul fake: {error}"),
        };
        let dir = temp_dir();
        let mut settings = local(defaults(), dir.path());
        settings.consul = Some(crate::settings::ConsulSettings {
            address: consul.url(),
            ..Default::default()
        });
        let shutdown = crate::Shutdown::new();
        let running = started(start(settings, shutdown.clone()).await);
        let registered = consul.payloads();
        assert_eq!(registered.len(), 1, "one registration");
        assert_eq!(registered[0]["Name"], self.name);
        assert_eq!(registered[0]["Port"], running.grpc_addr.port());
        assert_eq!(registered[0]["Meta"]["http_port"], running.http_addr.port().to_string());
        self.check(running, shutdown, "sqlite", "in-process").await;
        assert_eq!(consul.deregistered().len(), 1, "deregistered on shutdown");
    }

    /// `GetServiceInfo` over gRPC, through the generic client: every service shares the
    /// request and response messages.
    pub async fn service_info_over_grpc(&self, running: &crate::Running) -> switchyard_api::runtime::v1::ServiceInfo {
        let mut client = tonic::client::Grpc::new(grpc_channel(running));
        if let Err(error) = client.ready().await {
            panic!("{} is not reachable over gRPC: {error}", self.name);
        }
        let path = format!("/{}/GetServiceInfo", self.grpc_service);
        let path = match http::uri::PathAndQuery::try_from(path) {
            Ok(path) => path,
            Err(error) => panic!("bad path: {error}"),
        };
        let codec = tonic_prost::ProstCodec::default();
        let request = tonic::Request::new(switchyard_api::runtime::v1::GetServiceInfoRequest {});
        match client.unary(request, path, codec).await {
            Ok(response) => response.into_inner(),
            Err(status) => panic!("{} GetServiceInfo failed: {status}", self.name),
        }
    }

    /// Checks the whole contract, then shuts the service down and checks that it drained.
    pub async fn check(&self, running: crate::Running, shutdown: crate::Shutdown, backend: &str, bus: &str) {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

        let info = self.service_info_over_grpc(&running).await;
        assert_eq!(info.name, self.name);
        assert_eq!(info.grpc_port, u32::from(running.grpc_addr.port()));
        assert_eq!(info.http_port, u32::from(running.http_addr.port()));
        assert_eq!(info.storage_backend, backend);
        assert_eq!(info.change_bus, bus);
        assert!(info.schema_version >= 1, "migrations ran");

        let base = format!("http://{}", running.http_addr);
        let over_http = get(&format!("{base}{}", self.info_route)).await;
        assert_eq!(over_http.status, 200, "{}", over_http.text());
        let json = over_http.json();
        assert_eq!(json["name"], self.name);
        assert_eq!(json["instanceId"], info.instance_id.as_str());
        assert_eq!(json["storageBackend"], backend);
        assert_eq!(get(&format!("{base}/healthz")).await.status, 200);
        assert_eq!(get(&format!("{base}/readyz")).await.status, 200);
        let openapi = get(&format!("{base}/openapi.json")).await.json();
        assert!(
            openapi["paths"][self.info_route]["get"].is_object(),
            "OpenAPI lists the route"
        );

        let mut health = HealthClient::new(grpc_channel(&running));
        for service in ["", self.grpc_service] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status);
            assert_eq!(
                status.ok(),
                Some(ServingStatus::Serving as i32),
                "health of `{service}`"
            );
        }

        let grpc_addr = running.grpc_addr;
        shutdown.trigger();
        if tokio::time::timeout(std::time::Duration::from_secs(15), running.wait())
            .await
            .is_err()
        {
            panic!("{} did not drain within 15 s", self.name);
        }
        assert!(
            tokio::net::TcpStream::connect(grpc_addr).await.is_err(),
            "the gRPC port is closed after drain"
        );
    }
}

pub use tonic_health;

/// A lazily connecting channel to the service's gRPC port.
/// A lazily connecting channel to the service's gRPC port.
pub fn grpc_channel(running: &crate::Running) -> tonic::transport::Channel {
    match tonic::transport::Endpoint::from_shared(format!("http://{}", running.grpc_addr)) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(error) => panic!("bad endpoint: {error}"),
    }
}

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    }
}

fn started(result: Result<crate::Running, crate::StartError>) -> crate::Running {
    match result {
        Ok(running) => running,
        Err(error) => panic!("the service did not start: {error}"),
    }
}

/// A service binary running as its own process, started on a settings file.
#[derive(Debug)]
pub struct ServiceProcess {
    pub child: std::process::Child,
    pub grpc_url: String,
    pub http_url: String,
}

impl ServiceProcess {
    /// Writes `settings` to `<dir>/settings.toml`, starts `binary --config` on it and waits for
    /// the `serving` log line, which names the bound addresses.
    pub fn spawn<S: serde::Serialize>(
        binary: &str,
        settings: &crate::Settings<S>,
        dir: &std::path::Path,
    ) -> ServiceProcess {
        use std::io::BufRead;
        let file = dir.join("settings.toml");
        let text = match toml::to_string(settings) {
            Ok(text) => text,
            Err(error) => panic!("settings do not serialise: {error}"),
        };
        if let Err(error) = std::fs::write(&file, text) {
            panic!("cannot write {}: {error}", file.display());
        }
        let mut child = match std::process::Command::new(binary)
            .arg("--config")
            .arg(&file)
            .env_remove("SWITCHYARD_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(error) => panic!("cannot start {binary}: {error}"),
        };
        let Some(stderr) = child.stderr.take() else {
            panic!("no stderr from {binary}");
        };
        let mut lines = std::io::BufReader::new(stderr).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if log["message"] != "serving" {
                continue;
            }
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return ServiceProcess {
                grpc_url: format!("http://{}", log["grpc_addr"].as_str().unwrap_or_default()),
                http_url: format!("http://{}", log["http_addr"].as_str().unwrap_or_default()),
                child,
            };
        }
        panic!("{binary} exited before serving");
    }

    /// SIGKILL: no drain, no flush — a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine a benchmark ran on, for the `machine` field of `bench/results/*.json`.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "kernel": kernel,
        "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
    })
}

/// Runs an end-to-end suite's script (`scripts/…-e2e.sh`) with `env` and fails with its
/// output when it fails; its report goes to stdout for `--nocapture` runs.
pub fn run_suite(script: &std::path::Path, env: &[(&str, &str)]) {
    let output = std::process::Command::new("bash")
        .arg(script)
        .envs(env.iter().copied())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => panic!("could not run {}: {error}", script.display()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    println!("{stdout}");
}

/// A Redis server of a test's (or benchmark's) own, on a port of its own, keeping nothing on
/// disk: it can be stopped and restarted without disturbing anything else.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// On a free port.
    pub async fn start() -> PrivateRedis {
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
            Ok(address) => address.port(),
            Err(error) => panic!("no free port: {error}"),
        };
        Self::on_port(port).await
    }

    /// On `port` (to come back where clients expect it).
    pub async fn on_port(port: u16) -> PrivateRedis {
        let mut redis = PrivateRedis { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs and starts a fresh, empty one on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let spawned = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => self.child = Some(child),
            Err(error) => panic!("redis-server is installed (scripts/ensure-backing-services.sh): {error}"),
        }
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("private redis did not start on port {}", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
