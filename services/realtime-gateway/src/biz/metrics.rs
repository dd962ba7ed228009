//! The gateway's own figures on `/metrics`, beside the platform's request metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
};

/// `recovered` or `unrecoverable`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RecoveryLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DisconnectLabels {
    pub code: u16,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub connections: Gauge,
    pub subscriptions: Gauge,
    /// Publications accepted by this node (server API and client publishes).
    pub publications_accepted: Counter,
    /// Publications this node received for fan-out (from its broker).
    pub publications_in: Counter,
    /// Publications handed to subscribers: written at once or queued for their tasks.
    pub queued: Counter,
    /// Publications written to client sockets.
    pub delivered: Counter,
    /// Publish accepted → written to a socket, in seconds.
    pub delivery_latency: Histogram,
    pub slow_consumers: Counter,
    pub disconnects: Family<DisconnectLabels, Counter>,
    pub recoveries: Family<RecoveryLabels, Counter>,
    /// Connections refused by a per-user or per-address limit.
    pub connections_refused: Counter,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        GatewayMetrics {
            connections: Gauge::default(),
            subscriptions: Gauge::default(),
            publications_accepted: Counter::default(),
            publications_in: Counter::default(),
            queued: Counter::default(),
            delivered: Counter::default(),
            delivery_latency: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            slow_consumers: Counter::default(),
            disconnects: Family::default(),
            recoveries: Family::default(),
            connections_refused: Counter::default(),
        }
    }

    /// A publication accepted at `published_at_ms` was written to a client at `now_ms`.
    pub fn record_delivery(&self, published_at_ms: i64, now_ms: i64) {
        self.record_deliveries(1, published_at_ms, now_ms);
    }

    /// `count` clients were written the same publication at `now_ms`.
    pub fn record_deliveries(&self, count: u64, published_at_ms: i64, now_ms: i64) {
        self.delivered.inc_by(count);
        let seconds = (now_ms - published_at_ms).max(0) as f64 / 1000.0;
        for _ in 0..count {
            self.delivery_latency.observe(seconds);
        }
    }

    /// Each metric with its name and help, for the platform registry.
    pub fn register(&self, registry: &switchyard_platform::metrics::Metrics) {
        registry.register(
            "realtime_connections",
            "Open client connections (WebSocket and SSE)",
            self.connections.clone(),
        );
        registry.register(
            "realtime_subscriptions",
            "Channel subscriptions of open connections",
            self.subscriptions.clone(),
        );
        registry.register(
            "realtime_publications_accepted",
            "Publications accepted by this node",
            self.publications_accepted.clone(),
        );
        registry.register(
            "realtime_publications_in",
            "Publications received by this node for fan-out",
            self.publications_in.clone(),
        );
        registry.register(
            "realtime_publications_queued",
            "Publications handed to subscribers (written at once or queued)",
            self.queued.clone(),
        );
        registry.register(
            "realtime_publications_delivered",
            "Publications written to client sockets",
            self.delivered.clone(),
        );
        registry.register(
            "realtime_delivery_latency_seconds",
            "From publish accepted to written to a client socket",
            self.delivery_latency.clone(),
        );
        registry.register(
            "realtime_slow_consumer_disconnects",
            "Clients disconnected for falling behind",
            self.slow_consumers.clone(),
        );
        registry.register(
            "realtime_disconnects",
            "Connections closed by the server, by code",
            self.disconnects.clone(),
        );
        registry.register(
            "realtime_recoveries",
            "Subscriptions that asked to recover, by outcome",
            self.recoveries.clone(),
        );
        registry.register(
            "realtime_connections_refused",
            "Connections refused by a per-user or per-address limit",
            self.connections_refused.clone(),
        );
    }
}
