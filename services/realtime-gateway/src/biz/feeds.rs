//! What `$config`/`$flags` feeds (`live`) and `$presence` feeds (`presence_feed`) share: a
//! node follows a source for each channel that has subscribers here — and for a linger after
//! the last one left — and a follow that ends or fails resumes after a jittered delay that
//! grows with consecutive failures ([`Resume`]).

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{channel::Topic, hub::Hub};

/// Checks `hub` every `every` until `shutdown`. A topic `wanted` maps to a feed, and has
/// none running yet, gets one from `start`, with a token cancelled `linger` after the
/// topic's last subscriber here left.
pub async fn keep_following<F>(
    hub: &Hub,
    every: Duration,
    linger: Duration,
    shutdown: CancellationToken,
    wanted: impl Fn(&Topic) -> Option<F>,
    start: impl Fn(Topic, F, CancellationToken),
) {
    // Each running feed's stop token and when its channel last had a subscriber here.
    let mut running: HashMap<Topic, (CancellationToken, Instant)> = HashMap::new();
    loop {
        let now = Instant::now();
        for (topic, _) in hub.topics() {
            let Some(feed) = wanted(&topic) else {
                continue;
            };
            if let Some((_, last_wanted)) = running.get_mut(&topic) {
                *last_wanted = now;
                continue;
            }
            let stop = shutdown.child_token();
            start(topic.clone(), feed, stop.clone());
            running.insert(topic, (stop, now));
        }
        running.retain(|_, (stop, last_wanted)| {
            let keep = now.duration_since(*last_wanted) < linger;
            if !keep {
                stop.cancel();
            }
            keep
        });
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Paces a feed's reconnects: a quarter second after a run that ended cleanly, up to eight
/// seconds after failures in a row (jittered, so nodes do not all come back together).
#[derive(Debug, Default)]
pub struct Resume {
    failures: u32,
}

impl Resume {
    /// Logs a failed run (`what` names the feed), then waits before the next one. False once
    /// `stop` is cancelled: the feed ends.
    pub async fn after(
        &mut self,
        what: &str,
        topic: &Topic,
        outcome: Result<(), String>,
        stop: &CancellationToken,
    ) -> bool {
        match outcome {
            Ok(()) => self.failures = 0,
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                tracing::warn!(channel = topic.channel(), %error, "{what} feed interrupted; resuming");
            }
        }
        let ceiling = 250u64 << self.failures.min(5);
        let delay = Duration::from_millis(rand::random_range(ceiling / 2..=ceiling));
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = stop.cancelled() => false,
        }
    }
}
