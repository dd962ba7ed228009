//! The many-node broker on Redis. Each channel has a meta hash (epoch, last offset) and a
//! history stream (XADD with MAXLEN, expiring with the namespace's TTL); a publish runs
//! `publish.lua`, which assigns the offset, appends to history and PUBLISHes to the
//! channel's pub/sub topic in one step. Each node holds one pub/sub connection and
//! subscribes to the topics its clients use.
//!
//! When that connection drops, the node may miss publications: after reconnecting it
//! resubscribes and hands every topic's current position to the hub, which tells clients
//! that are behind to recover. Redis keeps nothing on disk here, so a restarted Redis means
//! new epochs: clients are told recovery is impossible, never given a silent gap.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use redis::{AsyncCommands, Script, aio::PubSubSink};
use switchyard_platform::{clock::now_ms, shutdown::Shutdown};
use tokio::sync::Mutex;

use crate::biz::{
    broker::{
        Broker, BrokerError, BrokerSink, Control, HistoryPage, HistoryQuery, NodeReport, PublishCommand, Published,
        new_epoch,
    },
    channel::Topic,
    publication::{Publication, StreamPosition},
};

pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    pool: deadpool_redis::Pool,
    sink: Arc<dyn BrokerSink>,
    /// The pub/sub connection's command half; None while it is reconnecting.
    subscriber: Mutex<Option<PubSubSink>>,
    publish: Script,
    history: Script,
    keys: Keys,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker").finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(error.to_string())
}

/// Key names under the configured prefix. The keys of one topic share a hash tag, so a
/// Redis Cluster keeps them on one shard.
struct Keys {
    prefix: String,
}

impl Keys {
    fn meta(&self, topic: &Topic) -> String {
        format!("{}{{{}}}:m", self.prefix, topic.as_str())
    }

    fn history(&self, topic: &Topic) -> String {
        format!("{}{{{}}}:h", self.prefix, topic.as_str())
    }

    fn idempotency(&self, topic: &Topic, key: &str) -> String {
        format!("{}{{{}}}:i:{key}", self.prefix, topic.as_str())
    }

    fn pubsub(&self, topic: &Topic) -> String {
        format!("{}p:{}", self.prefix, topic.as_str())
    }

    fn topic_of(&self, pubsub_channel: &str) -> Option<Topic> {
        pubsub_channel
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("p:"))
            .and_then(Topic::parse)
    }

    fn control(&self) -> String {
        format!("{}control", self.prefix)
    }

    fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs().max(1)
}

/// `offset\nepoch` as the scripts return it.
fn parse_position(text: &str) -> Option<StreamPosition> {
    let (offset, epoch) = text.split_once('\n')?;
    Some(StreamPosition {
        offset: offset.parse().ok()?,
        epoch: epoch.into(),
    })
}

impl RedisBroker {
    /// Connects (failing at start when Redis is unreachable) and starts the pub/sub loop.
    pub async fn connect(
        url: &str,
        prefix: &str,
        sink: Arc<dyn BrokerSink>,
        shutdown: Shutdown,
    ) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(unavailable)?;
        let mut conn = pool.get().await.map_err(unavailable)?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(unavailable)?;
        drop(conn);
        let inner = Arc::new(Inner {
            client,
            pool,
            sink,
            subscriber: Mutex::new(None),
            publish: Script::new(include_str!("publish.lua")),
            history: Script::new(include_str!("history.lua")),
            keys: Keys {
                prefix: prefix.to_owned(),
            },
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(listen(inner.clone(), shutdown, ready_tx));
        // The first connection must be up before the node serves.
        ready_rx.await.map_err(unavailable)??;
        Ok(RedisBroker { inner })
    }
}

/// Holds the pub/sub connection: delivers what arrives, reconnects when it drops.
async fn listen(inner: Arc<Inner>, shutdown: Shutdown, ready: tokio::sync::oneshot::Sender<Result<(), BrokerError>>) {
    let mut ready = Some(ready);
    let mut first = true;
    loop {
        let stream = match subscribe_all(&inner).await {
            Ok(stream) => stream,
            Err(error) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(error));
                    return;
                }
                tracing::warn!(%error, "redis pub/sub: cannot reconnect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        if !first {
            resynchronize(&inner).await;
        }
        first = false;
        tokio::pin!(stream);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => receive(&inner, &message),
                    None => break,
                },
                _ = shutdown.cancelled() => {
                    // Connections closing during shutdown find no feed to leave.
                    *inner.subscriber.lock().await = None;
                    return;
                }
            }
        }
        tracing::warn!("redis pub/sub connection lost; reconnecting");
        *inner.subscriber.lock().await = None;
    }
}

/// Opens the pub/sub connection and subscribes to control and every topic with subscribers.
async fn subscribe_all(inner: &Inner) -> Result<redis::aio::PubSubStream, BrokerError> {
    let pubsub = inner.client.get_async_pubsub().await.map_err(unavailable)?;
    let (mut sink, stream) = pubsub.split();
    let mut guard = inner.subscriber.lock().await;
    sink.subscribe(inner.keys.control()).await.map_err(unavailable)?;
    let channels: Vec<String> = inner
        .sink
        .subscribed_topics()
        .iter()
        .map(|topic| inner.keys.pubsub(topic))
        .collect();
    if !channels.is_empty() {
        sink.subscribe(&channels).await.map_err(unavailable)?;
    }
    *guard = Some(sink);
    Ok(stream)
}

/// After a reconnect: every subscribed topic's position, so the hub can find who is behind.
async fn resynchronize(inner: &Inner) {
    let mut positions = Vec::new();
    for topic in inner.sink.subscribed_topics() {
        let query = HistoryQuery {
            after: None,
            limit: 0,
            reverse: false,
            ttl: Duration::ZERO,
            meta_ttl: Duration::from_secs(3600),
        };
        match history(inner, &topic, &query).await {
            Ok(page) => positions.push((topic, page.position)),
            Err(error) => {
                // Unknown means possibly missed: a position no subscriber can be at makes the
                // hub tell them all to recover.
                tracing::warn!(%error, topic = topic.as_str(), "cannot read a position after reconnecting");
                let unknown = StreamPosition {
                    offset: u64::MAX,
                    epoch: "".into(),
                };
                positions.push((topic, unknown));
            }
        }
    }
    inner.sink.resynchronize(positions);
}

fn receive(inner: &Inner, message: &redis::Msg) {
    let channel = message.get_channel_name();
    let payload = message.get_payload_bytes();
    if channel == inner.keys.control() {
        match serde_json::from_slice::<Control>(payload) {
            Ok(control) => inner.sink.control(control),
            Err(error) => tracing::warn!(%error, "malformed control message"),
        }
        return;
    }
    let Some(topic) = inner.keys.topic_of(channel) else {
        return;
    };
    let mut parts = payload.splitn(3, |byte| *byte == b'\n');
    let (Some(offset), Some(epoch), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        tracing::warn!(topic = topic.as_str(), "malformed publication");
        return;
    };
    let offset = std::str::from_utf8(offset).ok().and_then(|text| text.parse().ok());
    let epoch = std::str::from_utf8(epoch).ok();
    let (Some(offset), Some(epoch)) = (offset, epoch) else {
        tracing::warn!(topic = topic.as_str(), "malformed publication position");
        return;
    };
    let Some(publication) = Publication::decode_body(offset, body) else {
        tracing::warn!(topic = topic.as_str(), "malformed publication body");
        return;
    };
    inner.sink.deliver(&topic, &epoch.into(), publication);
}

async fn history(inner: &Inner, topic: &Topic, query: &HistoryQuery) -> Result<HistoryPage, BrokerError> {
    let mut conn = inner.pool.get().await.map_err(unavailable)?;
    let start = match query.after {
        Some(after) => format!("{}-0", after.saturating_add(1)),
        None => "-".to_owned(),
    };
    type Entries = Vec<(String, HashMap<String, Vec<u8>>)>;
    let (offset, epoch, entries): (u64, String, Entries) = inner
        .history
        .key(inner.keys.meta(topic))
        .key(inner.keys.history(topic))
        .arg(new_epoch().as_ref())
        .arg(seconds(query.meta_ttl.max(query.ttl)))
        .arg(start)
        .arg(query.limit)
        .arg(if query.reverse { "1" } else { "0" })
        .invoke_async(&mut conn)
        .await
        .map_err(unavailable)?;
    let oldest = now_ms() - query.ttl.as_millis() as i64;
    let publications = entries
        .into_iter()
        .filter_map(|(id, fields)| {
            let offset = id.split('-').next()?.parse().ok()?;
            Publication::decode_body(offset, fields.get("b")?)
        })
        .filter(|publication| publication.time_ms >= oldest)
        .collect();
    Ok(HistoryPage {
        publications,
        position: StreamPosition {
            offset,
            epoch: epoch.into(),
        },
    })
}

impl Broker for RedisBroker {
    async fn publish(&self, command: PublishCommand) -> Result<Published, BrokerError> {
        let inner = &self.inner;
        let mut conn = inner.pool.get().await.map_err(unavailable)?;
        let policy = command.history;
        let idempotency_ttl = match command.idempotency_key {
            Some(_) => seconds(command.idempotency_ttl),
            None => 0,
        };
        let key = command.idempotency_key.as_deref().unwrap_or("");
        let (position, duplicate): (String, u8) = inner
            .publish
            .key(inner.keys.meta(&command.topic))
            .key(inner.keys.history(&command.topic))
            .key(inner.keys.idempotency(&command.topic, key))
            .arg(command.publication.encode_body())
            .arg(policy.size)
            .arg(seconds(policy.ttl))
            .arg(seconds(policy.meta_ttl.max(policy.ttl)))
            .arg(new_epoch().as_ref())
            .arg(inner.keys.pubsub(&command.topic))
            .arg(idempotency_ttl)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let position = parse_position(&position).ok_or_else(|| unavailable("malformed position from redis"))?;
        Ok(Published {
            position,
            duplicate: duplicate == 1,
        })
    }

    async fn history(&self, topic: &Topic, query: HistoryQuery) -> Result<HistoryPage, BrokerError> {
        history(&self.inner, topic, &query).await
    }

    async fn remove_history(&self, topic: &Topic) -> Result<(), BrokerError> {
        let mut conn = self.inner.pool.get().await.map_err(unavailable)?;
        conn.del::<_, ()>(self.inner.keys.history(topic))
            .await
            .map_err(unavailable)
    }

    async fn subscribe(&self, topic: &Topic) -> Result<(), BrokerError> {
        let mut guard = self.inner.subscriber.lock().await;
        let sink = guard
            .as_mut()
            .ok_or_else(|| unavailable("redis pub/sub is reconnecting"))?;
        sink.subscribe(self.inner.keys.pubsub(topic)).await.map_err(unavailable)
    }

    async fn unsubscribe(&self, topic: &Topic) -> Result<(), BrokerError> {
        let mut guard = self.inner.subscriber.lock().await;
        // Checked under the lock: a subscriber that arrived meanwhile keeps the feed.
        if self.inner.sink.has_subscribers(topic) {
            return Ok(());
        }
        let Some(sink) = guard.as_mut() else {
            return Ok(());
        };
        sink.unsubscribe(self.inner.keys.pubsub(topic))
            .await
            .map_err(unavailable)
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        let payload = serde_json::to_vec(&control).map_err(unavailable)?;
        let mut conn = self.inner.pool.get().await.map_err(unavailable)?;
        conn.publish::<_, _, ()>(self.inner.keys.control(), payload)
            .await
            .map_err(unavailable)
    }

    async fn report(&self, report: NodeReport) -> Result<(), BrokerError> {
        let payload = serde_json::to_vec(&report).map_err(unavailable)?;
        let mut conn = self.inner.pool.get().await.map_err(unavailable)?;
        conn.hset::<_, _, _, ()>(self.inner.keys.nodes(), &report.id, payload)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Reports of nodes that stopped reporting are dropped by whoever reads them.
    async fn nodes(&self, fresh: Duration) -> Result<Vec<NodeReport>, BrokerError> {
        let mut conn = self.inner.pool.get().await.map_err(unavailable)?;
        let reports: HashMap<String, Vec<u8>> = conn.hgetall(self.inner.keys.nodes()).await.map_err(unavailable)?;
        let fresh_after = now_ms() - fresh.as_millis() as i64;
        let mut nodes = Vec::new();
        for (id, payload) in reports {
            match serde_json::from_slice::<NodeReport>(&payload) {
                Ok(report) if report.updated_at_ms >= fresh_after => nodes.push(report),
                _ => conn
                    .hdel::<_, _, ()>(self.inner.keys.nodes(), &id)
                    .await
                    .map_err(unavailable)?,
            }
        }
        Ok(nodes)
    }
}
