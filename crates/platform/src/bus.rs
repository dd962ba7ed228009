//! The change bus: how replicas of a service tell each other that something changed, so
//! each can serve its own watchers from memory, and how one service hands another a stream
//! of facts (flag-service's exposures to experiment-service). In-process broadcast for a
//! single node — one bus per process, so the services `switchyard dev` hosts together hear
//! each other as they would over Redis; Redis pub/sub when `redis_url` is set. Both sit
//! behind [`ChangeBus`].
//!
//! The bus is a wake-up signal, not the record: a message lost while a replica was
//! disconnected is recovered from the database by revision, never from the bus.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::{StreamExt, future::BoxFuture, stream::BoxStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(String),
}

/// A message on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub topic: String,
    pub payload: Bytes,
}

pub trait ChangeBus: Send + Sync + std::fmt::Debug {
    /// Delivers `payload` to every current subscriber of `topic`, on every replica.
    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), BusError>>;

    /// Messages published on `topic` from now on. Returns once the subscription is active,
    /// so a publish that happens after this call is never missed.
    fn subscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, BusMessage>, BusError>>;

    /// `in-process` or `redis`, for `GetServiceInfo`.
    fn kind(&self) -> &'static str;
}

/// Builds the bus the settings ask for.
pub async fn connect(redis_url: Option<&str>) -> Result<Arc<dyn ChangeBus>, BusError> {
    static PROCESS: std::sync::OnceLock<Arc<InProcessBus>> = std::sync::OnceLock::new();
    match redis_url {
        None => Ok(PROCESS.get_or_init(|| Arc::new(InProcessBus::default())).clone()),
        Some(url) => Ok(Arc::new(RedisBus::connect(url).await?)),
    }
}

const CHANNEL_CAPACITY: usize = 1024;

/// Single-node bus: one broadcast channel per topic.
#[derive(Debug, Default)]
pub struct InProcessBus {
    topics: Mutex<HashMap<String, broadcast::Sender<BusMessage>>>,
}

impl InProcessBus {
    fn sender(&self, topic: &str) -> broadcast::Sender<BusMessage> {
        let mut topics = self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.retain(|_, sender| sender.receiver_count() > 0);
        topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }
}

impl ChangeBus for InProcessBus {
    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), BusError>> {
        let sender = self.sender(topic);
        Box::pin(async move {
            // No receivers is not an error: nobody is watching this topic right now.
            let _ = sender.send(BusMessage {
                topic: topic.to_owned(),
                payload,
            });
            Ok(())
        })
    }

    fn subscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, BusMessage>, BusError>> {
        let receiver = self.sender(topic).subscribe();
        Box::pin(async move {
            // A lagging receiver skips what it missed; subscribers re-read by revision.
            let stream = BroadcastStream::new(receiver).filter_map(|item| async move { item.ok() });
            Ok(stream.boxed())
        })
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}

/// Multi-replica bus over Redis pub/sub: a pool for publishing, a dedicated connection
/// per subscription (pub/sub connections cannot run other commands).
pub struct RedisBus {
    client: deadpool_redis::redis::Client,
    pool: deadpool_redis::Pool,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus").finish_non_exhaustive()
    }
}

impl RedisBus {
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = deadpool_redis::redis::Client::open(url).map_err(redis_error)?;
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|error| BusError::Redis(error.to_string()))?;
        // Fail at start, not at the first publish, when Redis is unreachable.
        let mut conn = pool.get().await.map_err(|error| BusError::Redis(error.to_string()))?;
        deadpool_redis::redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(RedisBus { client, pool })
    }
}

fn redis_error(error: deadpool_redis::redis::RedisError) -> BusError {
    BusError::Redis(error.to_string())
}

impl ChangeBus for RedisBus {
    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|error| BusError::Redis(error.to_string()))?;
            deadpool_redis::redis::cmd("PUBLISH")
                .arg(topic)
                .arg(payload.as_ref())
                .query_async::<i64>(&mut conn)
                .await
                .map_err(redis_error)?;
            Ok(())
        })
    }

    fn subscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, BusMessage>, BusError>> {
        Box::pin(async move {
            let mut pubsub = self.client.get_async_pubsub().await.map_err(redis_error)?;
            pubsub.subscribe(topic).await.map_err(redis_error)?;
            let stream = pubsub.into_on_message().map(|message| BusMessage {
                topic: message.get_channel_name().to_owned(),
                payload: Bytes::copy_from_slice(message.get_payload_bytes()),
            });
            Ok(stream.boxed())
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
