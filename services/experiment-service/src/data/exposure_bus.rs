//! flag-service's exposures as they arrive on the change bus (`flag-service.exposures`, JSON
//! lines per batch). Pub/sub: exposures published while no replica of experiment-service
//! listens are not replayed (flag evaluation does not wait for experiments).

use std::sync::Arc;

use futures::{Stream, StreamExt};
use switchyard_platform::bus::{BusError, ChangeBus};

use crate::biz::ingest::FlagExposure;

/// The topic flag-service publishes on.
pub const TOPIC: &str = "flag-service.exposures";

/// Batches of exposures from now on; lines that do not parse are skipped with a warning.
pub async fn subscribe(bus: &Arc<dyn ChangeBus>) -> Result<impl Stream<Item = Vec<FlagExposure>> + use<>, BusError> {
    let messages = bus.subscribe(TOPIC).await?;
    Ok(messages.map(|message| {
        let text = String::from_utf8_lossy(&message.payload);
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| match serde_json::from_str::<FlagExposure>(line) {
                Ok(exposure) => Some(exposure),
                Err(error) => {
                    tracing::warn!(%error, "an exposure from flag-service does not parse; skipped");
                    None
                }
            })
            .collect()
    }))
}
