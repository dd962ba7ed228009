//! Wiring: the platform host, the presence store (Redis or memory) and the database's last
//! seen, the use cases and their background work — the event log tail every replica runs,
//! the cleanup only the lock holder runs, the last-seen writer — then the gRPC API.

use std::{sync::Arc, time::Duration};

use switchyard_api::presence::v1::presence_service_server::PresenceServiceServer;
use switchyard_platform::{GrpcServices, Host, Running, Shutdown, StartError, bus::BusError};

use crate::{
    biz::{tracker::Tracker, view::Rules, watch::Feed},
    conf::{IDENTITY, Settings},
    data::{MIGRATIONS, connect_store, last_seen::SqlLastSeen},
    service::PresenceServiceApi,
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.presence.v1.PresenceService/GetServiceInfo"];
/// Gateways report without per-call rate limits: their batches are the whole node's traffic.
const UNMETERED: &[&str] = &["switchyard.presence.v1.PresenceService"];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let own = host.settings.service.clone();
    let store = connect_store(host.settings.redis_url.as_deref(), &own.redis_prefix, own.log_max_len)
        .await
        .map_err(|error| StartError::Bus(BusError::Redis(error.to_string())))?;
    let rules = Rules {
        offline_grace_ms: own.offline_grace_ms as i64,
        away_after_ms: own.away_after_ms.max(1) as i64,
        last_seen_refresh_ms: own.last_seen_refresh_ms as i64,
    };
    let last_seen = Arc::new(SqlLastSeen::new(host.database.pool.clone()));
    let tracker = Arc::new(Tracker::new(store, last_seen, rules, own.cached_records));
    let feed = Feed::new();
    tokio::spawn(feed.clone().tail(tracker.clone(), host.shutdown.token()));
    spawn_cleanup(
        tracker.clone(),
        host.about.instance_id.clone(),
        Duration::from_millis(own.cleanup_interval_ms.max(10)),
        host.shutdown.clone(),
    );
    spawn_last_seen(
        tracker.clone(),
        Duration::from_millis(own.last_seen_flush_ms.max(10)),
        host.shutdown.clone(),
    );
    let max_message = host.settings.limits.max_request_bytes;
    let api = PresenceServiceApi::new(host.about.clone(), tracker, feed, host.shutdown.clone(), &own);
    let server = PresenceServiceServer::new(api)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let mut services = GrpcServices::new().with_service(server);
    for path in PUBLIC {
        services = services.public(path);
    }
    for service in UNMETERED {
        services = services.unmetered_service(service);
    }
    host.serve(services).await
}

/// Every replica tries for the cleanup lock each interval; the holder takes lapsed nodes'
/// connections offline and applies due deadlines, so exactly one replica emits those leaves.
fn spawn_cleanup(tracker: Arc<Tracker>, instance: String, every: Duration, shutdown: Shutdown) {
    let lock_ttl = (every.as_millis() as i64).saturating_mul(4).max(1_000);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match tracker.store().hold_cleanup_lock(&instance, lock_ttl).await {
                Ok(true) => {
                    if let Err(error) = tracker.clean_up().await {
                        tracing::warn!(%error, "presence cleanup");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "presence cleanup lock"),
            }
        }
    });
}

/// Writes last seen / last active to the database every `every`, and once more at shutdown.
fn spawn_last_seen(tracker: Arc<Tracker>, every: Duration, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(every) => false,
                () = shutdown.cancelled() => true,
            };
            if let Err(error) = tracker.save_last_seen().await {
                tracing::warn!(%error, "writing last seen");
            }
            if stopping {
                return;
            }
        }
    });
}
