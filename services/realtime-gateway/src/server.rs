//! Wiring: the platform host, the hub and its broker (Redis when configured), the gateway's
//! use cases, then the gRPC API and the WebSocket/SSE routes on top.

use std::{sync::Arc, time::Duration};

use switchyard_api::realtime::v1::realtime_service_server::RealtimeServiceServer;
use switchyard_platform::{GrpcServices, Host, Running, Shutdown, StartError, clock::now_ms, settings::SettingsError};
use tokio_util::sync::CancellationToken;

use crate::{
    biz::{
        broker::{Broker, BrokerSink},
        gateway::{Gateway, Node},
        hub::Hub,
        live::LiveFeeds,
        metrics::GatewayMetrics,
        presence::PresenceReporter,
        presence_feed::{PresenceDirectory, PresenceFeeds},
    },
    conf::{IDENTITY, RealtimeServiceSettings, Settings},
    data::{AnyBroker, GrpcLiveSource, GrpcPresenceDirectory, MIGRATIONS, PresenceLink},
    service::{RealtimeServiceApi, Transport, routes},
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.realtime.v1.RealtimeService/GetServiceInfo"];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    settings.service.validate()?;
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let metrics = GatewayMetrics::new();
    metrics.register(&host.metrics);
    let hub = Arc::new(Hub::new(metrics.clone()));
    let sink: Arc<dyn BrokerSink> = hub.clone();
    let broker = AnyBroker::connect(
        host.settings.redis_url.as_deref(),
        &host.settings.service.redis_prefix,
        sink,
        host.shutdown.clone(),
    )
    .await
    .map_err(|error| StartError::Bus(switchyard_platform::bus::BusError::Redis(error.to_string())))?;
    let node = Node {
        id: host.about.instance_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_ms: now_ms(),
    };
    let gateway = Gateway::new(
        broker,
        hub,
        host.settings.service.clone(),
        host.authenticator.clone(),
        metrics,
        node,
    );
    let gateway = Arc::new(match presence_link(&host)? {
        Some((reporter, directory)) => gateway.with_presence(reporter, directory),
        None => gateway,
    });
    spawn_presence_feeds(&host, &gateway);
    spawn_reports(gateway.clone(), host.shutdown.clone());
    spawn_live_feeds(&host, gateway.clone())?;

    let max_message = host.settings.limits.max_request_bytes;
    let api = RealtimeServiceServer::new(RealtimeServiceApi::new(host.about.clone(), gateway.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let send_buffer = gateway.settings.client.socket_send_buffer_bytes;
    let transport = Transport {
        gateway,
        shutdown: host.shutdown.clone(),
    };
    let services = PUBLIC
        .iter()
        .fold(GrpcServices::new().with_service(api), |services, path| {
            services.public(path)
        })
        .with_http_send_buffer(send_buffer)
        .with_http_routes(routes(transport));
    host.serve(services).await
}

/// Reports user connections to presence-service when it is known to discovery and the
/// services' shared credential is set; starts the node's link and returns its reporter.
fn presence_link(host: &Host<RealtimeServiceSettings>) -> Result<Option<PresenceParts>, StartError> {
    let settings = host.settings.service.presence.clone();
    let credential = host.settings.auth.key_sync_credential.as_deref();
    let channel = host.discovery.channel("presence-service").ok();
    let (Some(credential), Some(channel), true) = (credential, channel, settings.enabled) else {
        tracing::info!("presence-service or the shared credential is not configured: connections are not reported");
        return Ok(None);
    };
    let authorization: tonic::metadata::AsciiMetadataValue = format!("Bearer {credential}").parse().map_err(|_| {
        StartError::Settings(SettingsError::Invalid {
            key: "auth.key_sync_credential".into(),
            reason: "is not a valid header value".into(),
        })
    })?;
    let reporter = Arc::new(PresenceReporter::new(settings.max_pending));
    let directory: Arc<dyn PresenceDirectory> =
        Arc::new(GrpcPresenceDirectory::new(channel.clone(), authorization.clone()));
    let link = PresenceLink::new(
        channel,
        authorization,
        reporter.clone(),
        host.about.instance_id.clone(),
        settings,
    );
    tokio::spawn(link.run(host.shutdown.token()));
    Ok(Some((reporter, directory)))
}

type PresenceParts = (Arc<PresenceReporter>, Arc<dyn PresenceDirectory>);

/// Feeds `$presence:{channel}` channels while this node has their subscribers.
fn spawn_presence_feeds(host: &Host<RealtimeServiceSettings>, gateway: &Arc<Gateway<AnyBroker>>) {
    let Some(directory) = gateway.presence_directory.clone() else {
        return;
    };
    let live = &host.settings.service.live;
    let feeds = PresenceFeeds::new(gateway.clone(), directory, Duration::from_millis(live.linger_ms));
    let every = Duration::from_millis(live.scan_ms.max(50));
    tokio::spawn(feeds.run(every, host.shutdown.token()));
}

/// Feeds `$config`/`$flags` channels when config-service or flag-service is known to
/// discovery; without either, those channels simply carry nothing.
fn spawn_live_feeds(host: &Host<RealtimeServiceSettings>, gateway: Arc<Gateway<AnyBroker>>) -> Result<(), StartError> {
    let settings = &host.settings.service.live;
    let source = GrpcLiveSource {
        config: host.discovery.channel("config-service").ok(),
        flags: host.discovery.channel("flag-service").ok(),
        authorization: match &settings.api_key {
            None => None,
            Some(key) => Some(format!("Bearer {key}").parse().map_err(|_| {
                StartError::Settings(SettingsError::Invalid {
                    key: "service.live.api_key".into(),
                    reason: "is not a valid header value".into(),
                })
            })?),
        },
    };
    if source.config.is_none() && source.flags.is_none() {
        tracing::info!(
            "config-service and flag-service are not known to discovery: $config and $flags channels are not fed"
        );
        return Ok(());
    }
    let feeds = LiveFeeds::new(
        gateway,
        source,
        settings.tenant.clone(),
        Duration::from_millis(settings.linger_ms),
    );
    let stop = CancellationToken::new();
    let shutdown = host.shutdown.clone();
    let every = Duration::from_millis(settings.scan_ms.max(50));
    tokio::spawn(feeds.run(every, stop.clone()));
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stop.cancel();
    });
    Ok(())
}

/// Reports this node's counts for `Info` and `Channels` every `node_report_ms`, and forgets
/// idle rate-limit state.
fn spawn_reports(gateway: Arc<Gateway<AnyBroker>>, shutdown: Shutdown) {
    let interval = Duration::from_millis(gateway.settings.node_report_ms.max(100));
    tokio::spawn(async move {
        loop {
            if let Err(error) = gateway.broker.report(gateway.report()).await {
                tracing::warn!(%error, "cannot report node state");
            }
            gateway.forget_idle();
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}
