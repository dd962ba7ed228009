//! One client connection, whatever carries it (WebSocket or SSE): who the client is, what
//! it subscribes to, and the last offset it received in each channel (kept in its
//! [`Outbox`], where publishers check it too).
//!
//! The last offset is what keeps delivery exact. A subscription starts at the channel's
//! position read after the hub registered it, so a publication that raced with the
//! subscribe arrives both in the recovered history and live, and the live copy is dropped.
//! A publication that skips an offset, or carries another epoch, means the node missed
//! something: the client is told to resubscribe with recovery rather than left with a
//! silent gap.
//!
//! The connection token (`tokens`) and presence (`presence`) parts live in their own modules.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use serde::Serialize;
use switchyard_platform::{auth::AuthError, clock::now_ms};

mod presence;
mod tokens;

use super::{
    broker::{Broker, Recovery, recover},
    channel::{ChannelError, ChannelName, Grants, Topic},
    gateway::{Admission, Gateway, GatewayError, Outgoing as Publish},
    metrics::RecoveryLabels,
    outbox::{Event, Outbox, Outgoing},
    presence::{ConnectionPresence, PresenceMetas},
    protocol::{
        ChannelRequest, Command, CommandError, ConnectRequest, Disconnect, ErrorCode, HistoryRequest, Method,
        PublishRequest, SubscribeRequest, Subscribed,
    },
    publication::StreamPosition,
    replies::{to_json, write_error, write_publications, write_reply},
    token_bucket::TokenBucket,
};

#[derive(Debug)]
struct Client {
    tenant: String,
    grants: Grants,
    expires_at_ms: Option<i64>,
}

pub struct Session<B: Broker> {
    gateway: Arc<Gateway<B>>,
    pub id: u64,
    pub outbox: Arc<Outbox>,
    _admission: Admission<B>,
    client: Option<Client>,
    commands: TokenBucket,
    /// Gather pushes for this long into one frame (asked for at connect).
    pub batch_window: Duration,
    /// This connection's presence reports (connections with a user, when presence is on).
    presence: Option<ConnectionPresence>,
    /// Whether the connection ends on purpose (leaves presence at once) or is lost.
    clean_departure: bool,
}

impl<B: Broker> std::fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<B: Broker> Session<B> {
    /// A new connection from `address`, within the per-address limits.
    pub fn open(gateway: &Arc<Gateway<B>>, address: IpAddr) -> Result<Self, Disconnect> {
        let admission = gateway.admit(address)?;
        let rate = gateway.settings.client.commands_per_second.max(1);
        Ok(Session {
            id: gateway.next_connection_id(),
            outbox: Outbox::new(gateway.settings.client.max_queue_bytes),
            gateway: gateway.clone(),
            _admission: admission,
            client: None,
            commands: TokenBucket::new(rate),
            batch_window: Duration::ZERO,
            presence: None,
            clean_departure: false,
        })
    }

    pub fn gateway(&self) -> &Arc<Gateway<B>> {
        &self.gateway
    }

    pub fn is_connected(&self) -> bool {
        self.client.is_some()
    }

    /// When the connection token expires (Unix ms), unless refreshed before.
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.client.as_ref().and_then(|client| client.expires_at_ms)
    }

    /// Handles one frame: commands separated by newlines; replies are appended to `out`,
    /// one JSON object per line.
    pub async fn handle_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), Disconnect> {
        for line in frame.split(|byte| *byte == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !self.commands.take() {
                return Err(Disconnect::new(Disconnect::TOO_MANY_REQUESTS, "too many commands"));
            }
            // Replies to one frame are sent together; a frame whose replies outgrow what a
            // connection may have queued (history reads, say) is cut off.
            if out.len() > self.gateway.settings.client.max_queue_bytes {
                return Err(Disconnect::new(
                    Disconnect::TOO_MANY_REQUESTS,
                    "replies to one frame too large: send fewer commands per frame",
                ));
            }
            // Not JSON at all: the client does not speak the protocol. JSON that is not a
            // valid command: an error reply, and the connection stays.
            let value: serde_json::Value = match serde_json::from_slice(line) {
                Ok(value) => value,
                Err(error) => {
                    write_error(
                        out,
                        0,
                        &CommandError::new(ErrorCode::BadRequest, format!("malformed command: {error}")),
                    );
                    return Err(Disconnect::new(Disconnect::BAD_REQUEST, "malformed command"));
                }
            };
            let id = value.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
            let method = serde_json::from_value::<Command>(value)
                .map_err(|error| error.to_string())
                .and_then(Command::method);
            match method {
                Ok(method) => self.handle(id, method, out).await?,
                Err(message) => write_error(out, id, &CommandError::new(ErrorCode::BadRequest, message)),
            }
        }
        Ok(())
    }

    async fn handle(&mut self, id: u32, method: Method, out: &mut Vec<u8>) -> Result<(), Disconnect> {
        if !self.is_connected() && !matches!(method, Method::Connect(_) | Method::Ping | Method::Pong) {
            write_error(
                out,
                id,
                &CommandError::new(ErrorCode::Unauthorized, "send connect first"),
            );
            return Ok(());
        }
        if !matches!(method, Method::Ping | Method::Pong)
            && let Some(presence) = self.presence.as_mut()
        {
            presence.active();
        }
        let result: Result<(&str, Vec<u8>), CommandError> = match method {
            Method::Connect(request) => self.connect(request)?.map(|reply| ("connect", to_json(&reply))),
            Method::Refresh(request) => self.refresh(&request.token)?.map(|reply| ("refresh", to_json(&reply))),
            Method::Subscribe(request) => self
                .subscribe_command(request)
                .await
                .map(|subscribed| ("subscribe", subscribed.to_json())),
            Method::Unsubscribe(request) => self
                .unsubscribe_command(request)
                .await
                .map(|()| ("unsubscribe", b"{}".to_vec())),
            Method::Publish(request) => self.publish(request).await.map(|reply| ("publish", to_json(&reply))),
            Method::History(request) => self.history(request).await.map(|reply| ("history", reply)),
            Method::Presence(metas) => self.update_presence(metas).map(|()| ("presence", b"{}".to_vec())),
            Method::Ping => Ok(("pong", b"{}".to_vec())),
            Method::Pong => return Ok(()),
        };
        match result {
            Ok((method, body)) => write_reply(out, id, method, &body),
            Err(error) => write_error(out, id, &error),
        }
        Ok(())
    }

    /// `connect`: verifies the token (or admits an anonymous client) and registers the user.
    pub fn connect(&mut self, request: ConnectRequest) -> Result<Result<ConnectReply, CommandError>, Disconnect> {
        if self.client.is_some() {
            return Ok(Err(CommandError::new(ErrorCode::BadRequest, "already connected")));
        }
        if let Some(Err(message)) = request.presence.as_ref().map(PresenceMetas::check) {
            return Ok(Err(CommandError::new(
                ErrorCode::BadRequest,
                format!("presence.{message}"),
            )));
        }
        let client = match request.token.as_deref() {
            None | Some("") => Client {
                tenant: self.gateway.settings.anonymous_tenant.clone(),
                grants: Grants::default(),
                expires_at_ms: None,
            },
            Some(token) => match self.verify(token) {
                Ok(client) => client,
                Err(AuthError::Expired) => return Ok(Err(CommandError::new(ErrorCode::TokenExpired, "token expired"))),
                Err(error) => {
                    return Err(Disconnect::new(
                        Disconnect::INVALID_TOKEN,
                        format!("invalid token: {error}"),
                    ));
                }
            },
        };
        if let Some(user) = &client.grants.user {
            let limit = self.gateway.settings.client.max_connections_per_user;
            let added = self
                .gateway
                .hub
                .add_user_connection(&client.tenant, user, self.id, &self.outbox, limit);
            if added.is_err() {
                self.gateway.metrics.connections_refused.inc();
                return Err(Disconnect::new(
                    Disconnect::CONNECTION_LIMIT,
                    "too many connections for this user",
                ));
            }
        }
        let max_window = self.gateway.settings.client.max_batch_window_ms;
        self.batch_window = Duration::from_millis(request.batch_ms.min(max_window));
        let reply = ConnectReply {
            client: self.id.to_string(),
            node: self.gateway.node.id.clone(),
            version: self.gateway.node.version.clone(),
            expires_in: client.expires_at_ms.map(|at| ((at - now_ms()) / 1000).max(0)),
            ping_interval_ms: self.gateway.settings.client.ping_interval_ms,
            batch_ms: self.batch_window.as_millis() as u64,
        };
        self.presence = self.open_presence(&client, request.device, request.presence);
        self.client = Some(client);
        Ok(Ok(reply))
    }

    fn client(&self) -> Result<&Client, CommandError> {
        self.client
            .as_ref()
            .ok_or_else(|| CommandError::new(ErrorCode::Unauthorized, "send connect first"))
    }

    async fn subscribe_command(&mut self, request: SubscribeRequest) -> Result<Subscribed, CommandError> {
        let since = request.recover.as_ref().map(StreamPosition::from);
        self.subscribe(&request.channel, since).await
    }

    /// Subscribes; with `since`, recovers exactly what came after it or says it cannot.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        since: Option<StreamPosition>,
    ) -> Result<Subscribed, CommandError> {
        let client = self.client()?;
        let name = ChannelName::parse(channel).map_err(channel_error)?;
        let namespace = self
            .gateway
            .namespaces
            .may_subscribe(&name, &client.grants)
            .map_err(channel_error)?
            .clone();
        if self.outbox.has_subscription(channel) {
            return Err(CommandError::new(ErrorCode::AlreadySubscribed, "already subscribed"));
        }
        if self.outbox.subscription_count() >= self.gateway.settings.client.max_subscriptions {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                "too many subscriptions on this connection",
            ));
        }
        let topic = Topic::new(&client.tenant, channel);
        self.gateway.hub.subscribe(&topic, self.id, &self.outbox);
        let read = self.read_position(&topic, &namespace, since.as_ref()).await;
        let (position, recovery) = match read {
            Ok(read) => read,
            Err(error) => {
                self.release(&topic).await;
                return Err(error);
            }
        };
        let recovered = recovery
            .as_ref()
            .map(|recovery| matches!(recovery, Recovery::Recovered(_)));
        if let Some(recovered) = recovered {
            let outcome = if recovered { "recovered" } else { "unrecoverable" };
            self.gateway
                .metrics
                .recoveries
                .get_or_create(&RecoveryLabels { outcome })
                .inc();
        }
        let publications = match recovery {
            Some(Recovery::Recovered(publications)) => publications,
            _ => Vec::new(),
        };
        let presence = match self.presence_snapshot(channel).await {
            Ok(presence) => presence,
            Err(error) => {
                self.release(&topic).await;
                return Err(error);
            }
        };
        self.outbox.add_subscription(channel.into(), position.clone());
        if namespace.presence
            && let Some(presence) = self.presence.as_mut()
        {
            presence.subscribed(channel);
        }
        Ok(Subscribed {
            offset: position.offset,
            epoch: position.epoch,
            recoverable: namespace.history_size > 0,
            recovered,
            publications,
            presence,
        })
    }

    /// The channel's position once this node receives its publications, and the recovery.
    async fn read_position(
        &self,
        topic: &Topic,
        namespace: &crate::conf::NamespaceSettings,
        since: Option<&StreamPosition>,
    ) -> Result<(StreamPosition, Option<Recovery>), CommandError> {
        self.gateway.broker.subscribe(topic).await.map_err(unavailable)?;
        let limit = match since {
            Some(_) => namespace.history_size,
            None => 0,
        };
        let policy = self.gateway.history_policy(namespace);
        let query = super::broker::HistoryQuery {
            after: since.map(|position| position.offset),
            limit,
            reverse: false,
            ttl: policy.ttl,
            meta_ttl: policy.meta_ttl,
        };
        let page = self.gateway.broker.history(topic, query).await.map_err(unavailable)?;
        let position = page.position.clone();
        Ok((position, since.map(|since| recover(since, page))))
    }

    async fn unsubscribe_command(&mut self, request: ChannelRequest) -> Result<(), CommandError> {
        if !self.remove_subscription(&request.channel).await {
            return Err(CommandError::new(ErrorCode::NotSubscribed, "not subscribed"));
        }
        if let Some(presence) = self.presence.as_mut() {
            presence.unsubscribed(&request.channel);
        }
        Ok(())
    }

    async fn remove_subscription(&mut self, channel: &str) -> bool {
        if !self.outbox.remove_subscription(channel) {
            return false;
        }
        let Some(client) = self.client.as_ref() else {
            return false;
        };
        let topic = Topic::new(&client.tenant, channel);
        self.release(&topic).await;
        true
    }

    /// Leaves the hub's topic and, when this was its last subscriber here, the broker's.
    async fn release(&self, topic: &Topic) {
        if self.gateway.hub.unsubscribe(topic, self.id) {
            leave_broker_topic(&self.gateway, topic).await;
        }
    }

    async fn publish(&mut self, request: PublishRequest) -> Result<PublishReply, CommandError> {
        let client = self.client()?;
        let name = ChannelName::parse(&request.channel).map_err(channel_error)?;
        let namespace = self
            .gateway
            .namespaces
            .may_publish(&name, &client.grants)
            .map_err(channel_error)?;
        // Already parsed with the command: serialising it gives compact JSON.
        let data = serde_json::to_vec(&request.data)
            .map_err(|error| CommandError::new(ErrorCode::BadRequest, format!("data: {error}")))?;
        let outgoing = Publish {
            data: data.into(),
            tags: BTreeMap::new(),
            idempotency_key: None,
        };
        let published = self
            .gateway
            .publish_checked(&client.tenant, &request.channel, namespace, outgoing)
            .await
            .map_err(gateway_error)?;
        Ok(PublishReply {
            offset: published.position.offset,
            epoch: published.position.epoch,
        })
    }

    async fn history(&mut self, request: HistoryRequest) -> Result<Vec<u8>, CommandError> {
        let client = self.client()?;
        let name = ChannelName::parse(&request.channel).map_err(channel_error)?;
        let namespace = self
            .gateway
            .namespaces
            .may_subscribe(&name, &client.grants)
            .map_err(channel_error)?;
        if namespace.history_size == 0 {
            return Err(CommandError::new(
                ErrorCode::NotAvailable,
                "this channel keeps no history",
            ));
        }
        let since = request.since.as_ref().map(StreamPosition::from);
        let page = self
            .gateway
            .history_checked(
                &client.tenant,
                &request.channel,
                namespace,
                request.limit.unwrap_or(100),
                since,
                request.reverse,
            )
            .await
            .map_err(gateway_error)?;
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"offset\":");
        out.extend_from_slice(page.position.offset.to_string().as_bytes());
        out.extend_from_slice(b",\"epoch\":");
        out.extend_from_slice(&to_json(&page.position.epoch));
        out.extend_from_slice(b",\"publications\":");
        write_publications(&mut out, &page.publications);
        out.push(b'}');
        Ok(out)
    }

    /// What a queued item means for the client (see [`Outbox::accept`]); subscriptions it
    /// ends are left in the hub until [`Session::release_ended`].
    pub fn accept(&mut self, item: Outgoing) -> Option<Event> {
        self.outbox.accept(item)
    }

    /// Whether [`Session::accept`] ended subscriptions that still hold their hub entries.
    pub fn has_ended(&self) -> bool {
        self.outbox.has_ended()
    }

    /// Leaves the hub (and broker) topics of the subscriptions `accept` ended.
    pub async fn release_ended(&mut self) {
        let Some(client) = self.client.as_ref() else {
            return;
        };
        for channel in self.outbox.take_ended() {
            self.release(&Topic::new(&client.tenant, &channel)).await;
            if let Some(presence) = self.presence.as_mut() {
                presence.unsubscribed(&channel);
            }
        }
    }

    /// The last offset delivered per channel, for SSE event ids.
    pub fn position(&self, channel: &str) -> Option<StreamPosition> {
        self.outbox.position(channel)
    }

    /// Leaves every channel and the user registry.
    pub async fn close(mut self) {
        self.release_ended().await;
        // The connection's channels go with it: presence hears only that it closed.
        if let Some(presence) = self.presence.take() {
            presence.closed(self.clean_departure);
        }
        for channel in self.outbox.subscribed_channels() {
            self.remove_subscription(&channel).await;
        }
        // Nothing is left for `drop` to do.
        if let Some(client) = self.client.take() {
            self.leave_user_registry(&client);
        }
    }

    fn leave_user_registry(&self, client: &Client) {
        if let Some(user) = &client.grants.user {
            self.gateway.hub.remove_user_connection(&client.tenant, user, self.id);
        }
    }
}

/// A session dropped without [`Session::close`] — its connection's task panicked or was
/// cancelled — still leaves the hub and the user registry, so a dead connection keeps no
/// subscription and no slot under its user's connection limit. Leaving a broker topic takes
/// I/O, so that part is spawned (the broker re-checks for subscribers before it leaves).
impl<B: Broker> Drop for Session<B> {
    fn drop(&mut self) {
        if let Some(presence) = self.presence.take() {
            presence.closed(false);
        }
        let Some(client) = self.client.take() else {
            return;
        };
        for channel in self.outbox.take_all_channels() {
            let topic = Topic::new(&client.tenant, &channel);
            if !self.gateway.hub.unsubscribe(&topic, self.id) {
                continue;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                continue;
            };
            let gateway = self.gateway.clone();
            runtime.spawn(async move { leave_broker_topic(&gateway, &topic).await });
        }
        self.leave_user_registry(&client);
    }
}

/// Once this node has no subscriber left on `topic`: stop taking its publications from the
/// broker (which re-checks for subscribers first).
async fn leave_broker_topic<B: Broker>(gateway: &Gateway<B>, topic: &Topic) {
    if let Err(error) = gateway.broker.unsubscribe(topic).await {
        tracing::warn!(%error, topic = topic.as_str(), "cannot leave the broker topic");
    }
}

#[derive(Debug, Serialize)]
pub struct ConnectReply {
    pub client: String,
    pub node: String,
    pub version: String,
    /// Seconds until the token expires: refresh before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    pub ping_interval_ms: u64,
    pub batch_ms: u64,
}

#[derive(Debug, Serialize)]
struct RefreshReply {
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<i64>,
}

#[derive(Debug, Serialize)]
struct PublishReply {
    offset: u64,
    epoch: Arc<str>,
}

fn channel_error(error: ChannelError) -> CommandError {
    let code = match error {
        ChannelError::PermissionDenied(_) => ErrorCode::PermissionDenied,
        ChannelError::UnknownNamespace(_) => ErrorCode::UnknownChannel,
        _ => ErrorCode::BadRequest,
    };
    CommandError::new(code, error.to_string())
}

fn gateway_error(error: GatewayError) -> CommandError {
    match error {
        GatewayError::Channel { source, .. } => channel_error(source),
        GatewayError::Invalid { .. } => CommandError::new(ErrorCode::BadRequest, error.to_string()),
        GatewayError::Unrecoverable(message) => CommandError::new(ErrorCode::Unrecoverable, message),
        GatewayError::Broker(error) => unavailable(error),
    }
}

fn unavailable(error: super::broker::BrokerError) -> CommandError {
    CommandError::new(ErrorCode::Unavailable, error.to_string())
}
