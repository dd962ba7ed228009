//! Where presence state lives in Redis: the one spelling of each key (under the store's
//! prefix), for the commit batch and the queries alike. The Lua scripts spell the few they
//! compute themselves (`u:`, `n:`).

use std::fmt::{self, Display};

/// A key of the store, without the prefix. Writes group by it and spell it once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key<'a> {
    /// A tenant's records (hash).
    Records(&'a str),
    /// Due times (sorted set).
    Due,
    /// A tenant's online users (sorted set, lexically).
    Online(&'a str),
    /// A channel's members (sorted set, lexically).
    Members(&'a str, &'a str),
    /// A node's connections (set).
    Node(&'a str),
    /// A channel's connection count.
    ChannelConnections(&'a str, &'a str),
    /// A page's viewer count.
    PageViewers(&'a str, &'a str),
}

impl Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Records(tenant) => write!(f, "u:{tenant}"),
            Key::Due => f.write_str("due"),
            Key::Online(tenant) => write!(f, "on:{tenant}"),
            Key::Members(tenant, channel) => write!(f, "cm:{tenant}:{channel}"),
            Key::Node(node) => write!(f, "n:{node}"),
            Key::ChannelConnections(tenant, channel) => write!(f, "cc:{tenant}:{channel}"),
            Key::PageViewers(tenant, page) => write!(f, "pv:{tenant}:{page}"),
        }
    }
}
