//! The gateway's use cases for the server API, and what every connection shares: the hub,
//! the broker, the namespaces, limits and metrics.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota};
use switchyard_platform::{
    auth::Authenticator,
    clock::now_ms,
    error::{Classify, ErrorKind, FieldViolation},
};

use super::{
    broker::{
        Broker, BrokerError, Control, HistoryPage, HistoryPolicy, HistoryQuery, NodeReport, PublishCommand, Published,
    },
    channel::{ChannelError, ChannelName, Namespaces, Topic},
    hub::Hub,
    metrics::GatewayMetrics,
    presence::PresenceReporter,
    presence_feed::PresenceDirectory,
    protocol::Disconnect,
    publication::{Publication, StreamPosition},
};
use crate::conf::{NamespaceSettings, RealtimeServiceSettings};

/// Most publications one history call returns.
pub const MAX_HISTORY_LIMIT: usize = 1_000;
const MAX_TAGS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{field}: {source}")]
    Channel { field: String, source: ChannelError },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Unrecoverable(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl GatewayError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        GatewayError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl Classify for GatewayError {
    fn kind(&self) -> ErrorKind {
        match self {
            GatewayError::Channel {
                source: ChannelError::PermissionDenied(_),
                ..
            } => ErrorKind::PermissionDenied,
            GatewayError::Channel { .. } | GatewayError::Invalid { .. } => ErrorKind::InvalidArgument,
            GatewayError::Unrecoverable(_) => ErrorKind::FailedPrecondition,
            GatewayError::Broker(_) => ErrorKind::Unavailable,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            GatewayError::Channel { field, source } => vec![FieldViolation::new(field, source.to_string())],
            GatewayError::Invalid { field, message } => vec![FieldViolation::new(field, message)],
            _ => Vec::new(),
        }
    }
}

/// Who this node is, for `Info`.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub version: String,
    pub started_at_ms: i64,
}

/// What a publisher sends.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub data: Bytes,
    pub tags: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
}

pub struct Gateway<B> {
    pub broker: B,
    pub hub: Arc<Hub>,
    pub namespaces: Namespaces,
    pub settings: RealtimeServiceSettings,
    pub authenticator: Arc<Authenticator>,
    pub metrics: GatewayMetrics,
    pub node: Node,
    /// Where connections are reported for presence, when presence-service is in use.
    pub presence: Option<Arc<PresenceReporter>>,
    /// Where `$presence` channels read their members.
    pub presence_directory: Option<Arc<dyn PresenceDirectory>>,
    next_connection: AtomicU64,
    addresses: Mutex<HashMap<IpAddr, usize>>,
    connect_rate: DefaultKeyedRateLimiter<IpAddr>,
}

impl<B> std::fmt::Debug for Gateway<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("node", &self.node.id)
            .finish_non_exhaustive()
    }
}

/// A connection slot for one client address; dropping it frees the slot.
#[derive(Debug)]
pub struct Admission<B> {
    gateway: Arc<Gateway<B>>,
    address: IpAddr,
}

impl<B> Drop for Admission<B> {
    fn drop(&mut self) {
        let mut addresses = self
            .gateway
            .addresses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = addresses.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                addresses.remove(&self.address);
            }
        }
        self.gateway.metrics.connections.dec();
    }
}

impl<B: Broker> Gateway<B> {
    pub fn new(
        broker: B,
        hub: Arc<Hub>,
        settings: RealtimeServiceSettings,
        authenticator: Arc<Authenticator>,
        metrics: GatewayMetrics,
        node: Node,
    ) -> Self {
        let per_second = NonZeroU32::new(settings.client.connects_per_second_per_ip.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Gateway {
            broker,
            hub,
            namespaces: Namespaces::new(settings.namespaces.clone()),
            settings,
            authenticator,
            metrics,
            node,
            presence: None,
            presence_directory: None,
            next_connection: AtomicU64::new(1),
            addresses: Mutex::default(),
            connect_rate: governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// Reports user connections to `reporter`; `$presence` channels read `directory`.
    pub fn with_presence(mut self, reporter: Arc<PresenceReporter>, directory: Arc<dyn PresenceDirectory>) -> Self {
        self.presence = Some(reporter);
        self.presence_directory = Some(directory);
        self
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Lets a new connection from `address` in, within the per-address limits.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admission<B>, Disconnect> {
        if self.connect_rate.check_key(&address).is_err() {
            self.metrics.connections_refused.inc();
            return Err(Disconnect::new(
                Disconnect::TOO_MANY_REQUESTS,
                "too many connections per second from this address",
            ));
        }
        let mut addresses = self.addresses.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = addresses.entry(address).or_default();
        if *count >= self.settings.client.max_connections_per_ip {
            self.metrics.connections_refused.inc();
            return Err(Disconnect::new(
                Disconnect::CONNECTION_LIMIT,
                "too many connections from this address",
            ));
        }
        *count += 1;
        self.metrics.connections.inc();
        Ok(Admission {
            gateway: self.clone(),
            address,
        })
    }

    /// Forgets rate-limit state of addresses that have gone quiet.
    pub fn forget_idle(&self) {
        self.connect_rate.retain_recent();
    }

    /// A random delay within the reconnect window, so clients cut off together come back
    /// spread out.
    pub fn reconnect_delay(&self) -> Duration {
        let client = &self.settings.client;
        let span = client.reconnect_max_delay_ms - client.reconnect_min_delay_ms;
        Duration::from_millis(client.reconnect_min_delay_ms + rand::random_range(0..=span))
    }

    pub fn history_policy(&self, namespace: &NamespaceSettings) -> HistoryPolicy {
        HistoryPolicy {
            size: namespace.history_size,
            ttl: Duration::from_secs(namespace.history_ttl_secs),
            meta_ttl: Duration::from_secs(self.settings.stream_meta_ttl_secs),
        }
    }

    fn channel<'a>(
        &self,
        field: &str,
        channel: &'a str,
    ) -> Result<(ChannelName<'a>, &NamespaceSettings), GatewayError> {
        let name = ChannelName::parse(channel).map_err(|source| channel_error(field, source))?;
        let namespace = self
            .namespaces
            .of(&name)
            .map_err(|source| channel_error(field, source))?;
        Ok((name, namespace))
    }

    /// Publishes into a channel of `tenant` (the server API: no channel permissions apply,
    /// only the namespace must exist).
    pub async fn publish(&self, tenant: &str, channel: &str, outgoing: Outgoing) -> Result<Published, GatewayError> {
        let (_, namespace) = self.channel("channel", channel)?;
        self.publish_checked(tenant, channel, namespace, outgoing).await
    }

    /// Publishes once the channel has been checked by the caller.
    pub async fn publish_checked(
        &self,
        tenant: &str,
        channel: &str,
        namespace: &NamespaceSettings,
        outgoing: Outgoing,
    ) -> Result<Published, GatewayError> {
        check_tags(&outgoing.tags)?;
        if let Some(key) = &outgoing.idempotency_key
            && (key.is_empty() || key.len() > 128)
        {
            return Err(GatewayError::invalid("idempotency_key", "must be 1–128 bytes"));
        }
        let command = PublishCommand {
            topic: Topic::new(tenant, channel),
            publication: Publication {
                offset: 0,
                data: outgoing.data,
                tags: outgoing.tags,
                time_ms: now_ms(),
            },
            history: self.history_policy(namespace),
            idempotency_key: outgoing.idempotency_key,
            idempotency_ttl: Duration::from_secs(self.settings.idempotency_ttl_secs),
        };
        let published = self.broker.publish(command).await?;
        if !published.duplicate {
            self.metrics.publications_accepted.inc();
        }
        Ok(published)
    }

    /// A channel's history after `since` (which must be of the current epoch).
    pub async fn history(
        &self,
        tenant: &str,
        channel: &str,
        limit: usize,
        since: Option<StreamPosition>,
        reverse: bool,
    ) -> Result<HistoryPage, GatewayError> {
        let (_, namespace) = self.channel("channel", channel)?;
        self.history_checked(tenant, channel, namespace, limit, since, reverse)
            .await
    }

    pub async fn history_checked(
        &self,
        tenant: &str,
        channel: &str,
        namespace: &NamespaceSettings,
        limit: usize,
        since: Option<StreamPosition>,
        reverse: bool,
    ) -> Result<HistoryPage, GatewayError> {
        if limit > MAX_HISTORY_LIMIT {
            return Err(GatewayError::invalid("limit", format!("at most {MAX_HISTORY_LIMIT}")));
        }
        let policy = self.history_policy(namespace);
        let query = HistoryQuery {
            after: since.as_ref().map(|position| position.offset),
            limit: if limit == 0 { 100 } else { limit },
            reverse,
            ttl: policy.ttl,
            meta_ttl: policy.meta_ttl,
        };
        let page = self.broker.history(&Topic::new(tenant, channel), query).await?;
        if let Some(since) = since
            && since.epoch != page.position.epoch
        {
            return Err(GatewayError::Unrecoverable(format!(
                "position epoch {:?} is not the channel's current epoch {:?}",
                since.epoch, page.position.epoch
            )));
        }
        Ok(page)
    }

    pub async fn remove_history(&self, tenant: &str, channel: &str) -> Result<(), GatewayError> {
        self.channel("channel", channel)?;
        Ok(self.broker.remove_history(&Topic::new(tenant, channel)).await?)
    }

    pub async fn unsubscribe_user(&self, tenant: &str, user: &str, channel: &str) -> Result<(), GatewayError> {
        check_user(user)?;
        self.channel("channel", channel)?;
        let control = Control::Unsubscribe {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            channel: channel.to_owned(),
        };
        Ok(self.broker.control(control).await?)
    }

    pub async fn disconnect_user(
        &self,
        tenant: &str,
        user: &str,
        reconnect: bool,
        reason: &str,
    ) -> Result<(), GatewayError> {
        check_user(user)?;
        if reason.len() > 256 {
            return Err(GatewayError::invalid("reason", "at most 256 bytes"));
        }
        let control = Control::Disconnect {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            reconnect,
            reason: reason.to_owned(),
        };
        Ok(self.broker.control(control).await?)
    }

    /// This node's report, as it is now.
    pub fn report(&self) -> NodeReport {
        let topics = self.hub.topics();
        NodeReport {
            id: self.node.id.clone(),
            version: self.node.version.clone(),
            connections: self.metrics.connections.get().max(0) as u32,
            users: self.hub.users() as u32,
            subscriptions: topics.iter().map(|(_, count)| *count as u32).sum(),
            started_at_ms: self.node.started_at_ms,
            updated_at_ms: now_ms(),
            topics: topics
                .into_iter()
                .map(|(topic, count)| (topic.as_str().to_owned(), count as u32))
                .collect(),
        }
    }

    /// Every live node: this one as it is now, the others as they last reported.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, GatewayError> {
        let mut nodes: Vec<NodeReport> = self
            .broker
            .nodes(Duration::from_millis(self.settings.node_report_ms * 3))
            .await?
            .into_iter()
            .filter(|node| node.id != self.node.id)
            .collect();
        nodes.push(self.report());
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// The tenant's channels with subscribers anywhere, with their total counts.
    pub async fn channels(&self, tenant: &str, prefix: &str) -> Result<BTreeMap<String, u32>, GatewayError> {
        let mut channels = BTreeMap::new();
        for node in self.nodes().await? {
            for (topic, count) in node.topics {
                let Some(topic) = Topic::parse(&topic) else { continue };
                if topic.tenant() == tenant && topic.channel().starts_with(prefix) {
                    *channels.entry(topic.channel().to_owned()).or_default() += count;
                }
            }
        }
        Ok(channels)
    }
}

fn channel_error(field: &str, source: ChannelError) -> GatewayError {
    GatewayError::Channel {
        field: field.to_owned(),
        source,
    }
}

fn check_user(user: &str) -> Result<(), GatewayError> {
    if user.is_empty() || user.len() > 256 {
        return Err(GatewayError::invalid("user", "must be 1–256 bytes"));
    }
    Ok(())
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), GatewayError> {
    if tags.len() > MAX_TAGS {
        return Err(GatewayError::invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (key, value) in tags {
        if key.is_empty() || key.len() > 64 || value.len() > 256 {
            return Err(GatewayError::invalid(
                &format!("tags[{key}]"),
                "keys are 1–64 bytes, values at most 256",
            ));
        }
    }
    Ok(())
}
