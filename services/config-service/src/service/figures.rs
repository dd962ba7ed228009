//! config-service's own Prometheus figures, beside the platform's per-RPC ones: how many
//! watchers are connected, and how many publications and reads the data plane served.

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use switchyard_platform::metrics::Metrics;

#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub watchers: Gauge,
    pub publications: Counter,
    pub reads: Counter,
}

impl Figures {
    pub fn register(metrics: &Metrics) -> Figures {
        let figures = Figures::default();
        metrics.register("config_watchers", "Watch streams open now", figures.watchers.clone());
        metrics.register(
            "config_publications",
            "Releases published, rolled back or promoted",
            figures.publications.clone(),
        );
        metrics.register(
            "config_reads",
            "Published configs served by GetConfig",
            figures.reads.clone(),
        );
        figures
    }
}

/// Held by a watch stream: counts it while it is open.
#[derive(Debug)]
pub struct WatcherGuard(Gauge);

impl WatcherGuard {
    pub fn new(gauge: &Gauge) -> WatcherGuard {
        gauge.inc();
        WatcherGuard(gauge.clone())
    }
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
