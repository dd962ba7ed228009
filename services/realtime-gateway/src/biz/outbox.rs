//! One connection's outgoing queue, bounded in bytes.
//!
//! Publishers push and never wait: when a connection's queue would pass its limit, the
//! connection is marked to close as a slow consumer and the publication is dropped for it
//! alone. The connection's own task drains the queue. An idle connection's queue holds no
//! allocation.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use super::{
    protocol::{Disconnect, Unsubscribed},
    publication::{Delivery, StreamPosition},
};

/// What a connection is sent besides replies to its own commands.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Publication(Arc<Delivery>),
    /// The channel's position after the node lost its feed for a while: a subscriber behind
    /// it has missed something.
    Position {
        channel: Arc<str>,
        position: StreamPosition,
    },
    Unsubscribed(Unsubscribed),
}

/// What a notice (position check, unsubscribe) counts for in the byte limit.
const NOTICE_WEIGHT: usize = 128;

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    closing: Option<Disconnect>,
}

impl Outbox {
    pub fn new(limit: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::default(),
            ready: Notify::new(),
            limit,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a publication; false when the connection is too far behind and is now closing.
    pub fn push_publication(&self, delivery: Arc<Delivery>) -> bool {
        let mut state = self.state();
        if state.closing.is_some() {
            return true;
        }
        let weight = delivery.weight();
        if state.bytes + weight > self.limit {
            state.items.clear();
            state.bytes = 0;
            state.closing = Some(Disconnect::new(Disconnect::SLOW_CONSUMER, "slow consumer"));
            drop(state);
            self.ready.notify_one();
            return false;
        }
        state.bytes += weight;
        state.items.push_back(Outgoing::Publication(delivery));
        drop(state);
        self.ready.notify_one();
        true
    }

    /// Queues a notice, counted against the limit as a small fixed size (notices are few;
    /// a connection that lets even those pile up is closed like any slow consumer).
    pub fn push(&self, item: Outgoing) {
        let mut state = self.state();
        if state.closing.is_some() {
            return;
        }
        if state.bytes + NOTICE_WEIGHT > self.limit {
            state.items.clear();
            state.bytes = 0;
            state.closing = Some(Disconnect::new(Disconnect::SLOW_CONSUMER, "slow consumer"));
        } else {
            state.bytes += NOTICE_WEIGHT;
            state.items.push_back(item);
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Asks the connection to close; the first reason wins.
    pub fn close(&self, reason: Disconnect) {
        let mut state = self.state();
        if state.closing.is_none() {
            state.closing = Some(reason);
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Waits until something is queued or the connection should close.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves everything queued into `into`; returns the close reason once there is one.
    pub fn drain(&self, into: &mut Vec<Outgoing>) -> Option<Disconnect> {
        let mut state = self.state();
        if let Some(reason) = state.closing.clone() {
            return Some(reason);
        }
        into.extend(state.items.drain(..));
        state.bytes = 0;
        if state.items.capacity() > 64 {
            state.items.shrink_to(16);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::biz::publication::Publication;

    fn delivery(size: usize) -> Arc<Delivery> {
        let data = format!("\"{}\"", "x".repeat(size));
        Delivery::new(
            "c".into(),
            "e".into(),
            Publication {
                offset: 1,
                data: Bytes::from(data),
                tags: BTreeMap::new(),
                time_ms: 0,
            },
        )
    }

    #[test]
    fn a_consumer_that_falls_behind_is_closed_and_its_queue_dropped() {
        let outbox = Outbox::new(1_000);
        assert!(outbox.push_publication(delivery(300)));
        assert!(outbox.push_publication(delivery(300)));
        assert!(!outbox.push_publication(delivery(600)));
        let mut drained = Vec::new();
        let reason = outbox.drain(&mut drained).unwrap();
        assert_eq!(reason.code, Disconnect::SLOW_CONSUMER);
        assert!(drained.is_empty());
    }

    #[test]
    fn draining_frees_room_for_more() {
        let outbox = Outbox::new(1_000);
        for _ in 0..10 {
            assert!(outbox.push_publication(delivery(300)));
            assert!(outbox.push_publication(delivery(300)));
            let mut drained = Vec::new();
            assert!(outbox.drain(&mut drained).is_none());
            assert_eq!(drained.len(), 2);
        }
    }
}
