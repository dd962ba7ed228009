//! Exposure batches on the change bus (Redis pub/sub across replicas), as JSON lines, for
//! experiment-service to consume.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_platform::bus::ChangeBus;

use crate::biz::usage::{Exposure, ExposureSink};

/// The topic exposure batches are published on.
pub const TOPIC: &str = "flag-service.exposures";

#[derive(Debug, Clone)]
pub struct BusExposures {
    bus: Arc<dyn ChangeBus>,
}

impl BusExposures {
    pub fn new(bus: Arc<dyn ChangeBus>) -> Self {
        Self { bus }
    }
}

impl ExposureSink for BusExposures {
    async fn deliver(&self, batch: Vec<Exposure>) -> Result<(), String> {
        let mut lines = String::new();
        for exposure in &batch {
            lines.push_str(&serde_json::to_string(exposure).map_err(|error| error.to_string())?);
            lines.push('\n');
        }
        self.bus
            .publish(TOPIC, Bytes::from(lines))
            .await
            .map_err(|error| error.to_string())
    }
}
