//! The WebSocket transport (`GET /realtime/websocket`): one task per connection reads
//! command frames, drains the connection's outbox, pings idle clients, enforces the token's
//! expiry and closes with a code that says whether to reconnect.
//!
//! Once the client has connected without a batching window, publishers write its pushes
//! straight to the socket ([`wire`]); the task writes what they queue instead — everything
//! queued at that moment in one frame — and, for a client that asked for a batching window
//! at connect, once per window.

mod upgrade;
mod wire;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use switchyard_platform::{clock::now_ms, shutdown::Shutdown};
use tokio::time::Instant;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, Role, WebSocketConfig},
    },
};

use self::wire::{Duplex, Io, SocketWire};
use super::Transport;
use crate::{
    biz::{broker::Broker, metrics::DisconnectLabels, outbox::Event, protocol::Disconnect, session::Session},
    data::AnyBroker,
};

/// The read buffer tungstenite allocates per connection up front. Small, so idle
/// connections stay cheap; it grows for a larger frame while that frame is read.
const READ_BUFFER: usize = 1024;

pub async fn upgrade(
    State(transport): State<Transport>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    let accept = match upgrade::accept(request.method(), request.version(), request.headers()) {
        Ok(accept) => accept,
        Err(refused) => return refused.into_response(),
    };
    let Some(upgrading) = upgrade::on_upgrade(&mut request) else {
        return (StatusCode::UPGRADE_REQUIRED, "WebSocket needs an HTTP/1.1 connection").into_response();
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrading.await {
            serve(TokioIo::new(upgraded), transport, peer).await;
        }
    });
    upgrade::switching(accept)
}

/// The WebSocket over one upgraded connection: tungstenite reads the client's frames; the
/// wire takes everything written.
struct Socket {
    frames: WebSocketStream<Duplex>,
    wire: Arc<SocketWire>,
}

impl Socket {
    async fn new(io: Io, limits: &crate::conf::ClientLimits) -> Socket {
        let (reader, writer) = tokio::io::split(io);
        let wire = SocketWire::new(writer, limits.max_queue_bytes);
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            // Frames up to twice the limit are read and refused with code 3503; larger ones
            // drop the connection at the frame layer.
            .max_message_size(Some(limits.max_message_bytes * 2))
            .max_frame_size(Some(limits.max_message_bytes * 2));
        let duplex = Duplex {
            reader,
            wire: wire.clone(),
        };
        let frames = WebSocketStream::from_raw_socket(duplex, Role::Server, Some(config)).await;
        Socket { frames, wire }
    }

    /// Writes one text frame of the task's own (a reply, a ping) and whatever is ahead of it.
    async fn send(&mut self, payload: &[u8], timeout: Duration) -> Result<(), ()> {
        self.wire.reply(payload);
        self.flush(timeout).await
    }

    /// Writes what publishers or earlier sends left behind. A client whose socket takes
    /// nothing for `timeout` is treated as gone; one that keeps taking bytes is not, however
    /// long the backlog lasts (the byte limit bounds that).
    async fn flush(&mut self, timeout: Duration) -> Result<(), ()> {
        while self.wire.has_backlog() {
            match tokio::time::timeout(timeout, self.wire.write_some()).await {
                Ok(Ok(())) => {}
                _ => return Err(()),
            }
        }
        Ok(())
    }
}

async fn serve(io: Io, transport: Transport, peer: SocketAddr) {
    let gateway = transport.gateway.clone();
    let mut socket = Socket::new(io, &gateway.settings.client).await;
    let mut session = match Session::open(&gateway, peer.ip()) {
        Ok(session) => session,
        Err(disconnect) => {
            close(&mut socket, &gateway, &disconnect).await;
            return;
        }
    };
    let disconnect = run(&mut socket, &mut session, &transport.shutdown).await;
    // A server close the client should not come back from ends presence at once; one it
    // should come back from (shutdown, slow reader, ping timeout) gets the grace period.
    if let Some(disconnect) = &disconnect {
        session.set_clean_departure(!disconnect.reconnect());
    }
    // Nothing more is pushed once the connection is ending (leaving each channel takes a
    // broker call, and publications would keep coming meanwhile).
    session.outbox.detach();
    // Leave the hub first: a client that does not read must not hold its subscriptions
    // while the close handshake times out.
    Box::pin(session.close()).await;
    if let Some(disconnect) = disconnect {
        close(&mut socket, &gateway, &disconnect).await;
    }
}

/// Serves the connection until the client leaves (None) or the server closes it.
async fn run(socket: &mut Socket, session: &mut Session<AnyBroker>, shutdown: &Shutdown) -> Option<Disconnect> {
    let gateway = session.gateway().clone();
    let outbox = session.outbox.clone();
    let mut direct = false;
    let limits = gateway.settings.client.clone();
    let ping_interval = Duration::from_millis(limits.ping_interval_ms);
    let silence_allowed = ping_interval + Duration::from_millis(limits.pong_timeout_ms);
    let connect_deadline = Instant::now() + Duration::from_millis(limits.connect_timeout_ms);
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    let mut last_heard = Instant::now();
    let mut next_ping = Instant::now() + ping_interval;
    let mut batch = Batch::default();
    let mut replies = Vec::new();
    let mut drained = Vec::new();
    loop {
        let deadline = next_deadline(session, connect_deadline, next_ping, &batch);
        tokio::select! {
            _ = shutdown.cancelled() => return Some(Disconnect::new(Disconnect::SHUTDOWN, "server shutting down")),
            message = socket.frames.next() => {
                let frame = match message {
                    None | Some(Err(_)) => return None,
                    Some(Ok(Message::Close(_))) => {
                        session.set_clean_departure(true);
                        // tungstenite queued the closing handshake's reply: hand it to the wire.
                        let _ = socket.frames.flush().await;
                        return None;
                    }
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        return Some(Disconnect::new(Disconnect::BAD_REQUEST, "binary frames are not part of the protocol"));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                        last_heard = Instant::now();
                        continue;
                    }
                };
                last_heard = Instant::now();
                if frame.len() > limits.max_message_bytes {
                    return Some(Disconnect::new(Disconnect::MESSAGE_TOO_LARGE, "message too large"));
                }
                // Publications that arrive while the commands are answered wait behind the
                // replies: a subscribe's reply must precede the channel's live pushes.
                let hold = outbox.hold();
                // Pushes already accepted go before the replies, so that no push of a channel
                // follows the reply that unsubscribed it.
                if write_batch(socket, &mut batch, &gateway).is_err() {
                    return Some(stalled());
                }
                replies.clear();
                // Boxed: commands are rare and their futures (history reads, broker calls) large;
                // inline, they would sit in every idle connection's task.
                let handled = Box::pin(session.handle_frame(frame.as_bytes(), &mut replies)).await;
                if !replies.is_empty() {
                    trim_newline(&mut replies);
                    socket.wire.reply(&replies);
                }
                if !direct && session.is_connected() && session.batch_window.is_zero() {
                    outbox.attach(socket.wire.clone());
                    direct = true;
                }
                drop(hold);
                if socket.flush(write_timeout).await.is_err() {
                    return Some(stalled());
                }
                if let Err(disconnect) = handled {
                    return Some(disconnect);
                }
            }
            _ = outbox.ready() => {
                let hold = outbox.hold();
                if let Some(disconnect) = outbox.drain(&mut drained) {
                    return Some(disconnect);
                }
                for item in drained.drain(..) {
                    if let Some(event) = session.accept(item) {
                        batch.add(&event);
                    }
                }
                if session.batch_window.is_zero() {
                    if write_batch(socket, &mut batch, &gateway).is_err() {
                        return Some(stalled());
                    }
                } else if batch.started.is_none() && !batch.is_empty() {
                    batch.started = Some(Instant::now());
                }
                drop(hold);
                if session.has_ended() {
                    Box::pin(session.release_ended()).await;
                }
                if socket.flush(write_timeout).await.is_err() {
                    return Some(stalled());
                }
            }
            _ = socket.wire.backlogged() => {
                if socket.flush(write_timeout).await.is_err() {
                    return Some(stalled());
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if !session.is_connected() && now >= connect_deadline {
                    return Some(Disconnect::new(Disconnect::CONNECT_TIMEOUT, "connect not sent in time"));
                }
                if let Some(expires) = session.expires_at_ms()
                    && now_ms() >= expires
                {
                    return Some(Disconnect::new(Disconnect::TOKEN_EXPIRED, "token expired: reconnect with a fresh token"));
                }
                if batch.due(session.batch_window, now)
                    && (write_batch(socket, &mut batch, &gateway).is_err() || socket.flush(write_timeout).await.is_err())
                {
                    return Some(stalled());
                }
                if now >= next_ping {
                    if now.duration_since(last_heard) > silence_allowed {
                        return Some(Disconnect::new(Disconnect::NO_PONG, "no pong"));
                    }
                    next_ping = now + ping_interval;
                    if socket.send(b"{\"ping\":{}}", write_timeout).await.is_err() {
                        return Some(stalled());
                    }
                }
            }
        }
    }
}

/// The earliest moment the loop must wake up for a timer.
fn next_deadline(
    session: &Session<impl Broker>,
    connect_deadline: Instant,
    next_ping: Instant,
    batch: &Batch,
) -> Instant {
    let mut deadline = next_ping;
    if !session.is_connected() {
        deadline = deadline.min(connect_deadline);
    }
    if let Some(expires) = session.expires_at_ms() {
        let in_ms = (expires - now_ms()).max(0) as u64;
        deadline = deadline.min(Instant::now() + Duration::from_millis(in_ms));
    }
    if let Some(started) = batch.started {
        deadline = deadline.min(started + session.batch_window);
    }
    deadline
}

/// Pushes waiting to be written as one frame.
#[derive(Default)]
struct Batch {
    frame: Vec<u8>,
    /// Accept times of the publications in the frame, for the delivery latency.
    published_at_ms: Vec<i64>,
    started: Option<Instant>,
}

impl Batch {
    fn add(&mut self, event: &Event) {
        if !self.frame.is_empty() {
            self.frame.push(b'\n');
        }
        match event {
            Event::Publication(delivery) => {
                self.frame.extend_from_slice(&delivery.json);
                self.published_at_ms.push(delivery.publication.time_ms);
            }
            Event::Unsubscribed(unsubscribed) => {
                let push = serde_json::json!({"push": {"channel": &*unsubscribed.channel, "unsubscribe": {
                    "code": unsubscribed.code, "reason": unsubscribed.reason, "resubscribe": unsubscribed.resubscribe,
                }}});
                self.frame.extend_from_slice(push.to_string().as_bytes());
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    fn due(&self, window: Duration, now: Instant) -> bool {
        self.started.is_some_and(|started| now >= started + window)
    }
}

/// Hands the batch to the socket as one frame (the caller flushes what the socket did not
/// take at once).
fn write_batch(
    socket: &Socket,
    batch: &mut Batch,
    gateway: &Arc<crate::biz::gateway::Gateway<AnyBroker>>,
) -> Result<(), ()> {
    batch.started = None;
    if batch.is_empty() {
        return Ok(());
    }
    socket.wire.push(&batch.frame).map_err(|_| ())?;
    batch.frame.clear();
    let now = now_ms();
    let metrics = &gateway.metrics;
    for published_at in batch.published_at_ms.drain(..) {
        metrics.record_delivery(published_at, now);
    }
    Ok(())
}

/// A write that failed or did not finish: the client is gone or not reading.
fn stalled() -> Disconnect {
    Disconnect::new(Disconnect::SLOW_CONSUMER, "not reading")
}

/// A close frame's reason must fit in 123 bytes; cut at a character boundary.
fn close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn trim_newline(frame: &mut Vec<u8>) {
    if frame.last() == Some(&b'\n') {
        frame.pop();
    }
}

/// Tells the client why and when to come back, then closes with the same code.
async fn close(socket: &mut Socket, gateway: &Arc<crate::biz::gateway::Gateway<AnyBroker>>, disconnect: &Disconnect) {
    gateway
        .metrics
        .disconnects
        .get_or_create(&DisconnectLabels { code: disconnect.code })
        .inc();
    let mut advice = serde_json::json!({
        "code": disconnect.code,
        "reason": &*disconnect.reason,
        "reconnect": disconnect.reconnect(),
    });
    if disconnect.reconnect() {
        advice["retry_after_ms"] = (gateway.reconnect_delay().as_millis() as u64).into();
    }
    let push = serde_json::json!({"push": {"disconnect": advice}});
    let timeout = Duration::from_millis(gateway.settings.client.write_timeout_ms.min(1_000));
    socket.wire.reply(push.to_string().as_bytes());
    let frame = CloseFrame {
        code: disconnect.code.into(),
        reason: close_reason(&disconnect.reason).into(),
    };
    // Through tungstenite, so that it knows the closing handshake has begun.
    let _ = socket.frames.send(Message::Close(Some(frame))).await;
    let _ = socket.flush(timeout).await;
}
