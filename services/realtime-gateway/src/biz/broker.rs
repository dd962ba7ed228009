//! The broker: where offsets, epochs and history live, and how publications reach every node.
//!
//! In memory for one node, in Redis for many (`data/`). Either way a publish assigns the
//! next offset, appends to history and fans out as one step, so what a subscriber receives
//! live and what it would read from history never disagree.

use std::{future::Future, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    channel::Topic,
    publication::{Publication, StreamPosition},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached; the caller may retry.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// How long a namespace keeps its channels' publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Publications kept per channel; 0 keeps none.
    pub size: usize,
    pub ttl: Duration,
    /// How long the channel's position outlives its last publication.
    pub meta_ttl: Duration,
}

/// One publish: the publication without its offset (the broker assigns it).
#[derive(Debug, Clone)]
pub struct PublishCommand {
    pub topic: Topic,
    pub publication: Publication,
    pub history: HistoryPolicy,
    /// With a key, a repeat within `idempotency_ttl` returns the first result.
    pub idempotency_key: Option<String>,
    pub idempotency_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub position: StreamPosition,
    /// The idempotency key matched an earlier publish; nothing was published now.
    pub duplicate: bool,
}

/// What to read from a channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only publications after this offset (all kept ones when None).
    pub after: Option<u64>,
    pub limit: usize,
    pub reverse: bool,
    /// Publications older than this are treated as gone (history TTL per publication).
    pub ttl: Duration,
    pub meta_ttl: Duration,
}

/// Publications read from history, with the channel's current position. Reading history
/// gives a channel that never had a publication its epoch, so subscribers learn a position
/// they can recover from later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub publications: Vec<Publication>,
    pub position: StreamPosition,
}

/// Node-to-node commands that act on connections wherever they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// Unsubscribe a user's connections from a channel.
    Unsubscribe {
        tenant: String,
        user: String,
        channel: String,
    },
    /// Close a user's connections.
    Disconnect {
        tenant: String,
        user: String,
        reconnect: bool,
        reason: String,
    },
}

/// What each node reports about itself, for `Info` and `Channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub id: String,
    pub version: String,
    pub connections: u32,
    pub users: u32,
    pub subscriptions: u32,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    /// Subscribers per topic on this node.
    pub topics: Vec<(String, u32)>,
}

/// Where the broker delivers what it receives: the node's hub.
pub trait BrokerSink: Send + Sync + 'static {
    /// A publication for a topic this node subscribed to, in offset order per topic.
    fn deliver(&self, topic: &Topic, epoch: &Arc<str>, publication: Publication);
    fn control(&self, control: Control);
    /// The broker lost its feed for a while: publications may have been missed. The hub
    /// asks for every subscribed topic's position and lets behind subscribers know.
    fn resynchronize(&self, positions: Vec<(Topic, StreamPosition)>);
    /// Whether this node still has subscribers of `topic` (so the broker keeps its feed).
    fn has_subscribers(&self, topic: &Topic) -> bool;
    /// Every topic this node has subscribers of.
    fn subscribed_topics(&self) -> Vec<Topic>;
}

pub trait Broker: Send + Sync + 'static {
    fn publish(&self, command: PublishCommand) -> impl Future<Output = Result<Published, BrokerError>> + Send;

    fn history(
        &self,
        topic: &Topic,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<HistoryPage, BrokerError>> + Send;

    /// Drops kept publications; the position and epoch stay.
    fn remove_history(&self, topic: &Topic) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// From when this returns, publications of `topic` reach this node's sink.
    fn subscribe(&self, topic: &Topic) -> impl Future<Output = Result<(), BrokerError>> + Send;

    fn unsubscribe(&self, topic: &Topic) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Runs `control` on every node, this one included.
    fn control(&self, control: Control) -> impl Future<Output = Result<(), BrokerError>> + Send;

    fn report(&self, report: NodeReport) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Reports of nodes that reported within `fresh` (older ones are dropped).
    fn nodes(&self, fresh: Duration) -> impl Future<Output = Result<Vec<NodeReport>, BrokerError>> + Send;
}

/// The outcome of a recovery: exactly the missed publications, or nothing and a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    Recovered(Vec<Publication>),
    Impossible,
}

/// Decides whether `page` (read with `after = since.offset`) is exactly what a client at
/// `since` missed: the same epoch, and publications from `since.offset + 1` to the current
/// offset without a hole. Anything less is [`Recovery::Impossible`], never a partial replay.
pub fn recover(since: &StreamPosition, page: HistoryPage) -> Recovery {
    let current = &page.position;
    if since.epoch != current.epoch || since.offset > current.offset {
        return Recovery::Impossible;
    }
    let missed = current.offset - since.offset;
    let contiguous = page
        .publications
        .iter()
        .zip(since.offset + 1..)
        .all(|(publication, expected)| publication.offset == expected);
    if page.publications.len() as u64 != missed || !contiguous {
        return Recovery::Impossible;
    }
    Recovery::Recovered(page.publications)
}

/// A fresh epoch: random, short, printable.
pub fn new_epoch() -> Arc<str> {
    let bytes: [u8; 6] = rand::random();
    hex::encode(bytes).into()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn publication(offset: u64) -> Publication {
        Publication {
            offset,
            data: bytes::Bytes::from_static(b"1"),
            tags: BTreeMap::new(),
            time_ms: 0,
        }
    }

    fn page(offsets: &[u64], top: u64, epoch: &str) -> HistoryPage {
        HistoryPage {
            publications: offsets.iter().copied().map(publication).collect(),
            position: StreamPosition {
                offset: top,
                epoch: epoch.into(),
            },
        }
    }

    fn at(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: epoch.into(),
        }
    }

    #[test]
    fn recovery_replays_exactly_the_missed_publications() {
        assert_eq!(
            recover(&at(3, "e"), page(&[4, 5, 6], 6, "e")),
            Recovery::Recovered(vec![publication(4), publication(5), publication(6)])
        );
        assert_eq!(recover(&at(6, "e"), page(&[], 6, "e")), Recovery::Recovered(vec![]));
    }

    #[test]
    fn recovery_never_replays_part_of_what_was_missed() {
        // The oldest missed publication fell out of history.
        assert_eq!(recover(&at(3, "e"), page(&[5, 6], 6, "e")), Recovery::Impossible);
        // A hole in the middle.
        assert_eq!(recover(&at(3, "e"), page(&[4, 6], 6, "e")), Recovery::Impossible);
        // The page stopped before the current offset.
        assert_eq!(recover(&at(3, "e"), page(&[4, 5], 6, "e")), Recovery::Impossible);
        // Another epoch: the stream was lost and started over.
        assert_eq!(recover(&at(3, "old"), page(&[4, 5, 6], 6, "e")), Recovery::Impossible);
        // A position from the future.
        assert_eq!(recover(&at(9, "e"), page(&[], 6, "e")), Recovery::Impossible);
    }
}
