//! Live configuration and flags for browsers: `$config:{project}:{env}` carries
//! config-service's changes to that environment, `$flags:{project}:{env}` flag-service's
//! flag documents for it.
//!
//! A node watches an environment while it has subscribers of its channel (and for a linger
//! after the last leaves) and publishes each change into the channel, where history and
//! recovery work as for any channel. Every node with subscribers watches, so a node dying
//! loses nothing; they publish each change with the same idempotency key (`rev-<revision>`,
//! or the document's digest for flags), so it appears in the channel once. A watcher resumes
//! from the position of the channel's newest publication, after a disconnect and after a
//! restart alike.

use std::{future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use tokio_util::sync::CancellationToken;

use super::{
    broker::{Broker, HistoryQuery},
    channel::Topic,
    feeds::{Resume, keep_following},
    gateway::{Gateway, Outgoing},
};

/// An environment whose changes a channel carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Feed {
    Config { project: String, environment: String },
    Flags { project: String, environment: String },
}

impl Feed {
    /// `$config:shop:prod` → the config feed of shop/prod.
    pub fn of_channel(channel: &str) -> Option<Feed> {
        let (kind, rest) = channel.split_once(':')?;
        let (project, environment) = rest.split_once(':')?;
        if project.is_empty() || environment.is_empty() || environment.contains([':', '#']) {
            return None;
        }
        let (project, environment) = (project.to_owned(), environment.to_owned());
        match kind {
            "$config" => Some(Feed::Config { project, environment }),
            "$flags" => Some(Feed::Flags { project, environment }),
            _ => None,
        }
    }
}

/// Where a feed stands: the config revision, or the flag document's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Revision(u64),
    Digest(String),
}

impl Position {
    /// The idempotency key under which every node publishes this change after `last`.
    /// Revisions only grow; a document can return to an earlier digest (a revert), so its
    /// key names the digest it follows as well.
    fn key(&self, last: Option<&Position>) -> String {
        match (self, last) {
            (Position::Revision(revision), Some(Position::Revision(previous))) if revision < previous => {
                format!("reset-{previous}-{revision}")
            }
            (Position::Revision(revision), _) => format!("rev-{revision}"),
            (Position::Digest(digest), Some(Position::Digest(previous))) => format!("sha-{previous}-{digest}"),
            (Position::Digest(digest), _) => format!("sha-{digest}"),
        }
    }

    /// Read back from a publication the feed made: `{"revision": N, …}` or `{"digest": "…", …}`.
    fn of_publication(data: &[u8]) -> Option<Position> {
        let value: serde_json::Value = serde_json::from_slice(data).ok()?;
        if let Some(revision) = value.get("revision").and_then(serde_json::Value::as_u64) {
            return Some(Position::Revision(revision));
        }
        value
            .get("digest")
            .and_then(serde_json::Value::as_str)
            .map(|digest| Position::Digest(digest.to_owned()))
    }

    /// Whether a change at `self` is news for a channel at `last`.
    fn is_after(&self, last: Option<&Position>) -> bool {
        match (self, last) {
            (_, None) => true,
            (Position::Revision(next), Some(Position::Revision(last))) => next > last,
            (next, Some(last)) => next != last,
        }
    }
}

/// One change, ready to publish: its position and the JSON clients receive (which carries
/// the position as `revision` or `digest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub position: Position,
    pub data: Bytes,
    /// The whole state rather than a step after `since`. A snapshot behind the channel's
    /// position means the source went back (a restored database, a failover to an older
    /// copy): it is published as a reset, never skipped, or subscribers would wait forever.
    pub snapshot: bool,
}

/// Where changes come from (config-service and flag-service over gRPC, in `data/`).
pub trait LiveSource: Send + Sync + 'static {
    /// Changes of `feed` after `since` (a config watch resumes from the revision; a flag
    /// sync starts with the current document).
    fn watch(
        &self,
        feed: &Feed,
        since: Option<&Position>,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Change, String>>, String>> + Send;
}

/// Starts and stops the node's feeds as subscribers come and go.
pub struct LiveFeeds<B, S> {
    gateway: Arc<Gateway<B>>,
    source: Arc<S>,
    /// The tenant whose `$config`/`$flags` channels are fed (the tenant of the watch key).
    tenant: String,
    linger: Duration,
}

impl<B: Broker, S: LiveSource> LiveFeeds<B, S> {
    pub fn new(gateway: Arc<Gateway<B>>, source: S, tenant: String, linger: Duration) -> Self {
        LiveFeeds {
            gateway,
            source: Arc::new(source),
            tenant,
            linger,
        }
    }

    /// Checks the hub every `every` until `shutdown`: a feed starts when its channel gains a
    /// subscriber here and stops `linger` after the last one left.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let wanted = |topic: &Topic| {
            if topic.tenant() != self.tenant {
                return None;
            }
            Feed::of_channel(topic.channel())
        };
        let start = |topic: Topic, feed: Feed, stop: CancellationToken| {
            tokio::spawn(follow(self.gateway.clone(), self.source.clone(), feed, topic, stop));
        };
        keep_following(&self.gateway.hub, every, self.linger, shutdown, wanted, start).await;
    }
}

/// Watches one feed and publishes its changes until `stop`, reconnecting with a jittered
/// backoff and resuming from the channel's newest publication.
async fn follow<B: Broker, S: LiveSource>(
    gateway: Arc<Gateway<B>>,
    source: Arc<S>,
    feed: Feed,
    topic: Topic,
    stop: CancellationToken,
) {
    let mut resume = Resume::default();
    loop {
        let outcome = tokio::select! {
            outcome = follow_once(&gateway, source.as_ref(), &feed, &topic) => outcome,
            () = stop.cancelled() => return,
        };
        if !resume.after("live", &topic, outcome, &stop).await {
            return;
        }
    }
}

async fn follow_once<B: Broker, S: LiveSource>(
    gateway: &Gateway<B>,
    source: &S,
    feed: &Feed,
    topic: &Topic,
) -> Result<(), String> {
    let mut last = newest_position(gateway, topic).await?;
    let mut changes = source.watch(feed, last.as_ref()).await?;
    while let Some(change) = changes.next().await {
        let change = change?;
        let reset = change.snapshot && last.as_ref() != Some(&change.position);
        if !reset && !change.position.is_after(last.as_ref()) {
            continue;
        }
        let outgoing = Outgoing {
            data: change.data,
            tags: Default::default(),
            idempotency_key: Some(change.position.key(last.as_ref())),
        };
        gateway
            .publish(topic.tenant(), topic.channel(), outgoing)
            .await
            .map_err(|error| error.to_string())?;
        last = Some(change.position);
    }
    Ok(())
}

/// The position of the channel's newest publication, if it has one in history.
async fn newest_position<B: Broker>(gateway: &Gateway<B>, topic: &Topic) -> Result<Option<Position>, String> {
    let channel = super::channel::ChannelName::parse(topic.channel()).map_err(|error| error.to_string())?;
    let namespace = gateway.namespaces.of(&channel).map_err(|error| error.to_string())?;
    let policy = gateway.history_policy(namespace);
    let query = HistoryQuery {
        after: None,
        limit: 1,
        reverse: true,
        ttl: policy.ttl,
        meta_ttl: policy.meta_ttl,
    };
    let page = gateway
        .broker
        .history(topic, query)
        .await
        .map_err(|error| error.to_string())?;
    Ok(page
        .publications
        .first()
        .and_then(|publication| Position::of_publication(&publication.data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_feed() {
        assert_eq!(
            Feed::of_channel("$config:shop:prod"),
            Some(Feed::Config {
                project: "shop".into(),
                environment: "prod".into()
            })
        );
        assert!(matches!(Feed::of_channel("$flags:shop:dev"), Some(Feed::Flags { .. })));
        assert_eq!(Feed::of_channel("$config:shop"), None);
        assert_eq!(Feed::of_channel("$config::prod"), None);
        assert_eq!(Feed::of_channel("$config:shop:prod:x"), None);
        assert_eq!(Feed::of_channel("product:shop:prod"), None);
    }

    #[test]
    fn positions_order_changes_and_name_their_idempotency_keys() {
        let five = Position::Revision(5);
        assert!(Position::Revision(6).is_after(Some(&five)));
        assert!(!Position::Revision(5).is_after(Some(&five)));
        assert!(!Position::Revision(4).is_after(Some(&five)));
        assert!(Position::Digest("b".into()).is_after(Some(&Position::Digest("a".into()))));
        assert!(!Position::Digest("a".into()).is_after(Some(&Position::Digest("a".into()))));
        assert_eq!(five.key(None), "rev-5");
        // A revert (b back to a) is a new change, not a repeat of the first a.
        let (a, b) = (Position::Digest("a".into()), Position::Digest("b".into()));
        assert_ne!(a.key(Some(&b)), a.key(None));
        assert_eq!(
            Position::of_publication(br#"{"revision": 7, "configs": []}"#),
            Some(Position::Revision(7))
        );
        assert_eq!(
            Position::of_publication(br#"{"digest": "ab", "flags": {}}"#),
            Some(Position::Digest("ab".into()))
        );
    }
}
