//! The client protocol's messages (docs/realtime-protocol.md): commands a client sends,
//! replies and pushes it receives, and the codes that tell it what to do next.
//!
//! A WebSocket text frame carries one or more JSON objects separated by newlines, in both
//! directions. Each command has an `id` (echoed in its reply) and exactly one method field.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    presence::{DeviceInfo, PresenceMetas},
    publication::{Publication, StreamPosition},
};

/// One command as it arrives; [`Command::method`] checks that exactly one method is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    #[serde(default)]
    pub id: u32,
    connect: Option<ConnectRequest>,
    subscribe: Option<SubscribeRequest>,
    unsubscribe: Option<ChannelRequest>,
    publish: Option<PublishRequest>,
    history: Option<HistoryRequest>,
    refresh: Option<RefreshRequest>,
    presence: Option<PresenceMetas>,
    ping: Option<Empty>,
    pong: Option<Empty>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(ChannelRequest),
    Publish(PublishRequest),
    History(HistoryRequest),
    Refresh(RefreshRequest),
    /// The client's own presence metas (status, page, shopping activity, location).
    Presence(PresenceMetas),
    Ping,
    /// The answer to a server ping; needs no reply.
    Pong,
}

impl Command {
    pub fn method(self) -> Result<Method, String> {
        let methods = [
            self.connect.map(Method::Connect),
            self.subscribe.map(Method::Subscribe),
            self.unsubscribe.map(Method::Unsubscribe),
            self.publish.map(Method::Publish),
            self.history.map(Method::History),
            self.refresh.map(Method::Refresh),
            self.presence.map(Method::Presence),
            self.ping.map(|_| Method::Ping),
            self.pong.map(|_| Method::Pong),
        ];
        let mut present = methods.into_iter().flatten();
        match (present.next(), present.next()) {
            (Some(method), None) => Ok(method),
            (None, _) => Err(
                "a command needs one method: connect, subscribe, unsubscribe, publish, history, refresh, presence, ping \
                 or pong"
                    .into(),
            ),
            (Some(_), Some(_)) => Err("a command carries exactly one method".into()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// A JWT (sub, exp, optional channels and tenant); without one the client is anonymous.
    pub token: Option<String>,
    /// Ask the server to gather pushes for up to this many milliseconds into one frame.
    #[serde(default)]
    pub batch_ms: u64,
    /// What the device is, for presence (connections with a user only).
    #[serde(default)]
    pub device: Option<DeviceInfo>,
    /// The client's presence metas from the start.
    #[serde(default)]
    pub presence: Option<PresenceMetas>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub channel: String,
    /// The last position the client applied; it receives exactly what came after, or
    /// `recovered: false`.
    pub recover: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub channel: String,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    pub channel: String,
    #[serde(default)]
    pub limit: Option<usize>,
    pub since: Option<Position>,
    #[serde(default)]
    pub reverse: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub token: String,
}

/// Why a command failed. `temporary` errors may succeed when retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Internal = 100,
    Unauthorized = 101,
    UnknownChannel = 102,
    PermissionDenied = 103,
    AlreadySubscribed = 105,
    LimitExceeded = 106,
    BadRequest = 107,
    NotAvailable = 108,
    TokenExpired = 109,
    Unavailable = 110,
    NotSubscribed = 111,
    Unrecoverable = 112,
}

impl ErrorCode {
    pub fn temporary(self) -> bool {
        matches!(self, ErrorCode::Internal | ErrorCode::Unavailable)
    }
}

/// A failed command's reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
        }
    }
}

/// Why the server closes a connection. Codes 3000–3499 invite a reconnect (after the
/// advised delay); 3500–3999 mean "do not reconnect as you are".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    pub reason: Arc<str>,
}

impl Disconnect {
    pub const SHUTDOWN: u16 = 3000;
    pub const SLOW_CONSUMER: u16 = 3001;
    pub const NO_PONG: u16 = 3002;
    pub const TOKEN_EXPIRED: u16 = 3003;
    pub const TOO_MANY_REQUESTS: u16 = 3004;
    pub const CONNECTION_LIMIT: u16 = 3005;
    pub const CONNECT_TIMEOUT: u16 = 3006;
    pub const FORCE_RECONNECT: u16 = 3007;
    pub const INVALID_TOKEN: u16 = 3500;
    pub const BAD_REQUEST: u16 = 3501;
    pub const FORCE_NO_RECONNECT: u16 = 3502;
    pub const MESSAGE_TOO_LARGE: u16 = 3503;

    pub fn new(code: u16, reason: impl Into<Arc<str>>) -> Self {
        Disconnect {
            code,
            reason: reason.into(),
        }
    }

    pub fn reconnect(&self) -> bool {
        self.code < 3500
    }
}

/// Why a subscription ended without the client asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    pub channel: Arc<str>,
    pub code: u16,
    pub reason: &'static str,
    /// Subscribe again (with `recover` from the last applied position) to continue.
    pub resubscribe: bool,
}

impl Unsubscribed {
    /// The server API removed the subscription.
    pub const SERVER: u16 = 2000;
    /// The node may have missed publications (a gap in offsets or a new epoch).
    pub const INSUFFICIENT_STATE: u16 = 2500;
}

/// The body of a successful `subscribe` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The channel's current position; apply publications after it.
    pub offset: u64,
    pub epoch: Arc<str>,
    /// Whether the channel keeps history (so a later `recover` can succeed).
    pub recoverable: bool,
    /// Present when the client asked to recover: true with exactly what it missed in
    /// `publications`, false when that cannot be known (reload your state).
    pub recovered: Option<bool>,
    pub publications: Vec<Publication>,
    /// For `$presence:{channel}`: the members now, as the JSON of a `snapshot` publication.
    pub presence: Option<bytes::Bytes>,
}

impl From<&Position> for StreamPosition {
    fn from(position: &Position) -> Self {
        StreamPosition {
            offset: position.offset,
            epoch: position.epoch.as_str().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Method, String> {
        serde_json::from_str::<Command>(text)
            .map_err(|error| error.to_string())?
            .method()
    }

    #[test]
    fn commands_carry_exactly_one_method() {
        assert_eq!(parse(r#"{"id":1,"ping":{}}"#), Ok(Method::Ping));
        assert!(matches!(
            parse(r#"{"id":2,"subscribe":{"channel":"a","recover":{"offset":3,"epoch":"e"}}}"#),
            Ok(Method::Subscribe(SubscribeRequest { recover: Some(_), .. }))
        ));
        assert!(parse(r#"{"id":1}"#).unwrap_err().contains("needs one method"));
        assert!(
            parse(r#"{"id":1,"ping":{},"pong":{}}"#)
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(parse(r#"{"id":1,"shout":{}}"#).unwrap_err().contains("unknown field"));
        assert!(parse(r#"{"id":"x","ping":{}}"#).is_err());
        assert!(parse(r#"{"id":1,"subscribe":{"channel":"a","extra":1}}"#).is_err());
    }

    #[test]
    fn disconnect_codes_say_whether_to_reconnect() {
        assert!(Disconnect::new(Disconnect::SLOW_CONSUMER, "slow").reconnect());
        assert!(!Disconnect::new(Disconnect::INVALID_TOKEN, "bad").reconnect());
    }
}
