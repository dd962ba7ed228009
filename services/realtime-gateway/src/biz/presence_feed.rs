//! `$presence:{channel}`: who is in a channel, for browsers, without polling. A node that
//! has subscribers of such a channel watches the channel's presence at presence-service and
//! publishes into it: first a `snapshot` of the members, then each `join`, `leave` and
//! `update`. Every node with subscribers watches, and they all publish each event under the
//! same idempotency key, so it appears once and a node dying loses nothing. A watch that
//! presence-service cannot resume starts with a fresh snapshot, which clients apply as a
//! reset. Subscribing also answers with the members at once (see `Session::subscribe`).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{
    broker::Broker,
    channel::{Topic, presence_of},
    feeds::{Resume, keep_following},
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

    /// Checks the hub every `every` until `shutdown`: a feed starts when a `$presence`
    /// channel gains a subscriber here and stops `linger` after the last one left.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let wanted = |topic: &Topic| presence_of(topic.channel()).map(str::to_owned);
        let start = |topic: Topic, watched: String, stop: CancellationToken| {
            tokio::spawn(follow(
                self.gateway.clone(),
                self.directory.clone(),
                topic,
                watched,
                stop,
            ));
        };
        keep_following(&self.gateway.hub, every, self.linger, shutdown, wanted, start).await;
    }
}

/// Follows one channel's presence until `stop`, resuming after the last event published.
async fn follow<B: Broker>(
    gateway: Arc<Gateway<B>>,
    directory: Arc<dyn PresenceDirectory>,
    topic: Topic,
    watched: String,
    stop: CancellationToken,
) {
    let mut cursor: Option<String> = None;
    let mut resume = Resume::default();
    loop {
        let outcome = tokio::select! {
            outcome = follow_once(&gateway, directory.as_ref(), &topic, &watched, &mut cursor) => outcome,
            () = stop.cancelled() => return,
        };
        if !resume.after("presence", &topic, outcome, &stop).await {
            return;
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
