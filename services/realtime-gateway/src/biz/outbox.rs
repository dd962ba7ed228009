//! One connection's delivery state: the channels it subscribes to with the last offset it
//! received in each, and what waits to be written to it.
//!
//! Publishers never wait. A publication that is the next one the connection expects goes
//! straight to its [`Wire`] when the connection has one and nothing else is in flight
//! (no queued item, no command being answered): one publication then reaches a hundred
//! subscribers without waking a hundred tasks. Everything else — notices, publications
//! that arrive while the connection's task is busy, connections that batch or speak SSE —
//! is queued and handed to the task, which applies the same rule ([`Outbox::accept`]).
//!
//! The queue is bounded in bytes: a connection that would pass its limit is marked to
//! close as a slow consumer and the publication is dropped for it alone. An idle
//! connection's queue holds no allocation.

use std::{
    collections::{HashMap, VecDeque},
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

/// What the transport writes to the client for a queued item that passed
/// [`Outbox::accept`].
#[derive(Debug, Clone)]
pub enum Event {
    Publication(Arc<Delivery>),
    Unsubscribed(Unsubscribed),
}

/// A transport that can take a message without waiting: a WebSocket's socket.
/// It writes what the socket takes now and keeps the rest, in order, for its connection's
/// task to finish; messages are never split or interleaved.
pub trait Wire: Send + Sync {
    /// Takes one message (pushes joined by newlines); `Err` when what it keeps unwritten
    /// would pass its limit, in which case it took nothing.
    fn send(&self, message: &[u8]) -> Result<(), WireFull>;

    /// Bytes it keeps that the socket has not taken yet.
    fn backlog(&self) -> usize;
}

/// The connection's socket is too far behind: a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFull;

/// What became of a publication pushed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Handed to the connection's wire.
    Written,
    /// Queued for the connection's task (or not needed: the connection has it already, or
    /// is closing).
    Queued,
    /// The connection is too far behind: it is now closing as a slow consumer.
    SlowConsumer,
}

/// What a notice (position check, unsubscribe) counts for in the byte limit.
const NOTICE_WEIGHT: usize = 128;

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    limit: usize,
}

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    closing: Option<Disconnect>,
    /// The last position received per subscribed channel.
    subscriptions: HashMap<Arc<str>, StreamPosition>,
    /// Subscriptions [`Outbox::accept`] ended, whose hub entries the session has to release.
    ended: Vec<Arc<str>>,
    /// Where publications may be written at once, when the connection has such a transport.
    wire: Option<Arc<dyn Wire>>,
    /// The connection's task is answering a command or draining the queue: whatever
    /// arrives meanwhile is queued behind it.
    held: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("queued", &self.items.len())
            .field("bytes", &self.bytes)
            .field("closing", &self.closing)
            .field("subscriptions", &self.subscriptions.len())
            .field("direct", &self.wire.is_some())
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// Keeps publishers from writing to the connection while its task writes: dropped, it
/// lets them write again. What they queued meanwhile has already woken the task.
#[must_use]
pub struct Hold<'a> {
    outbox: &'a Outbox,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.outbox.state().held = false;
    }
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

    /// From now on, publications that need no decision by the connection's task are
    /// written to `wire` by the publisher.
    pub fn attach(&self, wire: Arc<dyn Wire>) {
        self.state().wire = Some(wire);
    }

    /// The connection is ending: publishers write nothing more to it.
    pub fn detach(&self) {
        self.state().wire = None;
    }

    /// Queues everything that arrives until the returned guard is dropped, so that what the
    /// task writes meanwhile (replies, drained pushes) keeps its place in the stream.
    pub fn hold(&self) -> Hold<'_> {
        self.state().held = true;
        Hold { outbox: self }
    }

    /// Writes a publication to the connection's wire when it is the next one the connection
    /// expects and nothing is ahead of it; queues it otherwise.
    pub fn push_publication(&self, delivery: Arc<Delivery>) -> Pushed {
        self.offer(delivery, true)
    }

    /// Queues a publication for the connection's task, whatever its state.
    pub fn queue_publication(&self, delivery: Arc<Delivery>) -> Pushed {
        self.offer(delivery, false)
    }

    fn offer(&self, delivery: Arc<Delivery>, may_write: bool) -> Pushed {
        let mut state = self.state();
        if state.closing.is_some() {
            return Pushed::Queued;
        }
        let written = if may_write { state.write_now(&delivery) } else { None };
        match written {
            Some(Ok(())) => return Pushed::Written,
            Some(Err(WireFull)) => {
                self.slow_consumer(state);
                return Pushed::SlowConsumer;
            }
            None => {}
        }
        let weight = delivery.weight();
        // What the wire still holds counts too: queue and wire together stay within the limit.
        let unwritten = state.wire.as_ref().map_or(0, |wire| wire.backlog());
        if state.bytes + unwritten + weight > self.limit {
            self.slow_consumer(state);
            return Pushed::SlowConsumer;
        }
        state.bytes += weight;
        state.items.push_back(Outgoing::Publication(delivery));
        drop(state);
        self.ready.notify_one();
        Pushed::Queued
    }

    /// Queues a notice, counted against the limit as a small fixed size (notices are few;
    /// a connection that lets even those pile up is closed like any slow consumer).
    pub fn push(&self, item: Outgoing) {
        let mut state = self.state();
        if state.closing.is_some() {
            return;
        }
        if state.bytes + NOTICE_WEIGHT > self.limit {
            self.slow_consumer(state);
            return;
        }
        state.bytes += NOTICE_WEIGHT;
        state.items.push_back(item);
        drop(state);
        self.ready.notify_one();
    }

    fn slow_consumer(&self, mut state: MutexGuard<'_, State>) {
        state.items.clear();
        state.bytes = 0;
        state.closing = Some(Disconnect::new(Disconnect::SLOW_CONSUMER, "slow consumer"));
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

    /// Decides what a drained item means for the client: drops what it has already, turns
    /// a gap into an `unsubscribe` push that asks it to resubscribe with recovery. A
    /// subscription ended here stays in the hub until the session releases
    /// [`Outbox::take_ended`].
    pub fn accept(&self, item: Outgoing) -> Option<Event> {
        let mut state = self.state();
        match item {
            Outgoing::Publication(delivery) => {
                let last = state.subscriptions.get_mut(&delivery.channel)?;
                if is_next(last, &delivery) {
                    last.offset = delivery.publication.offset;
                    return Some(Event::Publication(delivery));
                }
                if delivery.epoch == last.epoch && delivery.publication.offset <= last.offset {
                    return None;
                }
                Some(state.insufficient_state(delivery.channel.clone()))
            }
            Outgoing::Position { channel, position } => {
                let last = state.subscriptions.get(&channel)?;
                if position.epoch == last.epoch && position.offset <= last.offset {
                    return None;
                }
                Some(state.insufficient_state(channel))
            }
            Outgoing::Unsubscribed(unsubscribed) => {
                state.subscriptions.remove(&unsubscribed.channel)?;
                state.ended.push(unsubscribed.channel.clone());
                Some(Event::Unsubscribed(unsubscribed))
            }
        }
    }

    /// Starts delivering `channel` after `position`.
    pub fn add_subscription(&self, channel: Arc<str>, position: StreamPosition) {
        self.state().subscriptions.insert(channel, position);
    }

    /// Stops delivering `channel`; false when it was not subscribed.
    pub fn remove_subscription(&self, channel: &str) -> bool {
        self.state().subscriptions.remove(channel).is_some()
    }

    pub fn has_subscription(&self, channel: &str) -> bool {
        self.state().subscriptions.contains_key(channel)
    }

    pub fn subscription_count(&self) -> usize {
        self.state().subscriptions.len()
    }

    pub fn subscribed_channels(&self) -> Vec<Arc<str>> {
        self.state().subscriptions.keys().cloned().collect()
    }

    /// The last position delivered in `channel`.
    pub fn position(&self, channel: &str) -> Option<StreamPosition> {
        self.state().subscriptions.get(channel).cloned()
    }

    /// Whether [`Outbox::accept`] ended subscriptions that still hold their hub entries.
    pub fn has_ended(&self) -> bool {
        !self.state().ended.is_empty()
    }

    pub fn take_ended(&self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.state().ended)
    }

    /// Every channel that may still hold a hub entry: subscribed or ended. Forgets them all.
    pub fn take_all_channels(&self) -> Vec<Arc<str>> {
        let mut state = self.state();
        let mut channels: Vec<Arc<str>> = state.subscriptions.drain().map(|(channel, _)| channel).collect();
        channels.append(&mut state.ended);
        channels
    }
}

/// Whether `delivery` is exactly the publication after `last`.
fn is_next(last: &StreamPosition, delivery: &Delivery) -> bool {
    delivery.epoch == last.epoch && delivery.publication.offset == last.offset + 1
}

impl State {
    /// Writes `delivery` to the wire when nothing needs the task: the connection has a
    /// wire, nothing is queued or held, and this is exactly the next publication of the
    /// channel. None leaves it to the queue (and to [`Outbox::accept`]).
    fn write_now(&mut self, delivery: &Delivery) -> Option<Result<(), WireFull>> {
        if self.held || !self.items.is_empty() {
            return None;
        }
        let wire = self.wire.as_ref()?;
        let last = self.subscriptions.get_mut(&delivery.channel)?;
        if !is_next(last, delivery) {
            return None;
        }
        if let Err(full) = wire.send(&delivery.json) {
            return Some(Err(full));
        }
        last.offset = delivery.publication.offset;
        Some(Ok(()))
    }

    fn insufficient_state(&mut self, channel: Arc<str>) -> Event {
        self.subscriptions.remove(&channel);
        self.ended.push(channel.clone());
        Event::Unsubscribed(Unsubscribed {
            channel,
            code: Unsubscribed::INSUFFICIENT_STATE,
            reason: "publications may have been missed: resubscribe with recover",
            resubscribe: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::biz::publication::Publication;

    fn delivery_at(channel: &str, offset: u64, size: usize) -> Arc<Delivery> {
        let data = format!("\"{}\"", "x".repeat(size));
        Delivery::new(
            channel.into(),
            "e".into(),
            Publication {
                offset,
                data: Bytes::from(data),
                tags: BTreeMap::new(),
                time_ms: 0,
            },
        )
    }

    fn delivery(size: usize) -> Arc<Delivery> {
        delivery_at("c", 1, size)
    }

    /// A wire that takes up to `room` messages.
    #[derive(Default)]
    struct RecordingWire {
        sent: Mutex<Vec<u64>>,
        room: usize,
    }

    impl Wire for RecordingWire {
        fn send(&self, message: &[u8]) -> Result<(), WireFull> {
            let mut sent = self.sent.lock().unwrap();
            if sent.len() >= self.room {
                return Err(WireFull);
            }
            let push: serde_json::Value = serde_json::from_slice(message).unwrap();
            sent.push(push["push"]["pub"]["offset"].as_u64().unwrap());
            Ok(())
        }

        fn backlog(&self) -> usize {
            0
        }
    }

    fn subscribed_with_wire(room: usize) -> (Arc<Outbox>, Arc<RecordingWire>) {
        let outbox = Outbox::new(10_000);
        outbox.add_subscription(
            "c".into(),
            StreamPosition {
                offset: 0,
                epoch: "e".into(),
            },
        );
        let wire = Arc::new(RecordingWire {
            room,
            ..Default::default()
        });
        outbox.attach(wire.clone());
        (outbox, wire)
    }

    fn drained_offsets(outbox: &Outbox) -> Vec<u64> {
        let mut drained = Vec::new();
        assert!(outbox.drain(&mut drained).is_none());
        drained
            .into_iter()
            .filter_map(|item| match outbox.accept(item) {
                Some(Event::Publication(delivery)) => Some(delivery.publication.offset),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_consumer_that_falls_behind_is_closed_and_its_queue_dropped() {
        let outbox = Outbox::new(1_000);
        assert_eq!(outbox.push_publication(delivery(300)), Pushed::Queued);
        assert_eq!(outbox.push_publication(delivery(300)), Pushed::Queued);
        assert_eq!(outbox.push_publication(delivery(600)), Pushed::SlowConsumer);
        let mut drained = Vec::new();
        let reason = outbox.drain(&mut drained).unwrap();
        assert_eq!(reason.code, Disconnect::SLOW_CONSUMER);
        assert!(drained.is_empty());
    }

    #[test]
    fn draining_frees_room_for_more() {
        let outbox = Outbox::new(1_000);
        for _ in 0..10 {
            assert_eq!(outbox.push_publication(delivery(300)), Pushed::Queued);
            assert_eq!(outbox.push_publication(delivery(300)), Pushed::Queued);
            let mut drained = Vec::new();
            assert!(outbox.drain(&mut drained).is_none());
            assert_eq!(drained.len(), 2);
        }
    }

    #[test]
    fn the_next_publication_goes_straight_to_the_wire() {
        let (outbox, wire) = subscribed_with_wire(usize::MAX);
        for offset in 1..=3 {
            assert_eq!(outbox.push_publication(delivery_at("c", offset, 10)), Pushed::Written);
        }
        assert_eq!(*wire.sent.lock().unwrap(), [1, 2, 3]);
        assert_eq!(outbox.position("c").unwrap().offset, 3);
        assert!(drained_offsets(&outbox).is_empty());
    }

    #[test]
    fn while_held_publications_queue_and_keep_their_order() {
        let (outbox, wire) = subscribed_with_wire(usize::MAX);
        let hold = outbox.hold();
        assert_eq!(outbox.push_publication(delivery_at("c", 1, 10)), Pushed::Queued);
        drop(hold);
        // Something is still queued: the next one must wait behind it, not overtake it.
        assert_eq!(outbox.push_publication(delivery_at("c", 2, 10)), Pushed::Queued);
        assert!(wire.sent.lock().unwrap().is_empty());
        assert_eq!(drained_offsets(&outbox), [1, 2]);
        assert_eq!(outbox.push_publication(delivery_at("c", 3, 10)), Pushed::Written);
        assert_eq!(*wire.sent.lock().unwrap(), [3]);
    }

    #[test]
    fn a_publication_offered_for_the_queue_is_never_written_by_the_publisher() {
        let (outbox, wire) = subscribed_with_wire(usize::MAX);
        assert_eq!(outbox.queue_publication(delivery_at("c", 1, 10)), Pushed::Queued);
        assert_eq!(outbox.push_publication(delivery_at("c", 2, 10)), Pushed::Queued);
        assert!(wire.sent.lock().unwrap().is_empty());
        assert_eq!(drained_offsets(&outbox), [1, 2]);
    }

    #[test]
    fn a_gap_or_a_duplicate_is_left_to_the_task() {
        let (outbox, wire) = subscribed_with_wire(usize::MAX);
        assert_eq!(outbox.push_publication(delivery_at("c", 1, 10)), Pushed::Written);
        assert_eq!(outbox.push_publication(delivery_at("c", 1, 10)), Pushed::Queued);
        assert_eq!(outbox.push_publication(delivery_at("c", 3, 10)), Pushed::Queued);
        assert_eq!(outbox.push_publication(delivery_at("other", 1, 10)), Pushed::Queued);
        assert_eq!(*wire.sent.lock().unwrap(), [1]);
        let mut drained = Vec::new();
        assert!(outbox.drain(&mut drained).is_none());
        let events: Vec<_> = drained.into_iter().filter_map(|item| outbox.accept(item)).collect();
        // The duplicate and the unsubscribed channel are dropped; the gap ends the subscription.
        assert!(matches!(&events[..], [Event::Unsubscribed(ended)] if ended.code == Unsubscribed::INSUFFICIENT_STATE));
        assert!(!outbox.has_subscription("c"));
        assert_eq!(outbox.take_ended(), [Arc::<str>::from("c")]);
    }

    #[test]
    fn a_full_wire_closes_the_connection_as_a_slow_consumer() {
        let (outbox, wire) = subscribed_with_wire(2);
        assert_eq!(outbox.push_publication(delivery_at("c", 1, 10)), Pushed::Written);
        assert_eq!(outbox.push_publication(delivery_at("c", 2, 10)), Pushed::Written);
        assert_eq!(outbox.push_publication(delivery_at("c", 3, 10)), Pushed::SlowConsumer);
        assert_eq!(outbox.position("c").unwrap().offset, 2);
        let mut drained = Vec::new();
        assert_eq!(outbox.drain(&mut drained).unwrap().code, Disconnect::SLOW_CONSUMER);
        assert_eq!(outbox.push_publication(delivery_at("c", 4, 10)), Pushed::Queued);
        assert_eq!(*wire.sent.lock().unwrap(), [1, 2]);
    }
}
