//! Hosting a service: one gRPC port (the service, gRPC-Web per service, grpc.health.v1,
//! reflection) and one HTTP port (`/healthz`, `/readyz`, `/metrics`, `/openapi.json` and
//! every `google.api.http` route). Both ports reach the same gRPC stack — metrics, load
//! shedding, concurrency limit, timeout, authentication, rate limits — so a call behaves
//! the same whichever way it arrives.
//!
//! Shutdown order: readiness and health go NOT_SERVING, the instance leaves Consul, the
//! drain delay lets load balancers notice, then the listeners close and in-flight calls
//! get the grace period to finish.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use axum::{Router, extract::State, middleware::Next, response::IntoResponse, routing::get};
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};
use tonic_health::ServingStatus;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, util::BoxCloneSyncService};

use crate::{
    about::About,
    auth::{AuthLayer, Authenticator, PublicMethods, follower::KeyFollower},
    bus::{self, ChangeBus},
    discovery::Discovery,
    metrics::{GrpcMetricsLayer, HttpLabels, Metrics},
    protection::{ErrorsAsStatusLayer, RateLimitLayer},
    settings::{ServiceIdentity, Settings, SettingsError},
    shutdown::Shutdown,
    storage::{Database, Migrations},
    transcode::{GrpcStack, RouteTable, Transcoder, openapi},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP routes: {0}")]
    Routes(#[from] crate::transcode::routes::RouteError),
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
    #[error("cannot register with consul: {0}")]
    Register(#[from] crate::discovery::DiscoveryError),
}

/// Everything a service gets from the platform before it builds its own parts.
#[derive(Debug)]
pub struct Host<S> {
    pub identity: ServiceIdentity,
    pub settings: Settings<S>,
    pub shutdown: Shutdown,
    pub database: Database,
    pub bus: Arc<dyn ChangeBus>,
    pub discovery: Discovery,
    pub authenticator: Arc<Authenticator>,
    pub metrics: Metrics,
    pub about: About,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl<S> Host<S>
where
    S: Serialize + DeserializeOwned + Default,
{
    /// Sets up telemetry, storage (migrated), the change bus and discovery, and binds both
    /// ports, so the service knows its real addresses before it builds its handlers.
    pub async fn prepare(
        identity: ServiceIdentity,
        settings: Settings<S>,
        shutdown: Shutdown,
        migrations: &Migrations,
    ) -> Result<Self, StartError> {
        settings.validate()?;
        crate::telemetry::init(identity.name, &settings.telemetry)?;
        let grpc_listener = bind(SocketAddr::new(settings.grpc.host, settings.grpc.port)).await?;
        let http_listener = bind(SocketAddr::new(settings.http.host, settings.http.port)).await?;
        let database = Database::connect(
            &settings.storage_url(identity.name),
            settings.storage.max_connections,
            Duration::from_secs(settings.storage.acquire_timeout_secs),
            migrations,
        )
        .await?;
        let bus = bus::connect(settings.redis_url.as_deref()).await?;
        let discovery = Discovery::new(settings.consul.as_ref(), &settings.peers, shutdown.clone());
        let authenticator = Arc::new(Authenticator::from_settings(&settings.auth)?);
        follow_key_store(identity, &settings.auth, &discovery, &authenticator, &shutdown)?;
        let grpc_addr = local_addr(&grpc_listener)?;
        let http_addr = local_addr(&http_listener)?;
        let about = About {
            name: identity.name,
            instance_id: format!("{}-{}", identity.name, &uuid::Uuid::new_v4().simple().to_string()[..12]),
            started_at: SystemTime::now(),
            grpc_port: grpc_addr.port(),
            http_port: http_addr.port(),
            change_bus: bus.kind(),
            discovery: discovery.kind(),
            database: database.clone(),
        };
        Ok(Host {
            identity,
            metrics: Metrics::new(identity.name),
            settings,
            shutdown,
            database,
            bus,
            discovery,
            authenticator,
            about,
            grpc_listener,
            http_listener,
        })
    }
}

/// The service that owns the API key store; every other service follows it.
pub const KEY_STORE_SERVICE: &str = "config-service";

/// Starts following config-service's key store when this service has a sync credential.
fn follow_key_store(
    identity: ServiceIdentity,
    auth: &crate::auth::AuthSettings,
    discovery: &Discovery,
    authenticator: &Arc<Authenticator>,
    shutdown: &Shutdown,
) -> Result<(), StartError> {
    let Some(credential) = auth.key_sync_credential.as_deref() else {
        return Ok(());
    };
    if identity.name == KEY_STORE_SERVICE {
        return Ok(());
    }
    let invalid = |reason: String| {
        StartError::Settings(SettingsError::Invalid {
            key: "auth.key_sync_credential".to_owned(),
            reason,
        })
    };
    let channel = discovery
        .channel(KEY_STORE_SERVICE)
        .map_err(|error| invalid(format!("cannot reach the key store: {error}")))?;
    KeyFollower::new(channel, credential, authenticator.directory().clone())
        .map_err(invalid)?
        .spawn(shutdown.clone());
    Ok(())
}

async fn bind(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// The gRPC services one binary serves, with the methods that need no credentials.
#[derive(Debug, Default)]
pub struct GrpcServices {
    routes: Routes,
    names: Vec<&'static str>,
    public: PublicMethods,
    unmetered: Vec<String>,
    http_routes: Option<Router>,
    http_send_buffer: Option<usize>,
}

impl GrpcServices {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service, wrapped for gRPC-Web so browsers can call it directly.
    pub fn with_service<T>(mut self, service: T) -> Self
    where
        T: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        T::Future: Send + 'static,
    {
        self.names.push(T::NAME);
        self.routes = self.routes.add_service(tonic_web::GrpcWebLayer::new().layer(service));
        self
    }

    /// Marks a method (`/package.Service/Method`) as callable without credentials.
    pub fn public(mut self, path: &str) -> Self {
        self.public.insert(path);
        self
    }

    /// Marks every method of a service (`package.Service`) as callable without credentials.
    pub fn public_service(mut self, service: &str) -> Self {
        self.public.insert_service(service);
        self
    }

    /// Exempts a service's methods from the per-principal and per-IP rate limits: for
    /// data-plane reads served from memory, which callers make on every request they handle.
    pub fn unmetered_service(mut self, service: &str) -> Self {
        self.unmetered.push(service.to_owned());
        self
    }

    /// Caps the kernel send buffer of every HTTP connection (`SO_SNDBUF`) instead of letting
    /// the kernel grow it to megabytes. For connections held open to push to: with a large
    /// buffer a client reads for a long time while the server's writes see no progress, so a
    /// steady slow reader looks stalled and a client's backlog hides in the kernel.
    pub fn with_http_send_buffer(mut self, bytes: usize) -> Self {
        self.http_send_buffer = Some(bytes);
        self
    }

    /// Plain HTTP routes served beside the transcoded API (a protocol that is not gRPC, such as
    /// OFREP). They get the HTTP port's metrics and tracing; limits are theirs to apply.
    pub fn with_http_routes(mut self, routes: Router) -> Self {
        self.http_routes = Some(match self.http_routes.take() {
            Some(existing) => existing.merge(routes),
            None => routes,
        });
        self
    }
}

/// A service that is serving. Its ports are known (tests bind port 0).
#[derive(Debug)]
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Completes when both servers have stopped after shutdown.
    pub async fn wait(self) {
        if let Err(error) = self.done.await {
            tracing::error!(%error, "server task failed");
        }
    }
}

impl<S> Host<S> {
    /// Starts both servers and registers with Consul when it is configured.
    pub async fn serve(self, services: GrpcServices) -> Result<Running, StartError> {
        let grpc_addr = local_addr(&self.grpc_listener)?;
        let http_addr = local_addr(&self.http_listener)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &services.names {
            health.set_service_status(*name, ServingStatus::Serving).await;
        }
        health.set_service_status("", ServingStatus::Serving).await;

        let routes = with_reflection(services.routes, &services.names)?.add_service(health_service);
        let limits = &self.settings.limits;
        let rate_limits = RateLimitLayer::new(limits).unmetered(&services.unmetered);
        let auth = AuthLayer::new(self.authenticator.clone(), services.public);
        let stack: GrpcStack = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(GrpcMetricsLayer(self.metrics.clone()))
                .layer(ErrorsAsStatusLayer)
                .load_shed()
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits.max_concurrent_requests,
                ))
                .timeout(Duration::from_millis(limits.request_timeout_ms))
                .layer(auth.clone())
                .layer(rate_limits.clone())
                .service(grpc_router(routes)),
        );

        let table = Arc::new(RouteTable::build(&crate::descriptors(), &services.names)?);
        let ready = Arc::new(AtomicBool::new(true));
        let http = HttpState {
            transcoder: Transcoder::new(table, stack.clone(), limits.max_request_bytes).with_auth(auth),
            metrics: self.metrics.clone(),
            ready: ready.clone(),
            database: self.database.clone(),
            title: self.identity.name,
        };

        let registration = self.discovery.registration(
            &self.about.instance_id,
            self.identity.name,
            advertise_address(&self.settings),
            grpc_addr.port(),
            http_addr.port(),
        );
        if let Some(registration) = &registration {
            self.discovery.register(registration).await?;
            tracing::info!(id = %registration.id, "registered with consul");
        }

        let stop = CancellationToken::new();
        spawn_drain(Drain {
            shutdown: self.shutdown.clone(),
            stop: stop.clone(),
            ready,
            health,
            names: services.names.clone(),
            discovery: self.discovery.clone(),
            instance_id: registration.map(|r| r.id),
            drain_delay: Duration::from_millis(self.settings.shutdown.drain_delay_ms),
        });
        spawn_forget_idle(rate_limits, self.shutdown.clone());

        let grace = Duration::from_millis(self.settings.shutdown.grace_period_ms);
        let grpc = tonic::transport::Server::builder()
            .accept_http1(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .serve_with_incoming_shutdown(
                stack,
                // Without TCP_NODELAY small responses wait for the peer's delayed ACK (~40 ms).
                tonic::transport::server::TcpIncoming::from(self.grpc_listener).with_nodelay(Some(true)),
                stop.clone().cancelled_owned(),
            );
        let http_app = http_router(http, services.http_routes).into_make_service_with_connect_info::<SocketAddr>();
        let send_buffer = services.http_send_buffer;
        let http_listener = axum::serve::ListenerExt::tap_io(self.http_listener, move |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            if let Some(bytes) = send_buffer
                && let Err(error) = socket2::SockRef::from(&*tcp).set_send_buffer_size(bytes)
            {
                tracing::debug!(%error, "cannot set SO_SNDBUF");
            }
        });
        let http_server = axum::serve(http_listener, http_app).with_graceful_shutdown(stop.clone().cancelled_owned());
        let name = self.identity.name;
        let done = tokio::spawn(async move {
            let both = async {
                let (grpc, http) = tokio::join!(grpc, http_server);
                if let Err(error) = grpc {
                    tracing::error!(%error, "gRPC server failed");
                }
                if let Err(error) = http {
                    tracing::error!(%error, "HTTP server failed");
                }
            };
            tokio::pin!(both);
            tokio::select! {
                _ = &mut both => {}
                _ = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!(service = name, "grace period over; dropping calls still in flight");
                }
            }
            crate::telemetry::flush();
            tracing::info!(service = name, "stopped");
        });
        tracing::info!(service = self.identity.name, %grpc_addr, %http_addr, "serving");
        Ok(Running {
            grpc_addr,
            http_addr,
            done,
        })
    }
}

/// The gRPC routes as a service over tonic bodies, as the layers above expect.
fn grpc_router(
    routes: Routes,
) -> impl Service<
    http::Request<tonic::body::Body>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    let router = routes.prepare().into_axum_router();
    ServiceExt::<http::Request<tonic::body::Body>>::map_response(
        router,
        |response: http::Response<axum::body::Body>| response.map(tonic::body::Body::new),
    )
}

fn advertise_address<S>(settings: &Settings<S>) -> std::net::IpAddr {
    if let Some(address) = settings.advertise_address {
        return address;
    }
    if settings.grpc.host.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        settings.grpc.host
    }
}

/// Reflection (v1 and v1alpha) advertising exactly the services of this binary.
fn with_reflection(routes: Routes, names: &[&'static str]) -> Result<Routes, StartError> {
    let configure = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchyard_api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for name in names {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let v1 = configure()
        .build_v1()
        .map_err(|error| StartError::Reflection(error.to_string()))?;
    let v1alpha = configure()
        .build_v1alpha()
        .map_err(|error| StartError::Reflection(error.to_string()))?;
    Ok(routes.add_service(v1).add_service(v1alpha))
}

struct Drain {
    shutdown: Shutdown,
    stop: CancellationToken,
    ready: Arc<AtomicBool>,
    health: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    discovery: Discovery,
    instance_id: Option<String>,
    drain_delay: Duration,
}

fn spawn_drain(drain: Drain) {
    tokio::spawn(async move {
        drain.shutdown.cancelled().await;
        drain.ready.store(false, Ordering::SeqCst);
        for name in &drain.names {
            drain.health.set_service_status(*name, ServingStatus::NotServing).await;
        }
        drain.health.set_service_status("", ServingStatus::NotServing).await;
        if let Some(id) = &drain.instance_id {
            match drain.discovery.deregister(id).await {
                Ok(()) => tracing::info!(%id, "deregistered from consul"),
                Err(error) => tracing::warn!(%error, %id, "could not deregister from consul"),
            }
        }
        tokio::time::sleep(drain.drain_delay).await;
        drain.stop.cancel();
    });
}

fn spawn_forget_idle(rate_limits: RateLimitLayer, shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => rate_limits.forget_idle(),
            }
        }
    });
}

#[derive(Clone)]
struct HttpState {
    transcoder: Transcoder,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    database: Database,
    title: &'static str,
}

fn http_router(state: HttpState, extra: Option<Router>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(transcode)
        .with_state(state.clone())
        .merge(extra.unwrap_or_default())
        .layer(axum::middleware::from_fn_with_state(state, observe_http))
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::SeqCst) {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if !state.database.ping().await {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "database unreachable");
    }
    (http::StatusCode::OK, "ready")
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

async fn openapi_json(State(state): State<HttpState>) -> impl IntoResponse {
    let transcoder = &state.transcoder;
    axum::Json(openapi::document(
        state.title,
        env!("CARGO_PKG_VERSION"),
        transcoder.routes(),
        &|path| transcoder.is_public(path),
    ))
}

async fn transcode(State(state): State<HttpState>, request: axum::extract::Request) -> axum::response::Response {
    state.transcoder.handle(request).await
}

async fn observe_http(
    State(state): State<HttpState>,
    request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let method = request.method().to_string();
    let span = crate::telemetry::request_span("http", &request);
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    let labels = HttpLabels {
        method,
        status: response.status().as_u16(),
    };
    state.metrics.http_handled.get_or_create(&labels).inc();
    state
        .metrics
        .http_latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
