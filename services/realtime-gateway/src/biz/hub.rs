//! The node's hub: which connections subscribe to which topics, and which connections
//! belong to which user. Both maps are sharded so that fan-out on one topic and
//! subscriptions on others do not contend for one lock.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, RwLock},
};

use switchyard_platform::clock::now_ms;

use super::{
    broker::{BrokerSink, Control},
    channel::Topic,
    metrics::GatewayMetrics,
    outbox::{Outbox, Outgoing, Pushed},
    protocol::{Disconnect, Unsubscribed},
    publication::{Delivery, Publication, StreamPosition},
};

const SHARDS: usize = 64;

/// How many subscribers' sockets one publication's publisher writes itself (a few
/// microseconds each); the rest are queued for their own tasks, which write in parallel.
/// Fan-out runs where the broker delivers (under the memory broker's lock, on the Redis
/// broker's one feed), so this bounds how long a channel with thousands of subscribers on
/// the node holds up every other publication.
const DIRECT_WRITES_PER_PUBLICATION: u64 = 128;

type Subscribers = Vec<(u64, Arc<Outbox>)>;
/// (tenant, user) → the user's connections on this node.
type Users = HashMap<(String, String), Vec<(u64, Arc<Outbox>)>>;

/// A user already holds as many connections as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached;

#[derive(Debug)]
pub struct Hub {
    topics: Box<[RwLock<HashMap<Topic, Subscribers>>]>,
    users: Box<[Mutex<Users>]>,
    hasher: RandomState,
    metrics: GatewayMetrics,
}

impl Hub {
    pub fn new(metrics: GatewayMetrics) -> Self {
        Hub {
            topics: (0..SHARDS).map(|_| RwLock::default()).collect(),
            users: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            metrics,
        }
    }

    fn topic_shard(&self, topic: &Topic) -> &RwLock<HashMap<Topic, Subscribers>> {
        &self.topics[self.hasher.hash_one(topic) as usize % SHARDS]
    }

    fn user_shard(&self, key: &(String, String)) -> std::sync::MutexGuard<'_, Users> {
        self.users[self.hasher.hash_one(key) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a subscriber; true when it is the topic's first on this node.
    pub fn subscribe(&self, topic: &Topic, connection: u64, outbox: &Arc<Outbox>) -> bool {
        let mut shard = self
            .topic_shard(topic)
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let subscribers = shard.entry(topic.clone()).or_default();
        subscribers.push((connection, outbox.clone()));
        self.metrics.subscriptions.inc();
        subscribers.len() == 1
    }

    /// Removes a subscriber; true when the topic has none left on this node.
    pub fn unsubscribe(&self, topic: &Topic, connection: u64) -> bool {
        let mut shard = self
            .topic_shard(topic)
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(subscribers) = shard.get_mut(topic) else {
            return false;
        };
        let Some(index) = subscribers.iter().position(|(id, _)| *id == connection) else {
            return false;
        };
        subscribers.swap_remove(index);
        self.metrics.subscriptions.dec();
        if !subscribers.is_empty() {
            return false;
        }
        shard.remove(topic);
        true
    }

    /// Registers a user's connection unless the user already has `limit` on this node
    /// (checked and added under one lock, so simultaneous connects cannot pass it).
    pub fn add_user_connection(
        &self,
        tenant: &str,
        user: &str,
        connection: u64,
        outbox: &Arc<Outbox>,
        limit: usize,
    ) -> Result<(), LimitReached> {
        let key = (tenant.to_owned(), user.to_owned());
        let mut shard = self.user_shard(&key);
        let connections = shard.entry(key).or_default();
        if connections.len() >= limit {
            return Err(LimitReached);
        }
        connections.push((connection, outbox.clone()));
        Ok(())
    }

    pub fn remove_user_connection(&self, tenant: &str, user: &str, connection: u64) {
        let key = (tenant.to_owned(), user.to_owned());
        let mut shard = self.user_shard(&key);
        if let Some(connections) = shard.get_mut(&key) {
            connections.retain(|(id, _)| *id != connection);
            if connections.is_empty() {
                shard.remove(&key);
            }
        }
    }

    fn user_outboxes(&self, tenant: &str, user: &str) -> Vec<Arc<Outbox>> {
        let key = (tenant.to_owned(), user.to_owned());
        self.user_shard(&key)
            .get(&key)
            .map(|connections| connections.iter().map(|(_, outbox)| outbox.clone()).collect())
            .unwrap_or_default()
    }

    /// Every topic with subscribers on this node, with their counts.
    pub fn topics(&self) -> Vec<(Topic, usize)> {
        self.topics
            .iter()
            .flat_map(|shard| {
                let shard = shard.read().unwrap_or_else(|poisoned| poisoned.into_inner());
                shard
                    .iter()
                    .map(|(topic, subscribers)| (topic.clone(), subscribers.len()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Distinct users with connections on this node.
    pub fn users(&self) -> usize {
        self.users
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len())
            .sum()
    }

    /// Visits the topic's subscribers as of now. The shard's lock is released first: a visit
    /// may write to a socket, and subscribes and other topics' fan-out must not wait for that.
    fn each_subscriber(&self, topic: &Topic, mut visit: impl FnMut(&Arc<Outbox>)) {
        let subscribers: Vec<Arc<Outbox>> = {
            let shard = self
                .topic_shard(topic)
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shard
                .get(topic)
                .into_iter()
                .flatten()
                .map(|(_, outbox)| outbox.clone())
                .collect()
        };
        for outbox in &subscribers {
            visit(outbox);
        }
    }
}

impl BrokerSink for Hub {
    fn deliver(&self, topic: &Topic, epoch: &Arc<str>, publication: Publication) {
        let delivery = Delivery::new(topic.channel().into(), epoch.clone(), publication);
        let published_at_ms = delivery.publication.time_ms;
        let mut handed = 0;
        let mut written = 0;
        self.each_subscriber(topic, |outbox| {
            let offered = if written < DIRECT_WRITES_PER_PUBLICATION {
                outbox.push_publication(delivery.clone())
            } else {
                outbox.queue_publication(delivery.clone())
            };
            match offered {
                Pushed::Written => written += 1,
                Pushed::Queued => handed += 1,
                Pushed::SlowConsumer => {
                    self.metrics.slow_consumers.inc();
                }
            }
        });
        self.metrics.publications_in.inc();
        self.metrics.queued.inc_by(handed + written);
        if written > 0 {
            self.metrics.record_deliveries(written, published_at_ms, now_ms());
        }
    }

    fn control(&self, control: Control) {
        match control {
            Control::Unsubscribe { tenant, user, channel } => {
                let channel: Arc<str> = channel.into();
                for outbox in self.user_outboxes(&tenant, &user) {
                    outbox.push(Outgoing::Unsubscribed(Unsubscribed {
                        channel: channel.clone(),
                        code: Unsubscribed::SERVER,
                        reason: "unsubscribed by the server",
                        resubscribe: false,
                    }));
                }
            }
            Control::Disconnect {
                tenant,
                user,
                reconnect,
                reason,
            } => {
                let code = if reconnect {
                    Disconnect::FORCE_RECONNECT
                } else {
                    Disconnect::FORCE_NO_RECONNECT
                };
                let reason: Arc<str> = if reason.is_empty() {
                    "disconnected by the server".into()
                } else {
                    reason.into()
                };
                for outbox in self.user_outboxes(&tenant, &user) {
                    outbox.close(Disconnect::new(code, reason.clone()));
                }
            }
        }
    }

    fn has_subscribers(&self, topic: &Topic) -> bool {
        self.topic_shard(topic)
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(topic)
    }

    fn subscribed_topics(&self) -> Vec<Topic> {
        self.topics().into_iter().map(|(topic, _)| topic).collect()
    }

    fn resynchronize(&self, positions: Vec<(Topic, StreamPosition)>) {
        for (topic, position) in positions {
            let channel: Arc<str> = topic.channel().into();
            self.each_subscriber(&topic, |outbox| {
                outbox.push(Outgoing::Position {
                    channel: channel.clone(),
                    position: position.clone(),
                });
            });
        }
    }
}
