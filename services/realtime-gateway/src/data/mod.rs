//! Where realtime-gateway keeps streams: in memory for one node, in Redis for many. Both
//! implement `biz::broker::Broker`; [`AnyBroker`] picks one from the settings. The service
//! database holds nothing yet (its migrations are empty), but it is set up like every
//! service's so later state has a home.

mod live;
mod memory;
mod presence;
mod presence_directory;
mod redis;

use std::{sync::Arc, time::Duration};

use sqlx::migrate::Migrator;
use switchyard_platform::{shutdown::Shutdown, storage::Migrations};

pub use self::{
    live::GrpcLiveSource, memory::MemoryBroker, presence::PresenceLink, presence_directory::GrpcPresenceDirectory,
    redis::RedisBroker,
};
use crate::biz::{
    broker::{
        Broker, BrokerError, BrokerSink, Control, HistoryPage, HistoryQuery, NodeReport, PublishCommand, Published,
    },
    channel::Topic,
};

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/realtime-gateway/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/realtime-gateway/sqlite");

/// The migrations of this service's own database.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

/// The broker the settings ask for: Redis when `redis_url` is set, memory otherwise.
#[derive(Debug)]
pub enum AnyBroker {
    Memory(Box<MemoryBroker>),
    Redis(RedisBroker),
}

impl AnyBroker {
    pub async fn connect(
        redis_url: Option<&str>,
        prefix: &str,
        sink: Arc<dyn BrokerSink>,
        shutdown: Shutdown,
    ) -> Result<Self, BrokerError> {
        match redis_url {
            None => Ok(AnyBroker::Memory(Box::new(MemoryBroker::new(sink)))),
            Some(url) => Ok(AnyBroker::Redis(
                RedisBroker::connect(url, prefix, sink, shutdown).await?,
            )),
        }
    }
}

impl Broker for AnyBroker {
    async fn publish(&self, command: PublishCommand) -> Result<Published, BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.publish(command).await,
            AnyBroker::Redis(broker) => broker.publish(command).await,
        }
    }

    async fn history(&self, topic: &Topic, query: HistoryQuery) -> Result<HistoryPage, BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.history(topic, query).await,
            AnyBroker::Redis(broker) => broker.history(topic, query).await,
        }
    }

    async fn remove_history(&self, topic: &Topic) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.remove_history(topic).await,
            AnyBroker::Redis(broker) => broker.remove_history(topic).await,
        }
    }

    async fn subscribe(&self, topic: &Topic) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.subscribe(topic).await,
            AnyBroker::Redis(broker) => broker.subscribe(topic).await,
        }
    }

    async fn unsubscribe(&self, topic: &Topic) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.unsubscribe(topic).await,
            AnyBroker::Redis(broker) => broker.unsubscribe(topic).await,
        }
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.control(control).await,
            AnyBroker::Redis(broker) => broker.control(control).await,
        }
    }

    async fn report(&self, report: NodeReport) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.report(report).await,
            AnyBroker::Redis(broker) => broker.report(report).await,
        }
    }

    async fn nodes(&self, fresh: Duration) -> Result<Vec<NodeReport>, BrokerError> {
        match self {
            AnyBroker::Memory(broker) => broker.nodes(fresh).await,
            AnyBroker::Redis(broker) => broker.nodes(fresh).await,
        }
    }
}
