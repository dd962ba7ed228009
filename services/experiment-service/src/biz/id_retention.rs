//! How long ingestion remembers ids. An exposure or event carrying its own time is accepted
//! only while that time is within `max_age` of the server's clock, and at most `max_skew`
//! ahead of it when first received; so once an id was received `max_age + max_skew` ago, any
//! replay of it is refused as too old and the id itself is no longer needed. Items without a
//! time are stamped on arrival, so their replays are counted once within that same window
//! (7 days by default; the issue asks for at least 24 hours). Without this the table of ids
//! grew by one row per event, for ever.

use std::time::Duration;

use switchyard_platform::{Shutdown, clock::now_ms};

use super::{ingest::IngestLimits, repository::ExperimentRepository};

/// How often expired ids are looked for.
const EVERY: Duration = Duration::from_secs(600);

/// The receive time before which ids may be forgotten, at `now_ms`.
pub fn forget_before(limits: &IngestLimits, now_ms: i64) -> i64 {
    now_ms - limits.max_age_ms - limits.max_skew_ms
}

/// Forgets expired ids every [`EVERY`] until `shutdown`.
pub async fn run<R: ExperimentRepository>(repository: R, limits: IngestLimits, shutdown: Shutdown) {
    loop {
        match repository.forget_ids(forget_before(&limits, now_ms())).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot the ids of exposures and events past their window"),
            Err(error) => tracing::warn!(%error, "forgetting expired ids failed; trying again later"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
