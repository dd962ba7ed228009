//! `WatchResults`: the results now, then again whenever they change. The aggregator's fold
//! count wakes a watcher at once after a fold on this replica; a slow recheck catches folds on
//! other replicas and lifecycle changes. Only changed results are sent, and a watcher that
//! cannot keep up is sent the latest, never a backlog (the channel holds one).

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use switchyard_api::experiments::v1 as pb;
use switchyard_platform::auth::Principal;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::{ExperimentManager, results::results_to, status};
use crate::biz::{management::Caller, results::Results};

/// How often a watcher looks again without a fold here.
const RECHECK: Duration = Duration::from_secs(2);

pub type ResultsStream = Pin<Box<dyn Stream<Item = Result<pb::Results, Status>> + Send>>;

/// Whose results, of what.
pub struct Target {
    pub principal: Principal,
    pub project: String,
    pub key: String,
    pub phase: Option<u32>,
    pub dimension: Option<String>,
}

pub fn results(
    manager: Arc<ExperimentManager>,
    target: Target,
    first: Results,
    mut folds: watch::Receiver<u64>,
) -> ResultsStream {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut last = first;
        if sender
            .send(Ok(results_to(&target.project, &target.key, &last)))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                changed = folds.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RECHECK) => {}
                () = sender.closed() => return,
            }
            let caller = Caller {
                principal: &target.principal,
                request_id: None,
                authorization: None,
                act_for_tenant: None,
            };
            let next = match manager
                .results(
                    caller,
                    &target.project,
                    &target.key,
                    target.phase,
                    target.dimension.as_deref(),
                )
                .await
            {
                Ok(next) => next,
                Err(error) => {
                    let _ = sender.send(Err(status(error))).await;
                    return;
                }
            };
            if next == last {
                continue;
            }
            last = next;
            if sender
                .send(Ok(results_to(&target.project, &target.key, &last)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    }))
}
