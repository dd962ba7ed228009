//! Server-Sent Events for receive-only clients (`GET /realtime/sse`).
//!
//! Query: `channel` (repeatable, at least one), `token` (or `Authorization: Bearer`),
//! `batch_ms`. Each event's id holds the position of every requested channel, in request
//! order (`epoch:offset,epoch:offset`), so the browser's automatic `Last-Event-ID` on
//! reconnect (or a `last_event_id` query parameter) resumes every channel at once with the
//! same rule as WebSocket recovery: exactly what was missed, or an `unrecovered` event.

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::Transport;
use crate::{
    biz::{
        outbox::Event,
        protocol::{CommandError, ConnectRequest, Disconnect},
        publication::{Publication, StreamPosition},
        session::Session,
    },
    data::AnyBroker,
};

/// Channels one SSE request may name.
const MAX_CHANNELS: usize = 32;

struct Request {
    channels: Vec<String>,
    token: Option<String>,
    last_event_id: Option<String>,
    batch_ms: u64,
}

fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Request, String> {
    let mut request = Request {
        channels: Vec::new(),
        token: None,
        last_event_id: None,
        batch_ms: 0,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "channel" => request.channels.push(value.into_owned()),
            "token" => request.token = Some(value.into_owned()),
            "last_event_id" => request.last_event_id = Some(value.into_owned()),
            "batch_ms" => request.batch_ms = value.parse().map_err(|_| "batch_ms must be a number".to_owned())?,
            other => return Err(format!("unknown query parameter {other:?}")),
        }
    }
    if request.channels.is_empty() || request.channels.len() > MAX_CHANNELS {
        return Err(format!("name 1 to {MAX_CHANNELS} channels with `channel=`"));
    }
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        request.token = Some(bearer.trim().to_owned());
    }
    if let Some(id) = headers.get("last-event-id").and_then(|value| value.to_str().ok()) {
        request.last_event_id = Some(id.to_owned());
    }
    Ok(request)
}

/// `epoch:offset` per channel, in request order (empty for a channel without a position yet).
fn positions(last_event_id: Option<&str>, channels: usize) -> Result<Vec<Option<StreamPosition>>, String> {
    let Some(id) = last_event_id.filter(|id| !id.is_empty()) else {
        return Ok(vec![None; channels]);
    };
    let parse = |part: &str| -> Result<Option<StreamPosition>, ()> {
        if part.is_empty() {
            return Ok(None);
        }
        let (epoch, offset) = part.rsplit_once(':').ok_or(())?;
        let offset = offset.parse().map_err(|_| ())?;
        Ok(Some(StreamPosition {
            offset,
            epoch: epoch.into(),
        }))
    };
    let positions: Result<Vec<_>, ()> = id.split(',').map(parse).collect();
    match positions {
        Ok(positions) if positions.len() == channels => Ok(positions),
        _ => Err("Last-Event-ID does not match the requested channels".into()),
    }
}

fn position_id(epoch: &str, offset: u64) -> String {
    format!("{epoch}:{offset}")
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"message": message.into()}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn command_problem(error: &CommandError) -> Response {
    use crate::biz::protocol::ErrorCode;
    let status = match error.code {
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::TokenExpired | ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Unavailable | ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = serde_json::json!({"error": {"code": error.code as u16, "message": &error.message}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub async fn stream(
    State(transport): State<Transport>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let request = match parse(query.as_deref(), &headers) {
        Ok(request) => request,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let since = match positions(request.last_event_id.as_deref(), request.channels.len()) {
        Ok(since) => since,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let mut session = match Session::open(&transport.gateway, peer.ip()) {
        Ok(session) => session,
        Err(disconnect) => return problem(StatusCode::TOO_MANY_REQUESTS, disconnect.reason.to_string()),
    };
    let connect = ConnectRequest {
        token: request.token,
        batch_ms: request.batch_ms,
        ..ConnectRequest::default()
    };
    match session.connect(connect) {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return command_problem(&error),
        Err(disconnect) if disconnect.code == Disconnect::CONNECTION_LIMIT => {
            return problem(StatusCode::TOO_MANY_REQUESTS, disconnect.reason.to_string());
        }
        Err(disconnect) => return problem(StatusCode::UNAUTHORIZED, disconnect.reason.to_string()),
    }
    // Each opening event carries the positions as of that event (channels not reached yet
    // at the position they asked for), so a reconnect in the middle of the replay loses
    // nothing; an id-only block at the end gives even a fresh stream its positions.
    let mut ids: Vec<String> = since
        .iter()
        .map(|since| {
            since
                .as_ref()
                .map_or_else(String::new, |p| position_id(&p.epoch, p.offset))
        })
        .collect();
    let mut opening: Vec<Bytes> = Vec::new();
    for (index, (channel, since)) in request.channels.iter().zip(since).enumerate() {
        let subscribed = match session.subscribe(channel, since.clone()).await {
            Ok(subscribed) => subscribed,
            Err(error) => {
                session.close().await;
                return command_problem(&error);
            }
        };
        if since.is_some() && subscribed.recovered == Some(false) {
            ids[index] = position_id(&subscribed.epoch, subscribed.offset);
            let data =
                serde_json::json!({"channel": channel, "offset": subscribed.offset, "epoch": &*subscribed.epoch});
            opening.push(format!("id: {}\nevent: unrecovered\ndata: {data}\n\n", ids.join(",")).into());
        }
        for publication in &subscribed.publications {
            ids[index] = position_id(&subscribed.epoch, publication.offset);
            opening.push(recovered_event(&ids.join(","), channel, publication).into());
        }
        ids[index] = position_id(&subscribed.epoch, subscribed.offset);
    }
    opening.push(format!("id: {}\n\n", ids.join(",")).into());
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(pump(session, request.channels, opening, sender, transport));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(ReceiverStream::new(receiver)))
        .unwrap_or_else(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot build the response"))
}

fn recovered_event(id: &str, channel: &str, publication: &Publication) -> Vec<u8> {
    let mut out = format!("id: {id}\n").into_bytes();
    publication.write_sse_data(channel, &mut out);
    out.push(b'\n');
    out
}

fn event_id(session: &Session<AnyBroker>, channels: &[String]) -> String {
    channels
        .iter()
        .map(|channel| match session.position(channel) {
            Some(position) => format!("{}:{}", position.epoch, position.offset),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

type Sender = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Hands bytes to the response body; None when the client is gone or stopped reading (the
/// body's buffer stayed full for `timeout`).
async fn send(sender: &Sender, bytes: Bytes, timeout: Duration) -> Option<()> {
    match tokio::time::timeout(timeout, sender.send(Ok(bytes))).await {
        Ok(Ok(())) => Some(()),
        _ => None,
    }
}

/// Writes the stream until the client goes away or the server closes it.
async fn pump(
    mut session: Session<AnyBroker>,
    channels: Vec<String>,
    opening: Vec<Bytes>,
    sender: Sender,
    transport: Transport,
) {
    let disconnect = serve(&mut session, &channels, opening, &sender, &transport).await;
    Box::pin(session.close()).await;
    if let Some(disconnect) = disconnect {
        let data = serde_json::json!({
            "code": disconnect.code,
            "reason": &*disconnect.reason,
            "reconnect": disconnect.reconnect(),
        });
        // `retry:` tells the browser how long to wait before it reconnects.
        let retry = transport.gateway.reconnect_delay().as_millis();
        let event = format!("retry: {retry}\nevent: disconnect\ndata: {data}\n\n");
        let _ = send(&sender, Bytes::from(event), Duration::from_secs(1)).await;
    }
}

async fn serve(
    session: &mut Session<AnyBroker>,
    channels: &[String],
    opening: Vec<Bytes>,
    sender: &Sender,
    transport: &Transport,
) -> Option<Disconnect> {
    let gateway = session.gateway().clone();
    let ping_interval = Duration::from_millis(gateway.settings.client.ping_interval_ms);
    let write_timeout = Duration::from_millis(gateway.settings.client.write_timeout_ms);
    for event in opening {
        send(sender, event, write_timeout).await?;
    }
    let mut drained = Vec::new();
    loop {
        let expires_in = session
            .expires_at_ms()
            .map(|at| Duration::from_millis((at - switchyard_platform::clock::now_ms()).max(0) as u64));
        tokio::select! {
            _ = transport.shutdown.cancelled() => return Some(Disconnect::new(Disconnect::SHUTDOWN, "server shutting down")),
            _ = sender.closed() => return None,
            _ = tokio::time::sleep(expires_in.unwrap_or(Duration::MAX)), if expires_in.is_some() => {
                return Some(Disconnect::new(Disconnect::TOKEN_EXPIRED, "token expired: reconnect with a fresh token"));
            }
            _ = tokio::time::sleep(ping_interval) => {
                send(sender, Bytes::from_static(b": ping\n\n"), write_timeout).await?;
            }
            _ = session.outbox.ready() => {
                if let Some(disconnect) = session.outbox.drain(&mut drained) {
                    return Some(disconnect);
                }
                if !session.batch_window.is_zero() {
                    tokio::time::sleep(session.batch_window).await;
                    if let Some(disconnect) = session.outbox.drain(&mut drained) {
                        return Some(disconnect);
                    }
                }
                let mut frame = Vec::new();
                for item in drained.drain(..) {
                    match session.accept(item) {
                        Some(Event::Publication(delivery)) => {
                            frame.extend_from_slice(format!("id: {}\n", event_id(session, channels)).as_bytes());
                            frame.extend_from_slice(delivery.sse_data());
                            frame.push(b'\n');
                            gateway
                                .metrics
                                .record_delivery(delivery.publication.time_ms, switchyard_platform::clock::now_ms());
                        }
                        Some(Event::Unsubscribed(unsubscribed)) if unsubscribed.resubscribe => {
                            // SSE cannot resubscribe one channel: the client reconnects with
                            // its Last-Event-ID and recovers.
                            let reason = format!("{}: {}", unsubscribed.channel, unsubscribed.reason);
                            return Some(Disconnect::new(Disconnect::FORCE_RECONNECT, reason));
                        }
                        Some(Event::Unsubscribed(unsubscribed)) => {
                            let data = serde_json::json!({
                                "channel": &*unsubscribed.channel,
                                "code": unsubscribed.code,
                                "reason": unsubscribed.reason,
                            });
                            frame.extend_from_slice(format!("event: unsubscribe\ndata: {data}\n\n").as_bytes());
                        }
                        None => {}
                    }
                }
                if session.has_ended() {
                    Box::pin(session.release_ended()).await;
                }
                if !frame.is_empty() {
                    send(sender, Bytes::from(frame), write_timeout).await?;
                }
            }
        }
    }
}
