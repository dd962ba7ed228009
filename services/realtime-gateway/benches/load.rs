//! Load generator for realtime-gateway: memory per idle connection, and fan-out throughput
//! and latency beside a Socket.IO 4 server doing the same work.
//!
//! Servers run in their own processes (the gateway's release binary; `node
//! bench/socketio/server.js`); the generator is this process on one current-thread tokio
//! runtime. Client sockets are bound to 127.0.0.2–127.0.0.17 so 50,000 connections do not run
//! out of ephemeral ports. Latency is from the publisher's clock before it publishes to the
//! subscriber's clock when the frame is read (same machine, same clock), so it includes the
//! publish call, the fan-out, the socket and the generator's own queueing.
//!
//! Results go to `bench/results/realtime-gateway.json`. `REALTIME_BENCH_QUICK=1` runs a small
//! version (5,000 idle connections, one short round) and writes nothing.
//! Run it with `make bench-realtime` (installs the Socket.IO server's packages first).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::BufRead,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::{StreamExt, stream};
use serde_json::{Value, json};
use switchyard_api::realtime::v1::{
    PublishRequest, publish_request::Payload, realtime_service_client::RealtimeServiceClient,
};
use switchyard_platform::{auth::generate_api_key, testing::ServiceProcess};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
};

const IDLE_CONNECTIONS: usize = 50_000;
const SUBSCRIBERS: usize = 10_000;
const CHANNELS: usize = 100;
const PUBLICATIONS_PER_SECOND: u64 = 1_000;
const WARMUP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);
const ROUNDS: usize = 3;
/// Source addresses 127.0.0.2 … 127.0.0.(1 + SOURCES).
const SOURCES: usize = 16;
/// Connection attempts in flight while dialing.
const DIALING: usize = 256;

fn quick() -> bool {
    std::env::var_os("REALTIME_BENCH_QUICK").is_some()
}

/// `REALTIME_BENCH_GATEWAY_ONLY=1`: one full-size fan-out round against the gateway alone,
/// nothing written — for profiling the server (`perf record -p <pid>` while it runs).
fn gateway_only() -> bool {
    std::env::var_os("REALTIME_BENCH_GATEWAY_ONLY").is_some()
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// A minimal WebSocket client: the generator reads 100,000 frames a second on one thread,
/// so it reads once per readiness event and parses frames in place, where a general client
/// (tungstenite) reads until the socket runs dry — two syscalls a frame — and would take
/// CPU the servers under test need. Client frames are masked with a zero key, as RFC 6455
/// allows.
struct Ws {
    stream: TcpStream,
    buffer: Vec<u8>,
    start: usize,
}

/// Dials `addr` from the `index`-th source address and upgrades to WebSocket at `path`.
async fn dial(addr: SocketAddr, index: usize, path: &str) -> Ws {
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (index % SOURCES) as u8));
    for attempt in 0.. {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        match socket.connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true).unwrap();
                return Ws::handshake(stream, addr, path).await;
            }
            Err(error) if attempt < 20 => {
                eprintln!("connect {index}: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("connect {index}: {error}"),
        }
    }
    unreachable!()
}

impl Ws {
    async fn handshake(mut stream: TcpStream, addr: SocketAddr, path: &str) -> Ws {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut ws = Ws {
            stream,
            buffer: Vec::with_capacity(4096),
            start: 0,
        };
        loop {
            if let Some(end) = ws.buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                assert!(
                    ws.buffer.starts_with(b"HTTP/1.1 101"),
                    "{}",
                    String::from_utf8_lossy(&ws.buffer)
                );
                ws.start = end + 4;
                return ws;
            }
            assert!(ws.fill().await, "closed during the handshake");
        }
    }

    /// Reads what the socket has; false once it is closed.
    async fn fill(&mut self) -> bool {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 16 * 1024 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        loop {
            if self.stream.readable().await.is_err() {
                return false;
            }
            self.buffer.reserve(4096);
            match self.stream.try_read_buf(&mut self.buffer) {
                Ok(0) => return false,
                Ok(_) => return true,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return false,
            }
        }
    }

    /// The next complete frame in the buffer: its opcode and payload range.
    fn frame(&mut self) -> Option<(u8, std::ops::Range<usize>)> {
        let bytes = &self.buffer[self.start..];
        if bytes.len() < 2 {
            return None;
        }
        let (length, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            126 | 127 => return None,
            length => (usize::from(length), 2),
        };
        if bytes.len() < header + length {
            return None;
        }
        let payload = self.start + header..self.start + header + length;
        self.start = payload.end;
        Some((bytes[0] & 0x0f, payload))
    }

    /// The next text message; None when the connection closes.
    async fn next_text(&mut self) -> Option<String> {
        loop {
            while let Some((opcode, payload)) = self.frame() {
                match opcode {
                    0x1 => return Some(String::from_utf8_lossy(&self.buffer[payload]).into_owned()),
                    0x8 => return None,
                    0x9 => {
                        let data = self.buffer[payload].to_vec();
                        self.send(0xa, &data).await;
                    }
                    _ => {}
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn send_text(&mut self, text: &str) {
        self.send(0x1, text.as_bytes()).await;
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.push(0x80 | opcode);
        match payload.len() {
            length @ 0..=125 => frame.push(0x80 | length as u8),
            length @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(length as u16).to_be_bytes());
            }
            length => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(length as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        let _ = self.stream.write_all(&frame).await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Gateway,
    SocketIo,
}

/// A subscriber of `channel`, connected and subscribed.
async fn subscriber(server: Server, addr: SocketAddr, index: usize, channel: &str) -> Ws {
    match server {
        Server::Gateway => {
            let mut ws = dial(addr, index, "/realtime/websocket").await;
            let commands = format!(
                "{}\n{}",
                json!({"id": 1, "connect": {}}),
                json!({"id": 2, "subscribe": {"channel": channel}})
            );
            ws.send_text(&commands).await;
            while let Some(text) = ws.next_text().await {
                if text.contains("\"error\"") {
                    panic!("subscribe {index}: {text}");
                }
                if text.contains("\"id\":2") {
                    return ws;
                }
            }
            panic!("connection {index} closed while subscribing");
        }
        Server::SocketIo => {
            let mut ws = dial(addr, index, "/socket.io/?EIO=4&transport=websocket").await;
            expect_prefix(&mut ws, "0").await;
            ws.send_text("40").await;
            expect_prefix(&mut ws, "40").await;
            ws.send_text(&format!("42{}", json!(["subscribe", channel]))).await;
            ws
        }
    }
}

async fn expect_prefix(ws: &mut Ws, prefix: &str) {
    while let Some(text) = ws.next_text().await {
        if text.starts_with(prefix) {
            return;
        }
        if text == "2" {
            ws.send_text("3").await;
        }
    }
    panic!("closed before {prefix:?}");
}

/// What subscribers saw while `measuring`.
#[derive(Default)]
struct Seen {
    measuring: AtomicBool,
    received: AtomicU64,
}

thread_local! {
    /// Latencies in microseconds. Every reader runs on the generator's one thread, so a
    /// thread-local needs no lock on this per-message path.
    static LATENCIES_US: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The publisher's send time, `"t":<micros>`, in a publication.
fn sent_at(text: &str) -> Option<u64> {
    let start = text.find("\"t\":")? + 4;
    let digits: &str = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Reads everything a subscriber receives, answering pings, and records publications.
fn read(server: Server, mut ws: Ws, seen: Arc<Seen>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(text) = ws.next_text().await {
            let now = now_micros();
            let record = |line: &str| {
                if !seen.measuring.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(sent) = sent_at(line) {
                    seen.received.fetch_add(1, Ordering::Relaxed);
                    let latency = now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
                    LATENCIES_US.with_borrow_mut(|latencies| latencies.push(latency));
                }
            };
            match server {
                Server::Gateway => {
                    for line in text.split('\n') {
                        if line.starts_with("{\"ping\"") {
                            ws.send_text("{\"pong\":{}}").await;
                            continue;
                        }
                        record(line);
                    }
                }
                Server::SocketIo => {
                    if text == "2" {
                        ws.send_text("3").await;
                    } else {
                        record(&text);
                    }
                }
            }
        }
    })
}

fn payload(sequence: u64) -> Value {
    json!({"t": now_micros(), "productId": format!("sku-{sequence}"), "price": {"currency": "BDT", "minorUnits": 129_900}, "inStock": true})
}

/// Publishes PUBLICATIONS_PER_SECOND into the channels in turn until `stop`; returns how many.
async fn publish(
    server: Server,
    target: PublishTarget,
    stop: Arc<AtomicBool>,
    counted: Arc<AtomicU64>,
    seen: Arc<Seen>,
) {
    let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / PUBLICATIONS_PER_SECOND));
    let mut sequence = 0u64;
    match (server, target) {
        (Server::Gateway, PublishTarget::Grpc(client)) => {
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                sequence += 1;
                let channel = format!("product:{}", sequence % CHANNELS as u64);
                let data: pbjson_types::Value = serde_json::from_value(payload(sequence)).unwrap();
                let mut client = client.clone();
                if seen.measuring.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::spawn(async move {
                    let request = PublishRequest {
                        channel,
                        payload: Some(Payload::Data(data)),
                        ..Default::default()
                    };
                    client.publish(request).await.unwrap();
                });
            }
        }
        (Server::SocketIo, PublishTarget::SocketIo(mut ws)) => {
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                sequence += 1;
                let channel = format!("product:{}", sequence % CHANNELS as u64);
                if seen.measuring.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                let event = json!(["publish", {"channel": channel, "data": payload(sequence)}]);
                ws.send_text(&format!("42{event}")).await;
            }
        }
        _ => unreachable!(),
    }
}

enum PublishTarget {
    Grpc(GatewayApi),
    SocketIo(Ws),
}

type GatewayApi = RealtimeServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

static ADMIN_HEADER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn bearer(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let header = ADMIN_HEADER.get().unwrap();
    request.metadata_mut().insert("authorization", header.parse().unwrap());
    Ok(request)
}

async fn connect_all(server: Server, addr: SocketAddr, count: usize, channels: usize) -> Vec<Ws> {
    stream::iter(0..count)
        .map(|index| async move { subscriber(server, addr, index, &format!("product:{}", index % channels)).await })
        .buffer_unordered(DIALING)
        .collect()
        .await
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

/// One fan-out round against `server` (process `pid`): SUBSCRIBERS over CHANNELS,
/// PUBLICATIONS_PER_SECOND.
async fn fan_out(server: Server, addr: SocketAddr, pid: u32, publisher: impl Fn() -> PublishTarget) -> Value {
    let subscribers = if quick() && !gateway_only() {
        SUBSCRIBERS / 5
    } else {
        SUBSCRIBERS
    };
    let connected_at = Instant::now();
    let sockets = connect_all(server, addr, subscribers, CHANNELS).await;
    let connect_seconds = connected_at.elapsed().as_secs_f64();
    let seen = Arc::new(Seen::default());
    let readers: Vec<_> = sockets.into_iter().map(|ws| read(server, ws, seen.clone())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publishing = tokio::spawn(publish(
        server,
        publisher(),
        stop.clone(),
        published.clone(),
        seen.clone(),
    ));
    tokio::time::sleep(if quick() { Duration::from_secs(1) } else { WARMUP }).await;
    let server_before = server_latency_buckets(server, addr).await;
    let cpu_before = (cpu_ticks(pid), cpu_ticks(std::process::id()));
    seen.measuring.store(true, Ordering::Relaxed);
    let window = if quick() { Duration::from_secs(3) } else { MEASURE };
    tokio::time::sleep(window).await;
    seen.measuring.store(false, Ordering::Relaxed);
    let cpu_after = (cpu_ticks(pid), cpu_ticks(std::process::id()));
    let server_side = server_latency(&server_before, &server_latency_buckets(server, addr).await);
    stop.store(true, Ordering::Relaxed);
    publishing.await.unwrap();
    // Let publications sent inside the window arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for reader in readers {
        reader.abort();
    }
    let received = seen.received.load(Ordering::Relaxed);
    let mut latencies = LATENCIES_US.with_borrow_mut(std::mem::take);
    latencies.sort_unstable();
    let published = published.load(Ordering::Relaxed);
    let expected = published * (subscribers / CHANNELS) as u64;
    let cores = |before: u64, after: u64| (after - before) as f64 / TICKS_PER_SECOND / window.as_secs_f64();
    let server_cores = cores(cpu_before.0, cpu_after.0);
    json!({
        "subscribers": subscribers,
        "channels": CHANNELS,
        "publications_per_second": published as f64 / window.as_secs_f64(),
        "delivered_per_second": (received as f64 / window.as_secs_f64()).round(),
        "delivered_of_expected": (received as f64 / expected.max(1) as f64 * 1000.0).round() / 1000.0,
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
        "connect_seconds": (connect_seconds * 10.0).round() / 10.0,
        "server_side": server_side,
        "server_cpu_cores": (server_cores * 100.0).round() / 100.0,
        "delivered_per_server_cpu_second": (received as f64 / window.as_secs_f64() / server_cores.max(0.01)).round(),
        "generator_cpu_cores": (cores(cpu_before.1, cpu_after.1) * 100.0).round() / 100.0,
    })
}

/// The gateway's own delivery-latency histogram (publication accepted → frame written to the
/// socket), as (upper bound in seconds, cumulative count); empty for Socket.IO, which has none.
async fn server_latency_buckets(server: Server, addr: SocketAddr) -> Vec<(f64, f64)> {
    if !matches!(server, Server::Gateway) {
        return Vec::new();
    }
    let text = switchyard_platform::testing::get(&format!("http://{addr}/metrics"))
        .await
        .text();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("switchyard_realtime_delivery_latency_seconds_bucket{le=\"")?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

/// What the server itself took during the window, from two readings of its histogram: the
/// share written within 50 ms of acceptance, and the bucket bounds p50 and p99 fall under.
/// This leaves out the generator, whose one thread shares the machine with the server.
fn server_latency(before: &[(f64, f64)], after: &[(f64, f64)]) -> Value {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .zip(before)
        .map(|((bound, after), (_, before))| (*bound, after - before))
        .collect();
    let Some(&(_, total)) = counts.last().filter(|(_, total)| *total > 0.0) else {
        return Value::Null;
    };
    let at_most = |fraction: f64| {
        counts
            .iter()
            .find(|(_, count)| *count >= total * fraction)
            .map(|(bound, _)| bound * 1000.0)
    };
    let within_50ms = counts
        .iter()
        .find(|(bound, _)| (*bound - 0.05).abs() < 1e-9)
        .map(|(_, count)| count / total);
    json!({
        "written_within_50ms": within_50ms.map(|share| (share * 1000.0).round() / 1000.0),
        "p50_ms_at_most": at_most(0.50),
        "p99_ms_at_most": at_most(0.99),
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Connected, subscribed clients (IDLE_CONNECTIONS, or as many as the descriptor limit lets
/// each process hold); the gateway's resident memory before and after.
async fn idle(addr: SocketAddr, pid: u32, descriptors: u64) -> Value {
    let possible = descriptors.saturating_sub(1_500) as usize;
    let count = if quick() { 5_000 } else { IDLE_CONNECTIONS.min(possible) };
    // A few connections first, so one-time allocations (buffers, pools) are in the baseline.
    let warm = connect_all(Server::Gateway, addr, 100, 1_000).await;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let sockets = connect_all(Server::Gateway, addr, count, 1_000).await;
    let connect_seconds = started.elapsed().as_secs_f64();
    let seen = Arc::new(Seen::default());
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|ws| read(Server::Gateway, ws, seen.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / count as f64;
    println!(
        "idle: {count} connections, RSS {before} KiB -> {after} KiB, {:.0} bytes ({:.2} KiB) per connection, connected in {connect_seconds:.1}s",
        per_connection,
        per_connection / 1024.0
    );
    for reader in readers {
        reader.abort();
    }
    json!({
        "connections": count,
        "subscriptions_per_connection": 1,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_connection": per_connection.round(),
        "kib_per_connection": (per_connection / 1024.0 * 100.0).round() / 100.0,
        "connect_seconds": (connect_seconds * 10.0).round() / 10.0,
        "target_kib": 10,
        "target_met": per_connection / 1024.0 <= 10.0,
        "target_connections": IDLE_CONNECTIONS,
        "descriptor_limit": descriptors,
        "note": if count < IDLE_CONNECTIONS {
            format!("this machine caps every process at {descriptors} open files (RLIMIT_NOFILE hard limit; raising it needs CAP_SYS_RESOURCE, which the sandbox does not grant), so one node cannot hold {IDLE_CONNECTIONS} sockets here; memory was measured at {count}")
        } else {
            String::new()
        },
    })
}

fn gateway_process(dir: &std::path::Path, admin: &switchyard_platform::auth::ApiKeyRecord) -> ServiceProcess {
    let mut settings = realtime_gateway::conf::defaults();
    settings.grpc.host = [127, 0, 0, 1].into();
    settings.http.host = [0, 0, 0, 0].into();
    settings.grpc.port = 0;
    settings.http.port = 0;
    settings.data_dir = dir.to_path_buf();
    settings.auth.api_keys = vec![admin.clone()];
    settings.limits.per_principal_rps = 1_000_000;
    settings.limits.max_concurrent_requests = 100_000;
    ServiceProcess::spawn(env!("CARGO_BIN_EXE_realtime-gateway"), &settings, dir)
}

fn socket_address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// `node bench/socketio/server.js` with its packages from $SOCKETIO_NODE_MODULES.
fn socketio_process() -> (std::process::Child, SocketAddr) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/socketio/server.js");
    let modules = std::env::var("SOCKETIO_NODE_MODULES")
        .expect("SOCKETIO_NODE_MODULES is set by scripts/bench-realtime.sh (make bench-realtime)");
    let mut child = std::process::Command::new("node")
        .arg(script)
        .env("NODE_PATH", modules)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node is installed");
    let stdout = child.stdout.take().unwrap();
    let line = std::io::BufReader::new(stdout).lines().next().unwrap().unwrap();
    let port = serde_json::from_str::<Value>(&line).unwrap()["port"].as_u64().unwrap() as u16;
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Linux reports process CPU time in units of USER_HZ, which is 100 on every architecture
/// the bench runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Waits until every process in `pids` has gone quiet (under 10% of a core for half a second),
/// so a round never runs while the other server still drains the previous one.
async fn settle(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Vec<u64> = pids.iter().map(|pid| cpu_ticks(*pid)).collect();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now: Vec<u64> = pids.iter().map(|pid| cpu_ticks(*pid)).collect();
        let busy = now.iter().zip(&last).any(|(now, before)| now - before > 5);
        last = now;
        if !busy {
            return;
        }
    }
    eprintln!("servers still busy after 60 s; measuring anyway");
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn summary(rounds: &[Value]) -> Value {
    let field = |name: &str| {
        median(
            &rounds
                .iter()
                .map(|round| round[name].as_f64().unwrap())
                .collect::<Vec<_>>(),
        )
    };
    json!({
        "delivered_per_second": field("delivered_per_second"),
        "p50_ms": field("p50_ms"),
        "p99_ms": field("p99_ms"),
        "delivered_of_expected": field("delivered_of_expected"),
        "server_cpu_cores": field("server_cpu_cores"),
        "delivered_per_server_cpu_second": field("delivered_per_server_cpu_second"),
        "rounds": rounds,
    })
}

fn main() {
    // 50,000 connections need as many descriptors on each side; the server inherits this.
    let wanted = IDLE_CONNECTIONS as u64 + 10_000;
    let descriptors = match rlimit::Resource::NOFILE.set(wanted, wanted) {
        Ok(()) => wanted,
        Err(error) => {
            let soft = rlimit::increase_nofile_limit(wanted).unwrap_or(0);
            eprintln!("cannot raise the descriptor limit to {wanted} ({error}); each process may hold {soft}");
            soft
        }
    };
    let admin = generate_api_key("default", &["admin"]);
    ADMIN_HEADER.set(format!("Bearer {}", admin.plaintext)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let idle_figures = if gateway_only() {
        Value::Null
    } else {
        let dir = tempfile::tempdir().unwrap();
        let mut idle_server = gateway_process(dir.path(), &admin.record);
        let address = socket_address(&idle_server.http_url);
        let figures = runtime.block_on(idle(address, idle_server.child.id(), descriptors));
        idle_server.kill();
        figures
    };

    let dir = tempfile::tempdir().unwrap();
    let mut gateway = gateway_process(dir.path(), &admin.record);
    let gateway_addr = socket_address(&gateway.http_url);
    let api: GatewayApi = runtime.block_on(async {
        let grpc = tonic::transport::Endpoint::from_shared(gateway.grpc_url.clone())
            .unwrap()
            .connect_lazy();
        RealtimeServiceClient::with_interceptor(grpc, bearer as fn(_) -> _)
    });
    let (mut socketio, socketio_addr) = socketio_process();

    let rounds = if quick() || gateway_only() { 1 } else { ROUNDS };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            settle(&[gateway.child.id(), socketio.id()]).await;
            let figures = fan_out(Server::Gateway, gateway_addr, gateway.child.id(), || {
                PublishTarget::Grpc(api.clone())
            })
            .await;
            println!("round {round} realtime-gateway: {figures}");
            ours.push(figures);
            if gateway_only() {
                return;
            }
            settle(&[gateway.child.id(), socketio.id()]).await;
            let publisher = subscriber(Server::SocketIo, socketio_addr, SUBSCRIBERS + 1, "publisher").await;
            let publisher = std::cell::Cell::new(Some(publisher));
            let figures = fan_out(Server::SocketIo, socketio_addr, socketio.id(), || {
                PublishTarget::SocketIo(publisher.take().unwrap())
            })
            .await;
            println!("round {round} socket.io: {figures}");
            theirs.push(figures);
        }
    });
    gateway.kill();
    let _ = socketio.kill();
    let _ = socketio.wait();

    if gateway_only() {
        return;
    }
    let (ours, theirs) = (summary(&ours), summary(&theirs));
    let ratio = |field: &str| ours[field].as_f64().unwrap() / theirs[field].as_f64().unwrap().max(1.0);
    let throughput_ratio = ratio("delivered_per_second");
    let efficiency_ratio = ratio("delivered_per_server_cpu_second");
    println!(
        "fan-out: realtime-gateway {} delivered/s p50 {} ms p99 {} ms | socket.io {} delivered/s p50 {} ms p99 {} ms | ratio {throughput_ratio:.2}, per server CPU-second {efficiency_ratio:.2}",
        ours["delivered_per_second"],
        ours["p50_ms"],
        ours["p99_ms"],
        theirs["delivered_per_second"],
        theirs["p50_ms"],
        theirs["p99_ms"]
    );
    if quick() {
        return;
    }
    let document = json!({
        "machine": switchyard_platform::testing::machine(),
        "method": format!(
            "servers in their own processes on loopback (realtime-gateway release binary, in-memory broker; Socket.IO 4.8.4 on node {}); \
             the generator is one current-thread tokio runtime in another process, clients bound to {SOURCES} source addresses; \
             fan-out: {SUBSCRIBERS} subscribers over {CHANNELS} channels, {PUBLICATIONS_PER_SECOND} publications/s (gateway: gRPC Publish; \
             Socket.IO: a publisher socket emitting to the room), {} s warm-up then {} s measured, {ROUNDS} rounds alternating, medians; \
             latency is publisher clock before publishing → subscriber clock when the frame is read; \
             server_side (gateway rounds) is the gateway's own histogram, publication accepted → frame written, read before and after the window; \
             server_cpu_cores is the server process's user+system CPU time over the window (/proc/<pid>/stat), and delivered_per_server_cpu_second \
             the messages delivered per second of it: the capacity figure when the offered load is the same for both servers",
            node_version(), WARMUP.as_secs(), MEASURE.as_secs()
        ),
        "idle_connections": idle_figures,
        "fan_out": {
            "realtime_gateway": ours,
            "socket_io": theirs,
            "throughput_ratio": (throughput_ratio * 100.0).round() / 100.0,
            "delivered_per_server_cpu_second_ratio": (efficiency_ratio * 100.0).round() / 100.0,
            "target": "≥ 100,000 delivered/s with p99 < 50 ms; ≥ 5× Socket.IO's throughput at a lower p99",
        },
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/realtime-gateway.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
}

fn node_version() -> String {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}
