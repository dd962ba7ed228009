//! `$presence:{channel}`: who is in a channel, for browsers, without polling. A node that
//! has subscribers of such a channel watches the channel's presence at presence-service and
//! publishes into it: first a `snapshot` of the members, then each `join`, `leave` and
//! `update`. Every node with subscribers watches, and they all publish each event under the
//! same idempotency key, so it appears once and a node dying loses nothing. A watch that
//! presence-service cannot resume starts with a fresh snapshot, which clients apply as a
//! reset. Subscribing also answers with the members at once (see `Session::subscribe`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{
    broker::Broker,
    channel::{Topic, presence_of},
    gateway::{Gateway, Outgoing},
};

/// A channel member as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: String,
    pub connections: i32,
    pub status: String,
}

/// What a watch of a channel's presence yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    Snapshot {
        cursor: String,
        members: Vec<Member>,
    },
    /// One join, leave or update, as the JSON published to clients.
    Diff {
        cursor: String,
        user: String,
        data: Bytes,
    },
}

/// presence-service, as the gateway reads it for a tenant.
#[async_trait::async_trait]
pub trait PresenceDirectory: Send + Sync + 'static {
    /// The channel's members now (the first 1,000).
    async fn members(&self, tenant: &str, channel: &str) -> Result<Vec<Member>, String>;
    /// A snapshot (unless resuming after `resume`), then every change.
    async fn watch(
        &self,
        tenant: &str,
        channel: &str,
        resume: Option<String>,
    ) -> Result<BoxStream<'static, Result<Watched, String>>, String>;
}

/// The snapshot publication: `{"type":"snapshot","members":[…]}`.
pub fn snapshot_json(members: &[Member]) -> Bytes {
    #[derive(Serialize)]
    struct Snapshot<'a> {
        r#type: &'static str,
        members: &'a [Member],
    }
    serde_json::to_vec(&Snapshot {
        r#type: "snapshot",
        members,
    })
    .map(Bytes::from)
    .unwrap_or_default()
}

/// Starts and stops the node's presence feeds as subscribers come and go.
pub struct PresenceFeeds<B> {
    gateway: Arc<Gateway<B>>,
    directory: Arc<dyn PresenceDirectory>,
    linger: Duration,
}

impl<B: Broker> PresenceFeeds<B> {
    pub fn new(gateway: Arc<Gateway<B>>, directory: Arc<dyn PresenceDirectory>, linger: Duration) -> Self {
        Self {
            gateway,
            directory,
            linger,
        }
    }

    /// Checks the hub every `every` until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let mut running: HashMap<Topic, (CancellationToken, tokio::time::Instant)> = HashMap::new();
        loop {
            let now = tokio::time::Instant::now();
            for (topic, _) in self.gateway.hub.topics() {
                if presence_of(topic.channel()).is_none() {
                    continue;
                }
                if let Some((_, wanted)) = running.get_mut(&topic) {
                    *wanted = now;
                    continue;
                }
                let stop = shutdown.child_token();
                tokio::spawn(follow(
                    self.gateway.clone(),
                    self.directory.clone(),
                    topic.clone(),
                    stop.clone(),
                ));
                running.insert(topic, (stop, now));
            }
            running.retain(|_, (stop, wanted)| {
                let keep = now.duration_since(*wanted) < self.linger;
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
}

/// Follows one channel's presence until `stop`, resuming after interruptions.
async fn follow<B: Broker>(
    gateway: Arc<Gateway<B>>,
    directory: Arc<dyn PresenceDirectory>,
    topic: Topic,
    stop: CancellationToken,
) {
    let Some(watched) = presence_of(topic.channel()).map(str::to_owned) else {
        return;
    };
    let mut cursor: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let outcome = tokio::select! {
            outcome = follow_once(&gateway, directory.as_ref(), &topic, &watched, &mut cursor) => outcome,
            () = stop.cancelled() => return,
        };
        if let Err(error) = outcome {
            failures = failures.saturating_add(1);
            tracing::warn!(channel = topic.channel(), %error, "presence feed interrupted; resuming");
        }
        let ceiling = 250u64 << failures.min(5);
        let delay = Duration::from_millis(rand::random_range(ceiling / 2..=ceiling));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn follow_once<B: Broker>(
    gateway: &Gateway<B>,
    directory: &dyn PresenceDirectory,
    topic: &Topic,
    watched: &str,
    cursor: &mut Option<String>,
) -> Result<(), String> {
    let mut events = directory.watch(topic.tenant(), watched, cursor.clone()).await?;
    while let Some(event) = events.next().await {
        let (position, key, data) = match event? {
            Watched::Snapshot { cursor, members } => {
                (cursor.clone(), format!("snapshot/{cursor}"), snapshot_json(&members))
            }
            Watched::Diff { cursor, user, data } => (cursor.clone(), format!("{cursor}/{user}"), data),
        };
        let outgoing = Outgoing {
            data,
            tags: Default::default(),
            idempotency_key: Some(key),
        };
        gateway
            .publish(topic.tenant(), topic.channel(), outgoing)
            .await
            .map_err(|error| error.to_string())?;
        *cursor = Some(position);
    }
    Err("presence-service ended the watch".to_owned())
}
