//! presence-service under gateway-shaped load, on a Redis of its own (so its command counts
//! and CPU are the bench's alone), with the generator in the same process on the same cores:
//!
//! - churn: eight nodes (12,500 connections each) stream batches of opens, page changes and
//!   clean closes over 100,000 tracked connections: events/s sustained and Redis commands
//!   per event;
//! - idle: the same 100,000 connections doing nothing for a while (their nodes renewing
//!   their leases, as they go on doing for the rest of the run): Redis commands/s and Redis
//!   CPU, beside a baseline that keeps presence the way Centrifugo's Redis engine does (a
//!   hash field and an expiry-zset entry per connection, each connection refreshing every
//!   25 s) for the same connections, measured the same way in the same run;
//! - `BatchGetPresence` of 1,000 users with 100,000 online (the default view, then FULL),
//!   and `GetChannelPresenceStats` on a channel of 50,000 members: p50/p99 over gRPC, on a
//!   connection in use (its first calls, which connect and grow buffers, are not counted);
//! - a node that dies with 1,000 users: the time until a watcher has every leave, against
//!   lease TTL + grace + 1 s.
//!
//! Results go to `bench/results/presence-service.json`. `PRESENCE_BENCH_QUICK=1` runs a
//! smaller version (10,000 connections).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use serde_json::json;
use switchyard_api::presence::v1::{
    self as pb, connection_event::Kind, presence_event::Kind as EventKind,
    presence_service_client::PresenceServiceClient,
};
use switchyard_platform::{
    Running, Shutdown,
    auth::{KEY_SYNC_SCOPE, generate_api_key},
    testing::{self, PrivateRedis},
};
use tokio::sync::mpsc;
use tonic::{Request, Streaming};

const NODES: usize = 8;
/// Calls a latency measurement makes before it starts counting: a client's first calls
/// open the connection and grow HTTP/2 windows and buffers, which a service's long-lived
/// clients did long ago.
const WARM_UP_CALLS: usize = 20;
const BATCH: usize = 1_000;
const LEASE_TTL_MS: u32 = 15_000;
const GRACE_MS: u64 = 1_000;

struct Scale {
    connections: usize,
    channel_members: usize,
    churn: Duration,
    idle: Duration,
}

fn scale() -> Scale {
    if std::env::var("PRESENCE_BENCH_QUICK").is_ok() {
        return Scale {
            connections: 10_000,
            channel_members: 5_000,
            churn: Duration::from_secs(3),
            idle: Duration::from_secs(5),
        };
    }
    Scale {
        connections: 100_000,
        channel_members: 50_000,
        churn: Duration::from_secs(10),
        idle: Duration::from_secs(25),
    }
}

/// Commands the server executed so far (every command, those inside scripts included).
async fn redis_commands(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    info.lines()
        .filter_map(|line| line.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next())
        .filter_map(|calls| calls.parse::<u64>().ok())
        .sum()
}

/// CPU seconds the Redis server used so far.
fn redis_cpu_seconds(redis: &PrivateRedis) -> f64 {
    redis.pid().map_or(0.0, process_cpu_seconds)
}

fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

struct Service {
    running: Running,
    shutdown: Shutdown,
    node_key: String,
    viewer: String,
    _dir: tempfile::TempDir,
}

async fn start_service(redis_url: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = testing::local(presence_service::conf::defaults(), dir.path());
    settings.redis_url = Some(redis_url.to_owned());
    settings.telemetry.log_filter = "error".to_owned();
    settings.limits.per_principal_rps = 1_000_000;
    settings.service.offline_grace_ms = GRACE_MS;
    settings.service.max_batch_events = BATCH * 2;
    let mut node = generate_api_key("switchyard-services", &[]);
    node.record.scopes = vec![KEY_SYNC_SCOPE.to_owned()];
    settings.auth.api_keys.push(node.record);
    let viewer = generate_api_key("bench", &["viewer"]);
    settings.auth.api_keys.push(viewer.record);
    let shutdown = Shutdown::new();
    let running = presence_service::start(settings, shutdown.clone()).await.unwrap();
    Service {
        running,
        shutdown,
        node_key: node.plaintext,
        viewer: viewer.plaintext,
        _dir: dir,
    }
}

fn authed<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// One gateway node's stream.
struct Node {
    name: String,
    sender: Option<mpsc::Sender<pb::NodeReport>>,
    acks: Streaming<pb::NodeAck>,
    batch: u64,
}

impl Node {
    async fn connect(service: &Service, name: &str) -> Node {
        let (sender, receiver) = mpsc::channel(4);
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let client = PresenceServiceClient::new(testing::grpc_channel(&service.running));
        let acks = client
            .max_decoding_message_size(64 << 20)
            .report_connections(authed(&service.node_key, stream))
            .await
            .unwrap()
            .into_inner();
        Node {
            name: name.to_owned(),
            sender: Some(sender),
            acks,
            batch: 0,
        }
    }

    async fn send(&mut self, events: Vec<pb::ConnectionEvent>) {
        self.batch += 1;
        let report = pb::NodeReport {
            node: self.name.clone(),
            lease_ttl_ms: LEASE_TTL_MS,
            batch: self.batch,
            events,
        };
        self.sender.as_ref().unwrap().send(report).await.unwrap();
        let ack = self.acks.message().await.unwrap().unwrap();
        assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
    }
}

fn event(user: usize, connection: &str, kind: Kind) -> pb::ConnectionEvent {
    pb::ConnectionEvent {
        tenant: "bench".to_owned(),
        user_id: format!("u{user:06}"),
        connection_id: connection.to_owned(),
        time: None,
        kind: Some(kind),
    }
}

fn opened(user: usize, connection: &str, channels: Vec<String>) -> pb::ConnectionEvent {
    let device = pb::Device {
        id: format!("d{user}"),
        r#type: "phone".to_owned(),
        ..Default::default()
    };
    let metas = pb::Metas {
        current_page: Some(format!("/product/sku-{}", user % 500)),
        ..Default::default()
    };
    event(
        user,
        connection,
        Kind::Opened(pb::ConnectionOpened {
            device: Some(device),
            metas: Some(metas),
            channels,
        }),
    )
}

/// Opens `count` connections (one per user) spread over the nodes; the first
/// `channel_members` (every other user) also join `room:big`. Returns the nodes and events/s.
async fn fill(nodes: Vec<Node>, count: usize, channel_members: usize) -> (Vec<Node>, f64) {
    let started = Instant::now();
    let per_node = count / nodes.len();
    let tasks: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(index, mut node)| {
            tokio::spawn(async move {
                let users: Vec<usize> = (index * per_node..(index + 1) * per_node).collect();
                for chunk in users.chunks(BATCH) {
                    let events = chunk
                        .iter()
                        .map(|user| {
                            let channels = if is_member(*user, count, channel_members) {
                                vec!["room:big".to_owned()]
                            } else {
                                Vec::new()
                            };
                            opened(*user, &format!("{}.{user}", node.name), channels)
                        })
                        .collect();
                    node.send(events).await;
                }
                node
            })
        })
        .collect();
    let nodes = join(tasks).await;
    (nodes, count as f64 / started.elapsed().as_secs_f64())
}

/// Every `count / members`-th user is a member of `room:big` (spread over the nodes).
fn is_member(user: usize, count: usize, members: usize) -> bool {
    user.is_multiple_of((count / members.max(1)).max(1))
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Node>>) -> Vec<Node> {
    let mut nodes = Vec::new();
    for task in tasks {
        nodes.push(task.await.unwrap());
    }
    nodes
}

/// For `duration`: each node sends batches of a third clean closes of its oldest
/// connections, a third opens of new ones (new users), a third page changes. Returns the
/// nodes and the events sent.
async fn churn(nodes: Vec<Node>, count: usize, members: usize, duration: Duration) -> (Vec<Node>, u64) {
    let per_node = count / nodes.len();
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(index, mut node)| {
            tokio::spawn(async move {
                // This node's connections, oldest first: (user, connection id).
                // Channel members stay connected: they are what the stats query counts.
                let mut live: std::collections::VecDeque<usize> = (index * per_node..(index + 1) * per_node)
                    .filter(|user| !is_member(*user, count, members))
                    .collect();
                let mut next_user = 1_000_000 * (index + 1);
                let mut sent = 0u64;
                let mut round = 0usize;
                while Instant::now() < deadline {
                    round += 1;
                    let mut events = Vec::with_capacity(BATCH);
                    for _ in 0..BATCH / 3 {
                        let user = live.pop_front().unwrap();
                        events.push(event(
                            user,
                            &format!("{}.{user}", node.name),
                            Kind::Closed(pb::ConnectionClosed { clean: true }),
                        ));
                        events.push(opened(next_user, &format!("{}.{next_user}", node.name), Vec::new()));
                        live.push_back(next_user);
                        next_user += 1;
                        let moved = live[(round * 7919 + events.len()) % live.len()];
                        let page = pb::Metas {
                            current_page: Some(format!("/product/sku-{}", (moved + round) % 500)),
                            ..Default::default()
                        };
                        events.push(event(moved, &format!("{}.{moved}", node.name), Kind::Updated(page)));
                    }
                    sent += events.len() as u64;
                    node.send(events).await;
                }
                (node, sent)
            })
        })
        .collect();
    let mut nodes = Vec::new();
    let mut sent = 0;
    for task in tasks {
        let (node, count) = task.await.unwrap();
        nodes.push(node);
        sent += count;
    }
    (nodes, sent)
}

/// Keeps the nodes' leases renewed as the gateway does (every TTL / 3) until `stop`, as
/// the gateway would for the rest of the run.
fn keep_renewing(nodes: Vec<Node>, stop: tokio_util::sync::CancellationToken) -> Vec<tokio::task::JoinHandle<Node>> {
    let every = Duration::from_millis(u64::from(LEASE_TTL_MS) / 3);
    nodes
        .into_iter()
        .map(|mut node| {
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    node.send(Vec::new()).await;
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        () = stop.cancelled() => return node,
                    }
                }
            })
        })
        .collect()
}

/// Centrifugo's Redis presence, as its engine keeps it: per channel a hash (client → info)
/// and a zset (client → expiry), both refreshed by each connection every 25 s with one
/// script (HSET, ZADD, EXPIRE, EXPIRE). Runs `connections` clients (1,000 per channel) for
/// `duration` and returns how many refreshes ran.
async fn centrifugo_style(redis_url: &str, connections: usize, duration: Duration) -> u64 {
    const REFRESH: Duration = Duration::from_secs(25);
    let script = redis::Script::new(
        r"redis.call('hset', KEYS[1], ARGV[2], ARGV[3])
          redis.call('zadd', KEYS[2], ARGV[4], ARGV[2])
          redis.call('expire', KEYS[1], ARGV[1])
          redis.call('expire', KEYS[2], ARGV[1])
          return 1",
    );
    let client = redis::Client::open(redis_url).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    // Loads the script (pipelines only call it by its hash).
    let _: i64 = script
        .key("cf:presence:hash:warmup")
        .key("cf:presence:zset:warmup")
        .arg(1)
        .arg("warmup")
        .arg("{}")
        .arg(0)
        .invoke_async(&mut conn)
        .await
        .unwrap();
    let started = Instant::now();
    let mut refreshes = 0u64;
    // Each connection's refresh falls at its own offset within the 25 s period.
    let tick = Duration::from_millis(10);
    let per_tick = (connections as f64 * tick.as_secs_f64() / REFRESH.as_secs_f64()).ceil() as usize;
    let mut next = 0usize;
    while started.elapsed() < duration {
        let mut pipe = redis::pipe();
        for _ in 0..per_tick {
            let client_id = next % connections;
            next += 1;
            let channel = client_id / 1_000;
            let expires = (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                + 2 * REFRESH)
                .as_secs();
            pipe.invoke_script(
                script
                    .key(format!("cf:presence:hash:room:{channel}"))
                    .key(format!("cf:presence:zset:room:{channel}"))
                    .arg(60)
                    .arg(format!("client-{client_id}"))
                    .arg(r#"{"user":"u","client":"c","conn_info":{}}"#)
                    .arg(expires),
            );
        }
        let mut conn = conn.clone();
        let _: Vec<i64> = pipe.query_async(&mut conn).await.unwrap();
        refreshes += per_tick as u64;
        tokio::time::sleep(tick).await;
    }
    refreshes
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    (samples[index] * 1000.0).round() / 1000.0
}

async fn batch_get_latency(service: &Service, users: usize, calls: usize, view: pb::PresenceView) -> (f64, f64) {
    let mut client =
        PresenceServiceClient::new(testing::grpc_channel(&service.running)).max_decoding_message_size(64 << 20);
    let mut samples = Vec::with_capacity(calls);
    for call in 0..WARM_UP_CALLS + calls {
        let ids: Vec<String> = (0..1_000)
            .map(|n| format!("u{:06}", 2 * ((call * 7919 + n * 97) % users)))
            .collect();
        let started = Instant::now();
        let found = client
            .batch_get_presence(authed(
                &service.viewer,
                pb::BatchGetPresenceRequest {
                    user_ids: ids,
                    view: view.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if call >= WARM_UP_CALLS {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        assert_eq!(found.presences.len(), 1_000);
    }
    (percentile(&mut samples, 0.5), percentile(&mut samples, 0.99))
}

async fn stats_latency(service: &Service, expected_users: usize, calls: usize) -> (f64, f64) {
    let mut client = PresenceServiceClient::new(testing::grpc_channel(&service.running));
    let mut samples = Vec::with_capacity(calls);
    for call in 0..WARM_UP_CALLS + calls {
        let started = Instant::now();
        let stats = client
            .get_channel_presence_stats(authed(
                &service.viewer,
                pb::GetChannelPresenceStatsRequest {
                    channel: "room:big".to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if call >= WARM_UP_CALLS {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        assert_eq!(stats.users as usize, expected_users);
    }
    (percentile(&mut samples, 0.5), percentile(&mut samples, 0.99))
}

/// A node with 1,000 users dies; returns ms from its last renewal until a watcher has every
/// one of their leaves.
async fn node_death(service: &Service, lease_ttl_ms: u32) -> f64 {
    let mut node = Node::connect(service, "dying").await;
    let users: Vec<usize> = (900_000..901_000).collect();
    let mut client =
        PresenceServiceClient::new(testing::grpc_channel(&service.running)).max_decoding_message_size(64 << 20);
    let mut watch = client
        .watch_presence(authed(
            &service.viewer,
            pb::WatchPresenceRequest {
                user_ids: users.iter().map(|user| format!("u{user:06}")).collect(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        watch.message().await.unwrap().unwrap().kind,
        Some(EventKind::Snapshot(_))
    ));
    // The node's lease for this measurement is short; the bound scales with it.
    node.batch += 1;
    let report = pb::NodeReport {
        node: node.name.clone(),
        lease_ttl_ms,
        batch: node.batch,
        events: users
            .iter()
            .map(|user| opened(*user, &format!("dying.{user}"), Vec::new()))
            .collect(),
    };
    node.sender.as_ref().unwrap().send(report).await.unwrap();
    node.acks.message().await.unwrap().unwrap();
    let died = Instant::now();
    node.sender = None;
    let mut waiting: HashSet<String> = users.iter().map(|user| format!("u{user:06}")).collect();
    while !waiting.is_empty() {
        let event = tokio::time::timeout(Duration::from_secs(60), watch.message())
            .await
            .expect("leaves never came")
            .unwrap()
            .unwrap();
        if let Some(EventKind::Diff(diff)) = event.kind
            && diff.r#type == "leave"
        {
            waiting.remove(&diff.user_id);
        }
    }
    died.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let scale = scale();
    let redis = PrivateRedis::start().await;
    let service = start_service(&redis.url()).await;
    let counter = redis::Client::open(redis.url()).unwrap();
    let mut counter = counter.get_multiplexed_async_connection().await.unwrap();

    let mut nodes = Vec::new();
    for index in 0..NODES {
        nodes.push(Node::connect(&service, &format!("node-{index}")).await);
    }
    println!("filling {} connections…", scale.connections);
    let (nodes, fill_rate) = fill(nodes, scale.connections, scale.channel_members).await;
    println!("  {fill_rate:.0} opens/s");

    let commands_before = redis_commands(&mut counter).await;
    let cpu_before = (redis_cpu_seconds(&redis), process_cpu_seconds(std::process::id()));
    let (nodes, churn_events) = churn(nodes, scale.connections, scale.channel_members, scale.churn).await;
    let churn_commands = redis_commands(&mut counter).await - commands_before;
    let churn_rate = churn_events as f64 / scale.churn.as_secs_f64();
    let churn_redis_cpu = (redis_cpu_seconds(&redis) - cpu_before.0) / scale.churn.as_secs_f64();
    let churn_own_cpu = (process_cpu_seconds(std::process::id()) - cpu_before.1) / scale.churn.as_secs_f64();
    println!(
        "churn: {churn_rate:.0} events/s, {:.2} Redis commands per event, Redis {churn_redis_cpu:.2} cores, \
         service + generator {churn_own_cpu:.2} cores",
        churn_commands as f64 / churn_events as f64
    );

    if std::env::var("PRESENCE_BENCH_COMMANDSTATS").is_ok() {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut counter)
            .await
            .unwrap();
        println!("{info}");
    }
    let renewing = tokio_util::sync::CancellationToken::new();
    let renewers = keep_renewing(nodes, renewing.clone());
    let idle_start = (
        redis_commands(&mut counter).await,
        redis_cpu_seconds(&redis),
        Instant::now(),
    );
    tokio::time::sleep(scale.idle).await;
    let idle_seconds = idle_start.2.elapsed().as_secs_f64();
    let ours_commands = (redis_commands(&mut counter).await - idle_start.0) as f64 / idle_seconds;
    let ours_cpu = (redis_cpu_seconds(&redis) - idle_start.1) / idle_seconds;
    println!(
        "idle, ours: {ours_commands:.1} Redis commands/s, {:.4} of a core",
        ours_cpu
    );

    let base_start = (
        redis_commands(&mut counter).await,
        redis_cpu_seconds(&redis),
        Instant::now(),
    );
    let refreshes = centrifugo_style(&redis.url(), scale.connections, scale.idle).await;
    let base_seconds = base_start.2.elapsed().as_secs_f64();
    let base_commands = (redis_commands(&mut counter).await - base_start.0) as f64 / base_seconds;
    let base_cpu = (redis_cpu_seconds(&redis) - base_start.1) / base_seconds;
    println!(
        "idle, Centrifugo-style: {base_commands:.0} Redis commands/s, {base_cpu:.4} of a core ({refreshes} refreshes)"
    );

    // Users asked for are among those online throughout (the channel's members).
    let online_users = scale.connections;
    let (batch_p50, batch_p99) =
        batch_get_latency(&service, scale.channel_members, 1_000, pb::PresenceView::Basic).await;
    println!("BatchGetPresence ×1000 with {online_users} online: p50 {batch_p50} ms, p99 {batch_p99} ms");
    let (full_p50, full_p99) = batch_get_latency(&service, scale.channel_members, 1_000, pb::PresenceView::Full).await;
    println!("  with every connection (view FULL): p50 {full_p50} ms, p99 {full_p99} ms");
    let (stats_p50, stats_p99) = stats_latency(&service, scale.channel_members, 2_000).await;
    println!(
        "GetChannelPresenceStats on {}: p50 {stats_p50} ms, p99 {stats_p99} ms",
        scale.channel_members
    );

    let death_ttl_ms = 2_000;
    let death_ms = node_death(&service, death_ttl_ms).await;
    let death_bound_ms = f64::from(death_ttl_ms) + GRACE_MS as f64 + 1_000.0;
    println!("node death → every leave delivered: {death_ms:.0} ms (bound {death_bound_ms} ms)");
    renewing.cancel();
    drop(join(renewers).await);

    let per_100k = |value: f64| value * 100_000.0 / scale.connections as f64;
    let document = json!({
        "what": format!("presence-service on a private Redis 7, release build, generator ({NODES} gateway-shaped node streams) in the same process"),
        "machine": testing::machine(),
        "connections": scale.connections,
        "churn": {
            "opens_per_second_filling": fill_rate.round(),
            "events_per_second": churn_rate.round(),
            "batch_events": BATCH,
            "redis_commands_per_event": ((churn_commands as f64 / churn_events as f64) * 100.0).round() / 100.0,
            "redis_cpu_cores": (churn_redis_cpu * 100.0).round() / 100.0,
            "service_and_generator_cpu_cores": (churn_own_cpu * 100.0).round() / 100.0,
            "target_events_per_second": 100_000,
        },
        "idle": {
            "seconds": scale.idle.as_secs(),
            "ours": {
                "redis_commands_per_second": (ours_commands * 10.0).round() / 10.0,
                "redis_cpu_cores_per_100k_connections": (per_100k(ours_cpu) * 10_000.0).round() / 10_000.0,
                "how": format!("{NODES} nodes renewing their leases every 5 s, plus the replica's own background (cleanup lock, lease and due polls every 250 ms, log tail): the same for any number of connections"),
            },
            "centrifugo_style": {
                "redis_commands_per_second": base_commands.round(),
                "redis_cpu_cores_per_100k_connections": (per_100k(base_cpu) * 10_000.0).round() / 10_000.0,
                "how": "per connection: HSET + ZADD + 2×EXPIRE in one script every 25 s, 1,000 connections per channel",
            },
            "ratio_commands": (base_commands / ours_commands.max(0.001)).round(),
            "target_ratio": 10,
        },
        "batch_get_presence_1000_users": {
            "online": online_users,
            "view": "BASIC (the default: everything but each user's connections)",
            "calls": 1_000,
            "warm_up_calls": WARM_UP_CALLS,
            "p50_ms": batch_p50,
            "p99_ms": batch_p99,
            "target_p99_ms": 5,
            "view_full": { "p50_ms": full_p50, "p99_ms": full_p99 },
        },
        "channel_presence_stats": { "members": scale.channel_members, "p50_ms": stats_p50, "p99_ms": stats_p99, "target_p99_ms": 1 },
        "node_death_to_last_leave": {
            "users": 1_000,
            "lease_ttl_ms": death_ttl_ms,
            "offline_grace_ms": GRACE_MS,
            "measured_ms": death_ms.round(),
            "bound_ms": death_bound_ms,
        },
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/presence-service.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
    service.shutdown.trigger();
    service.running.wait().await;
}
