//! Load generator for flag-service's evaluation path: flagd `ResolveBoolean` (evaluation v2)
//! over gRPC and OFREP single-flag evaluation over HTTP/1.1, closed loop on loopback.
//!
//! The server is the release binary in its own process, serving a flag file of 200 flags; the
//! generator is this process on a single-threaded runtime, so the two share the machine's cores
//! as a sidecar-less caller and flag-service would. Each level runs several rounds, alternating
//! protocols; medians are reported. Results go to `bench/results/flag-service.json` under
//! "server" (other sections of the file are kept).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use prost::Message;
use serde_json::{Map, Value, json};
use switchyard_api::flagd::evaluation::v2::{ResolveBooleanRequest, ResolveBooleanResponse};
use switchyard_platform::testing::ServiceProcess;
use tonic::transport::Channel;

const FLAGS: usize = 200;
const LEVELS: [usize; 3] = [16, 32, 64];
/// HTTP/2 connections the gRPC callers share, as a service with a small channel pool would.
const CHANNELS: usize = 4;
const ROUND: Duration = Duration::from_secs(3);
const REPETITIONS: usize = 3;

/// `FLAG_BENCH_QUICK=1`: one round per level, no propagation, nothing written — for trying a
/// change; the figures worth quoting come from the full run.
fn quick() -> bool {
    std::env::var_os("FLAG_BENCH_QUICK").is_some()
}

/// The benchmarked flag: on for Bangladesh and India, with a percentage rollout elsewhere.
fn flags_document() -> Value {
    let mut flags = Map::new();
    for index in 0..FLAGS {
        flags.insert(
            format!("flag-{index}"),
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}),
        );
    }
    flags.insert(
        "checkout-v2".into(),
        json!({
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"if": [
                {"in": [{"var": "country"}, ["BD", "IN"]]}, "on",
                {"fractional": [["on", 10], ["off", 90]]}
            ]}
        }),
    );
    json!({ "flags": flags })
}

fn context(user: usize) -> Map<String, Value> {
    let country = if user.is_multiple_of(3) { "NP" } else { "BD" };
    json!({"targetingKey": format!("user-{user}"), "country": country, "app": "android", "version": "5.2.1"})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Figures {
    concurrency: usize,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

async fn closed_loop<F, Fut>(concurrency: usize, call: F) -> Figures
where
    F: Fn(usize, usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let call = call.clone();
        tasks.push(local.spawn_local(async move {
            let mut latencies = Vec::with_capacity(200_000);
            let mut user = task * 7919;
            while started.elapsed() < ROUND {
                let begin = Instant::now();
                call(task, user).await;
                latencies.push(begin.elapsed().as_micros() as u32);
                user += 1;
            }
            latencies
        }));
    }
    let all = local
        .run_until(async move {
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all
        })
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = all;
    all.sort_unstable();
    Figures {
        concurrency,
        requests_per_second: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    }
}

/// Distinct contexts per round: the caller encodes its requests before the clock starts.
const POOL: usize = 1024;

/// `ResolveBoolean` requests as gRPC frames (uncompressed flag, length, message).
fn grpc_bodies() -> Vec<Bytes> {
    (0..POOL)
        .map(|user| {
            let request = ResolveBooleanRequest {
                flag_key: "checkout-v2".into(),
                context: Some(switchyard_platform::proto_json::to_proto_struct(&context(user))),
            };
            let message = request.encode_to_vec();
            let mut frame = Vec::with_capacity(5 + message.len());
            frame.push(0);
            frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(&message);
            Bytes::from(frame)
        })
        .collect()
}

/// HTTP/2 connections for the gRPC callers, driven on this runtime.
async fn grpc_connections(url: &str) -> Vec<SendRequest<Bytes>> {
    let mut senders = Vec::new();
    for _ in 0..CHANNELS {
        let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move { connection.await.unwrap() });
        senders.push(sender);
    }
    senders
}

/// One unary gRPC call over raw HTTP/2, as h2load or ghz make it: the generator shares the two
/// cores with the server, so a heavier client (tonic's channel puts every call through a
/// buffer task) would be counted against the server's throughput.
async fn resolve_boolean(sender: SendRequest<Bytes>, uri: http::Uri, body: Bytes) {
    let request = http::Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut sender = sender.ready().await.unwrap();
    let (response, mut stream) = sender.send_request(request, false).unwrap();
    stream.send_data(body, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut message = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        message.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|status| status.as_bytes()),
        Some(&b"0"[..]),
        "{trailers:?}"
    );
    let answer = ResolveBooleanResponse::decode(&message[5..]).unwrap();
    assert!(answer.value.is_some());
}

async fn grpc_round(senders: &[SendRequest<Bytes>], url: &str, bodies: &[Bytes], concurrency: usize) -> Figures {
    let senders = senders.to_vec();
    let bodies = bodies.to_vec();
    let uri: http::Uri = format!("{url}/flagd.evaluation.v2.Service/ResolveBoolean")
        .parse()
        .unwrap();
    closed_loop(concurrency, move |task, user| {
        resolve_boolean(
            senders[task % senders.len()].clone(),
            uri.clone(),
            bodies[user % bodies.len()].clone(),
        )
    })
    .await
}

/// OFREP request bodies (`{"context": …}`), built before the clock starts.
fn ofrep_bodies() -> Vec<Bytes> {
    (0..POOL)
        .map(|user| Bytes::from(json!({ "context": context(user) }).to_string()))
        .collect()
}

async fn ofrep_round(base: &str, bodies: &[Bytes], concurrency: usize) -> Figures {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url: http::Uri = format!("{base}/ofrep/v1/evaluate/flags/checkout-v2").parse().unwrap();
    let bodies = bodies.to_vec();
    closed_loop(concurrency, move |_task, user| {
        let client = client.clone();
        let request = http::Request::post(url.clone())
            .header("content-type", "application/json")
            .body(Full::new(bodies[user % bodies.len()].clone()))
            .unwrap();
        async move {
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap();
        }
    })
    .await
}

fn summarize(runs: &[Figures]) -> Figures {
    Figures {
        concurrency: runs[0].concurrency,
        requests_per_second: median(runs.iter().map(|run| run.requests_per_second).collect()),
        p50_ms: median(runs.iter().map(|run| run.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|run| run.p99_ms).collect()),
    }
}

/// EventStream (v2) and SyncFlags subscribers on replica B; each round updates the flag
/// through replica A's management API and times the arrival at every subscriber.
const SUBSCRIBERS: usize = 200;
const PROPAGATION_ROUNDS: usize = 20;

/// Two replicas on one fresh PostgreSQL database and the Redis bus: how long a flag change
/// made on A takes to reach the EventStream and SyncFlags subscribers of B.
fn propagation(runtime: &tokio::runtime::Runtime) -> Value {
    use futures::StreamExt;
    use switchyard_api::{
        flagd::{
            evaluation::v2::EventStreamRequest,
            sync::v1::{SyncFlagsRequest, flag_sync_service_client::FlagSyncServiceClient},
        },
        flags::v1 as pb,
    };

    let database = runtime.block_on(switchyard_platform::testing::fresh_postgres_database());
    let key = switchyard_platform::auth::generate_api_key("default", &["admin"]);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut replicas: Vec<ServiceProcess> = dirs
        .iter()
        .map(|dir| {
            let mut settings = flag_service::conf::defaults();
            settings.grpc.port = 0;
            settings.http.port = 0;
            settings.data_dir = dir.path().to_path_buf();
            settings.storage.url = database.clone();
            settings.redis_url = Some(switchyard_platform::testing::redis_url());
            settings.auth.api_keys.push(key.record.clone());
            settings.limits.max_concurrent_requests = 4096;
            ServiceProcess::spawn(env!("CARGO_BIN_EXE_flag-service"), &settings, dir.path())
        })
        .collect();
    let figures = runtime.block_on(async {
        let channel = |url: &str| Channel::from_shared(url.to_owned()).unwrap().connect_lazy();
        let mut management = pb::flag_service_client::FlagServiceClient::new(channel(&replicas[0].grpc_url));
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", key.plaintext).parse().unwrap();
        fn authorized<T>(
            message: T,
            bearer: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        ) -> tonic::Request<T> {
            let mut request = tonic::Request::new(message);
            request.metadata_mut().insert("authorization", bearer.clone());
            request
        }
        let flag = |default: &str| pb::Flag {
            variants: Some(switchyard_platform::proto_json::to_proto_struct(
                &json!({"on": true, "off": false})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )),
            environments: [(
                "prod".to_owned(),
                pb::EnvironmentRules {
                    enabled: true,
                    default_variant: default.into(),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        let created = management
            .create_flag(authorized(
                pb::CreateFlagRequest {
                    parent: "projects/shop".into(),
                    flag_id: "banner".into(),
                    flag: Some(flag("off")),
                    message: String::new(),
                },
                &bearer,
            ))
            .await
            .unwrap()
            .into_inner();
        let mut version = created.version;
        let selector = "projects/shop/environments/prod";

        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let replica_b = channel(&replicas[1].grpc_url);
        for index in 0..SUBSCRIBERS {
            let sender = sender.clone();
            let channel = replica_b.clone();
            let mut events = if index % 2 == 0 {
                let mut request = tonic::Request::new(EventStreamRequest {});
                request
                    .metadata_mut()
                    .insert("flagd-selector", selector.parse().unwrap());
                let stream = switchyard_api::flagd::evaluation::v2::service_client::ServiceClient::new(channel)
                    .event_stream(request)
                    .await
                    .unwrap()
                    .into_inner();
                stream
                    .map(|event| {
                        event
                            .map(|event| event.r#type == "configuration_change")
                            .unwrap_or(false)
                    })
                    .boxed()
            } else {
                let request = SyncFlagsRequest {
                    provider_id: String::new(),
                    selector: selector.into(),
                };
                let stream = FlagSyncServiceClient::new(channel)
                    .sync_flags(request)
                    .await
                    .unwrap()
                    .into_inner();
                stream.map(|message| message.is_ok()).boxed()
            };
            // The first message of each stream is its starting point, not a change.
            events.next().await;
            tokio::spawn(async move {
                while let Some(is_change) = events.next().await {
                    if is_change && sender.send(Instant::now()).is_err() {
                        return;
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut latencies = Vec::new();
        let mut acks = Vec::new();
        for round in 0..PROPAGATION_ROUNDS {
            let started = Instant::now();
            let default = if round % 2 == 0 { "on" } else { "off" };
            let mut next = flag(default);
            next.name = created.name.clone();
            let updated = management
                .update_flag(authorized(
                    pb::UpdateFlagRequest {
                        flag: Some(next),
                        etag: version.to_string(),
                        message: String::new(),
                    },
                    &bearer,
                ))
                .await
                .unwrap()
                .into_inner();
            acks.push(started.elapsed().as_secs_f64() * 1000.0);
            version = updated.version;
            for _ in 0..SUBSCRIBERS {
                let arrived = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
                    .await
                    .unwrap()
                    .unwrap();
                latencies.push((arrived - started).as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        let at = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction).round() as usize];
        json!({
            "subscribers_on_other_replica": SUBSCRIBERS,
            "updates": PROPAGATION_ROUNDS,
            "write_ack_ms_median": median(acks),
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
            "max_ms": at(1.0),
            "target": "every replica and subscriber within 100 ms",
            "target_met": at(1.0) < 100.0,
        })
    });
    for replica in &mut replicas {
        replica.kill();
    }
    figures
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let flags_file = dir.path().join("flags.json");
    std::fs::write(&flags_file, flags_document().to_string()).unwrap();
    let mut settings = flag_service::conf::defaults();
    settings.grpc.port = 0;
    settings.http.port = 0;
    settings.grpc.host = [127, 0, 0, 1].into();
    settings.http.host = [127, 0, 0, 1].into();
    settings.data_dir = dir.path().to_path_buf();
    settings.service.flags_files = vec![flags_file];
    settings.limits.max_concurrent_requests = 4096;
    let mut server = ServiceProcess::spawn(env!("CARGO_BIN_EXE_flag-service"), &settings, dir.path());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let senders = grpc_connections(&server.grpc_url).await;
        let (grpc_bodies, ofrep_bodies) = (grpc_bodies(), ofrep_bodies());
        // Warm up both paths.
        grpc_round(&senders, &server.grpc_url, &grpc_bodies, 8).await;
        ofrep_round(&server.http_url, &ofrep_bodies, 8).await;
        let mut grpc = Vec::new();
        let mut ofrep = Vec::new();
        for concurrency in LEVELS {
            let (mut grpc_runs, mut ofrep_runs) = (Vec::new(), Vec::new());
            for _ in 0..if quick() { 1 } else { REPETITIONS } {
                grpc_runs.push(grpc_round(&senders, &server.grpc_url, &grpc_bodies, concurrency).await);
                ofrep_runs.push(ofrep_round(&server.http_url, &ofrep_bodies, concurrency).await);
            }
            let (g, o) = (summarize(&grpc_runs), summarize(&ofrep_runs));
            println!(
                "concurrency {concurrency:>3}: gRPC ResolveBoolean {:>8.0} req/s p50 {:.2} ms p99 {:.2} ms | OFREP {:>8.0} req/s p50 {:.2} ms p99 {:.2} ms",
                g.requests_per_second, g.p50_ms, g.p99_ms, o.requests_per_second, o.p50_ms, o.p99_ms
            );
            grpc.push(g);
            ofrep.push(o);
        }
        (grpc, ofrep)
    });
    server.kill();
    if quick() {
        return;
    }
    let propagation = propagation(&runtime);
    println!("propagation: {propagation}");

    let (grpc, ofrep) = results;
    let best = |figures: &[Figures]| figures.iter().map(|f| f.requests_per_second).fold(0.0, f64::max);
    let meets = |figures: &[Figures]| {
        figures
            .iter()
            .any(|f| f.requests_per_second >= 50_000.0 && f.p99_ms < 2.0)
    };
    let server = json!({
        "machine": switchyard_platform::testing::machine(),
        "method": format!("closed loop on loopback; flag-service release binary in its own process serving {FLAGS} flags; \
                   the generator is one current-thread tokio runtime in another process; {REPETITIONS} rounds of {}s per level, \
                   gRPC and OFREP alternating; medians", ROUND.as_secs()),
        "flag": "checkout-v2: in-list condition, then a 10/90 fractional rollout",
        "grpc_resolve_boolean_v2": grpc,
        "ofrep_single_flag_http1": ofrep,
        "target": "≥ 50,000 req/s with p99 < 2 ms",
        "target_met": {"grpc": meets(&grpc), "ofrep": meets(&ofrep)},
        "best_requests_per_second": {"grpc": best(&grpc), "ofrep": best(&ofrep)},
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/flag-service.json");
    let mut document: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| json!({}));
    document["server"] = server;
    document["propagation"] = propagation;
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
}
