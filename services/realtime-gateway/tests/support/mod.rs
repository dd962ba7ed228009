//! A realtime-gateway on loopback, WebSocket clients that speak the JSON protocol, connection
//! tokens, and a gRPC client with an admin key.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{collections::VecDeque, time::Duration};

use futures::{SinkExt, StreamExt};
use realtime_gateway::conf::{NamespaceSettings, Settings, defaults};
use serde_json::{Value, json};
use switchyard_api::realtime::v1::realtime_service_client::RealtimeServiceClient;
use switchyard_platform::{Running, Shutdown, auth::generate_api_key, testing};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub const SECRET: &str = "realtime-test-secret";

pub struct Gateway {
    pub running: Running,
    pub shutdown: Shutdown,
    pub admin_key: String,
    pub dir: tempfile::TempDir,
}

/// Settings for tests: loopback ports, a private data directory, a JWT secret, an admin
/// key, and a `chat` namespace where clients may publish.
pub fn settings(dir: &std::path::Path) -> (Settings, String) {
    let mut settings: Settings = testing::local(defaults(), dir);
    settings.auth.jwt_hs256_secret = Some(SECRET.to_owned());
    let admin = generate_api_key("default", &["admin"]);
    settings.auth.api_keys.push(admin.record);
    settings.service.namespaces.insert(
        "chat".to_owned(),
        NamespaceSettings {
            history_size: 10,
            history_ttl_secs: 60,
            allow_publish: true,
            ..NamespaceSettings::default()
        },
    );
    settings.service.node_report_ms = 200;
    (settings, admin.plaintext)
}

pub async fn start() -> Gateway {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, admin_key) = settings(dir.path());
    adjust(&mut settings);
    start_on(settings, admin_key, dir).await
}

pub async fn start_on(settings: Settings, admin_key: String, dir: tempfile::TempDir) -> Gateway {
    let shutdown = Shutdown::new();
    let running = match realtime_gateway::start(settings, shutdown.clone()).await {
        Ok(running) => running,
        Err(error) => panic!("realtime-gateway did not start: {error}"),
    };
    Gateway {
        running,
        shutdown,
        admin_key,
        dir,
    }
}

impl Gateway {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/realtime/websocket", self.running.http_addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http_addr)
    }

    pub async fn client(&self) -> Client {
        Client::open(&self.ws_url()).await
    }

    /// A client connected with a token for `user` granting `channels`.
    pub async fn user(&self, user: &str, channels: &[&str]) -> Client {
        let mut client = self.client().await;
        let reply = client.connect(Some(&token(user, channels, 300))).await;
        assert!(reply.get("connect").is_some(), "connect failed: {reply}");
        client
    }

    pub async fn anonymous(&self) -> Client {
        let mut client = self.client().await;
        let reply = client.connect(None).await;
        assert!(reply.get("connect").is_some(), "connect failed: {reply}");
        client
    }

    pub fn api(&self) -> Api {
        api(&self.running, &self.admin_key)
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
    }
}

pub type Api = RealtimeServiceClient<InterceptedService<Channel, Bearer>>;

pub fn api(running: &Running, key: &str) -> Api {
    RealtimeServiceClient::with_interceptor(testing::grpc_channel(running), Bearer(format!("Bearer {key}")))
}

#[derive(Clone)]
pub struct Bearer(pub String);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.parse().unwrap());
        Ok(request)
    }
}

/// A connection token for `user`, valid for `seconds` (negative: already expired).
pub fn token(user: &str, channels: &[&str], seconds: i64) -> String {
    token_with(json!({"sub": user, "channels": channels}), seconds, SECRET)
}

pub fn token_with(mut claims: Value, seconds: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["exp"] = json!(now + seconds);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A JSON data value as the gRPC API takes it.
pub fn data(value: Value) -> pbjson_types::Value {
    serde_json::from_value(value).unwrap()
}

pub async fn publish(api: &mut Api, channel: &str, value: Value) -> Value {
    let response = api
        .publish(switchyard_api::realtime::v1::PublishRequest {
            channel: channel.to_owned(),
            payload: Some(switchyard_api::realtime::v1::publish_request::Payload::Data(data(
                value,
            ))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let position = response.position.unwrap();
    json!({"offset": position.offset, "epoch": position.epoch})
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
    /// The `disconnect` push that came before the close frame, if any.
    pub push: Option<Value>,
}

/// A WebSocket client of the JSON protocol.
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
    /// Messages received while waiting for something else, in order.
    pending: VecDeque<Value>,
    /// Frames received (to see batching).
    pub frames: usize,
}

const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn open(url: &str) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client {
            socket,
            next_id: 1,
            pending: VecDeque::new(),
            frames: 0,
        }
    }

    /// A client whose socket takes at most about `bytes` before the server must wait for it
    /// to read: a phone on a slow link.
    pub async fn open_with_receive_buffer(url: &str, bytes: u32) -> Client {
        let address: std::net::SocketAddr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let stream = socket.connect(address).await.unwrap();
        let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
        Client {
            socket,
            next_id: 1,
            pending: VecDeque::new(),
            frames: 0,
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_message(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// Sends one command and waits for its reply; pushes that arrive first are kept.
    pub async fn command(&mut self, method: &str, body: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({"id": id});
        command[method] = body;
        self.send_text(&command.to_string()).await;
        self.reply(id).await
    }

    pub async fn reply(&mut self, id: u32) -> Value {
        loop {
            if let Some(index) = self.pending.iter().position(|message| message["id"] == id) {
                return self.pending.remove(index).unwrap();
            }
            if let Err(closed) = self.fill().await {
                panic!("closed while waiting for reply {id}: {closed:?}");
            }
        }
    }

    pub async fn connect(&mut self, token: Option<&str>) -> Value {
        self.command("connect", json!({"token": token})).await
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.command("subscribe", json!({"channel": channel})).await
    }

    pub async fn recover(&mut self, channel: &str, offset: u64, epoch: &str) -> Value {
        self.command(
            "subscribe",
            json!({"channel": channel, "recover": {"offset": offset, "epoch": epoch}}),
        )
        .await
    }

    /// The next push (not a reply, not a ping).
    pub async fn push(&mut self) -> Value {
        match self.try_push().await {
            Ok(push) => push,
            Err(closed) => panic!("closed while waiting for a push: {closed:?}"),
        }
    }

    pub async fn try_push(&mut self) -> Result<Value, Closed> {
        loop {
            if let Some(index) = self.pending.iter().position(is_push) {
                return Ok(self.pending.remove(index).unwrap()["push"].clone());
            }
            self.fill().await?;
        }
    }

    /// The next publication pushed.
    pub async fn publication(&mut self) -> Value {
        let push = self.push().await;
        assert!(push.get("pub").is_some(), "expected a publication, got {push}");
        push
    }

    /// No push arrives within `window`.
    pub async fn silent_for(&mut self, window: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + window;
        while !self.pending.iter().any(is_push) {
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return true,
                Ok(Err(_)) => return false,
                Ok(Ok(())) => {}
            }
        }
        false
    }

    /// Reads until the server closes; returns the close code and the disconnect push.
    pub async fn closed(&mut self) -> Closed {
        loop {
            if let Err(closed) = self.fill().await {
                return closed;
            }
        }
    }

    /// Reads one frame into `pending`; server pings are skipped. A close is returned with
    /// the `disconnect` push that preceded it.
    async fn fill(&mut self) -> Result<(), Closed> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("nothing received within 10 s");
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(self.closed_with(code, reason));
                }
                None | Some(Err(_)) => return Err(self.closed_with(1006, String::new())),
                Some(Ok(_)) => continue,
            };
            self.frames += 1;
            for line in text.split('\n') {
                let message: Value =
                    serde_json::from_str(line).unwrap_or_else(|error| panic!("bad JSON {line:?}: {error}"));
                if message.get("ping").is_none() {
                    self.pending.push_back(message);
                }
            }
            return Ok(());
        }
    }

    fn closed_with(&mut self, code: u16, reason: String) -> Closed {
        let push = self
            .pending
            .iter()
            .position(|message| message["push"].get("disconnect").is_some())
            .and_then(|index| self.pending.remove(index));
        Closed { code, reason, push }
    }
}

fn is_push(message: &Value) -> bool {
    message.get("push").is_some() && message["push"].get("disconnect").is_none()
}

/// An SSE stream read event by event.
pub struct EventStream {
    body: hyper::body::Incoming,
    buffer: String,
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Opens `GET path` on the gateway; returns the status and, for 200, the stream.
pub async fn sse(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Result<EventStream, (u16, String)> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().uri(gateway.http(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client.request(builder.body(Empty::new()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        return Err((status, String::from_utf8_lossy(&body).into_owned()));
    }
    Ok(EventStream {
        body: response.into_body(),
        buffer: String::new(),
    })
}

impl EventStream {
    /// The next event (comments such as `: ping` are skipped).
    pub async fn next(&mut self) -> SseEvent {
        use http_body_util::BodyExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.to_owned());
                    } else if let Some(name) = line.strip_prefix("event: ") {
                        event.event = Some(name.to_owned());
                    } else if let Some(text) = line.strip_prefix("data: ") {
                        data.push(text.to_owned());
                    }
                }
                if data.is_empty() && event.event.is_none() {
                    continue;
                }
                event.data = data.join("\n");
                return event;
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("no SSE event within 10 s")
                .expect("the SSE stream ended")
                .unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }
}

/// `count` gateway nodes in this process sharing the Redis at `redis_url` under a private key
/// prefix, with a `load` namespace that keeps 10,000 publications for recovery.
pub async fn cluster(count: usize, redis_url: &str) -> Vec<Gateway> {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let mut nodes = Vec::new();
    let admin = generate_api_key("default", &["admin"]);
    for _ in 0..count {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = node_settings(dir.path(), redis_url, &prefix);
        settings.auth.api_keys = vec![admin.record.clone()];
        nodes.push(start_on(settings, admin.plaintext.clone(), dir).await);
    }
    nodes
}

/// One node's settings for a cluster under `prefix`.
pub fn node_settings(dir: &std::path::Path, redis_url: &str, prefix: &str) -> Settings {
    let (mut settings, _) = settings(dir);
    settings.redis_url = Some(redis_url.to_owned());
    settings.service.redis_prefix = prefix.to_owned();
    settings.service.namespaces.insert(
        "load".to_owned(),
        NamespaceSettings {
            history_size: 10_000,
            history_ttl_secs: 300,
            public: true,
            allow_anonymous: true,
            ..NamespaceSettings::default()
        },
    );
    settings
}
