//! Keeps the aggregates up to date: after each acknowledged batch (and on a slow tick, for
//! batches another replica acknowledged or a crash left behind) it folds every pending batch,
//! and counts its folds on `folded` so result watchers know when to look again.

use std::{sync::Arc, time::Duration};

use switchyard_platform::Shutdown;
use tokio::sync::{Notify, watch};

use super::repository::ExperimentRepository;

/// How often to look for pending batches nobody announced.
const TICK: Duration = Duration::from_millis(250);
/// How long to wait before retrying after a storage failure.
const BACKOFF: Duration = Duration::from_secs(1);

/// Folds pending batches until `shutdown`; `wake` is notified by ingestion.
pub async fn run<R: ExperimentRepository>(
    repository: R,
    wake: Arc<Notify>,
    folded: watch::Sender<u64>,
    shutdown: Shutdown,
) {
    loop {
        match repository.fold_pending().await {
            Ok(true) => {
                folded.send_modify(|folds| *folds += 1);
                continue;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "folding a batch into the aggregates failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(BACKOFF) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
