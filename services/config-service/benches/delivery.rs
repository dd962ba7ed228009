//! Load generator for config-service's data plane, side by side with etcd in one run:
//!
//! - reads: `GetConfig` of one of 10,000 published configs over gRPC on loopback, closed loop,
//!   against etcd `Range` (serializable) of one of 10,000 keys holding the same payloads;
//! - propagation: publish → received by 1,000 concurrent watchers, against etcd put → 1,000
//!   watch streams on the key.
//!
//! Both servers run as their own processes; the generator is this process. Each figure is
//! the median of several rounds. Results go to `bench/results/config-service.json`.
//! etcd comes from Debian's `etcd-server` (`scripts/bench-config-service.sh` installs it);
//! without it the etcd half is skipped and the file says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod etcd;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use config_service::biz::document::{self, Format};
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_api::config::v1::{self as pb, config_service_client::ConfigServiceClient};
use switchyard_platform::{auth::generate_api_key, testing};
use tonic::{Request, transport::Channel};

const CONFIGS: usize = 10_000;
const WATCHERS: usize = 1_000;
/// Closed-loop clients; the first level is the latency point, the last the throughput point.
const READ_CONCURRENCY: [usize; 3] = [8, 16, 32];
const CHANNELS: usize = 4;
const ROUND: Duration = Duration::from_secs(4);
/// Each workload runs this many times, alternating between the two systems; medians are reported.
const REPETITIONS: usize = 3;
const PUBLISHES: usize = 20;

/// A realistic service config: ~600 bytes of JSON.
fn payload(index: usize) -> Value {
    json!({
        "service": format!("svc-{index}"),
        "port": 8000 + index % 1000,
        "replicas": 3,
        "timeouts": {"connect_ms": 250, "read_ms": 1500, "write_ms": 1500},
        "database": {"host": format!("pg-{}.internal", index % 7), "pool": 20, "statement_timeout_ms": 5000},
        "features": {"checkout_v2": index.is_multiple_of(2), "bkash_wallet": true, "nagad_wallet": index.is_multiple_of(3)},
        "endpoints": ["https://api.example.com/v1/orders", "https://api.example.com/v1/payments"],
        "retry": {"attempts": 3, "backoff_ms": [100, 400, 1600]},
        "locale": {"default": "bn-BD", "fallback": "en"}
    })
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

#[derive(Debug, Clone, Copy)]
struct ReadFigures {
    concurrency: usize,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Clone, Copy)]
struct PropagationFigures {
    /// How long the write itself took to be acknowledged (median).
    write_ack_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    deliveries: usize,
}

/// Runs `call` from `concurrency` closed-loop tasks for ROUND.
async fn closed_loop<F, Fut>(concurrency: usize, call: F) -> ReadFigures
where
    F: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut n = task * 7919;
            while started.elapsed() < ROUND {
                let begin = Instant::now();
                call(task, n % CONFIGS).await;
                latencies.push(begin.elapsed().as_micros() as u32);
                n += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    ReadFigures {
        concurrency,
        requests_per_second: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    }
}

/// The median of each figure over repetitions.
fn median_reads(runs: &[ReadFigures]) -> ReadFigures {
    ReadFigures {
        concurrency: runs[0].concurrency,
        requests_per_second: median(runs.iter().map(|run| run.requests_per_second).collect()),
        p50_ms: median(runs.iter().map(|run| run.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|run| run.p99_ms).collect()),
    }
}

fn median_propagation(runs: &[PropagationFigures]) -> PropagationFigures {
    PropagationFigures {
        write_ack_ms: median(runs.iter().map(|run| run.write_ack_ms).collect()),
        p50_ms: median(runs.iter().map(|run| run.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|run| run.p99_ms).collect()),
        max_ms: median(runs.iter().map(|run| run.max_ms).collect()),
        deliveries: runs.iter().map(|run| run.deliveries).sum(),
    }
}

/// Receipt times of every watcher for each publication, turned into latencies.
fn propagation_figures(starts: &[Instant], acks: &[Duration], receipts: &[Vec<Instant>]) -> PropagationFigures {
    let mut latencies: Vec<u32> = Vec::new();
    for (start, received) in starts.iter().zip(receipts) {
        latencies.extend(received.iter().map(|at| at.duration_since(*start).as_micros() as u32));
    }
    latencies.sort_unstable();
    PropagationFigures {
        write_ack_ms: median(acks.iter().map(|ack| ack.as_secs_f64() * 1000.0).collect()),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().map(|max| f64::from(*max) / 1000.0).unwrap_or_default(),
        deliveries: latencies.len(),
    }
}

fn channels(url: &str) -> Vec<Channel> {
    (0..CHANNELS)
        .map(|_| {
            tonic::transport::Endpoint::from_shared(url.to_owned())
                .unwrap()
                .tcp_nodelay(true)
                .connect_lazy()
        })
        .collect()
}

fn authed<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// A project archive with CONFIGS published configs in environment `prod`.
fn archive() -> pb::ProjectArchive {
    let mut configs = Vec::new();
    let mut releases = Vec::new();
    let mut current = Vec::new();
    for index in 0..CONFIGS {
        let document = payload(index);
        let content = document::render(Format::Json, &document).unwrap();
        let hash = document::digest(&document);
        let resolved = Some(to_proto(&document));
        configs.push(pb::Config {
            name: format!("projects/bench/configs/c{index}"),
            format: pb::Format::Json as i32,
            content: content.clone(),
            ..Default::default()
        });
        releases.push(pb::ArchivedRelease {
            environment: "prod".into(),
            config: format!("c{index}"),
            number: 1,
            author: "bench".into(),
            content,
            format: pb::Format::Json as i32,
            resolved: resolved.clone(),
            content_hash: hash.clone(),
            revision: index as u64 + 1,
            ..Default::default()
        });
        current.push(pb::ArchivedServed {
            environment: "prod".into(),
            config: format!("c{index}"),
            release: 1,
            format: pb::Format::Json as i32,
            resolved,
            content_hash: hash,
            secret_paths: vec![],
        });
    }
    pb::ProjectArchive {
        format_version: 1,
        project: Some(pb::Project {
            name: "projects/bench".into(),
            environments: vec![pb::Environment {
                name: "projects/bench/environments/prod".into(),
                revision: CONFIGS as u64,
                etag: "1".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        configs,
        releases,
        current,
    }
}

fn to_proto(value: &Value) -> pbjson_types::Value {
    serde_json::from_value(value.clone()).unwrap()
}

struct Switchyard {
    process: testing::ServiceProcess,
    key: String,
    _dir: tempfile::TempDir,
}

async fn start_switchyard() -> Switchyard {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = testing::local(config_service::conf::defaults(), dir.path());
    settings.storage.url = testing::fresh_postgres_database().await;
    settings.limits.max_request_bytes = 256 * 1024 * 1024;
    settings.limits.per_principal_rps = 10_000_000;
    settings.limits.max_concurrent_requests = 100_000;
    settings.telemetry.log_filter = "warn,switchyard_platform::server=info".into();
    let key = generate_api_key("bench", &["admin"]);
    settings.auth.api_keys.push(key.record);
    let process = testing::ServiceProcess::spawn(env!("CARGO_BIN_EXE_config-service"), &settings, dir.path());
    Switchyard {
        process,
        key: key.plaintext,
        _dir: dir,
    }
}

async fn populate_switchyard(switchyard: &Switchyard) {
    let mut client = ConfigServiceClient::new(channels(&switchyard.process.grpc_url)[0].clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let populated = Instant::now();
    client
        .import_project(authed(
            &switchyard.key,
            pb::ImportProjectRequest {
                archive: Some(archive()),
                project_id: String::new(),
            },
        ))
        .await
        .unwrap();
    // Load the environment into memory before measuring.
    client
        .get_config(authed(&switchyard.key, get_request(0)))
        .await
        .unwrap();
    eprintln!("switchyard: imported {CONFIGS} configs in {:?}", populated.elapsed());
}

async fn switchyard_reads(switchyard: &Switchyard, concurrency: usize) -> ReadFigures {
    let channels = Arc::new(channels(&switchyard.process.grpc_url));
    let key = Arc::new(switchyard.key.clone());
    let figures = closed_loop(concurrency, move |task, index| {
        let mut client = ConfigServiceClient::new(channels[task % CHANNELS].clone());
        let key = key.clone();
        async move {
            let response = client.get_config(authed(&key, get_request(index))).await.unwrap();
            assert!(response.get_ref().release >= 1);
        }
    })
    .await;
    eprintln!("switchyard GetConfig: {figures:?}");
    figures
}

fn get_request(index: usize) -> pb::GetConfigRequest {
    pb::GetConfigRequest {
        name: format!("projects/bench/environments/prod/configs/c{index}"),
        ..Default::default()
    }
}

async fn switchyard_propagation(switchyard: &Switchyard) -> PropagationFigures {
    let channels = channels(&switchyard.process.grpc_url);
    let mut admin = ConfigServiceClient::new(channels[0].clone());
    let environment = admin
        .get_environment(authed(
            &switchyard.key,
            pb::GetEnvironmentRequest {
                name: "projects/bench/environments/prod".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let receipts: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); PUBLISHES]));
    let mut watchers = Vec::new();
    for watcher in 0..WATCHERS {
        let mut client = ConfigServiceClient::new(channels[watcher % CHANNELS].clone());
        let mut stream = client
            .watch(authed(
                &switchyard.key,
                pb::WatchRequest {
                    parent: "projects/bench/environments/prod".into(),
                    since_revision: environment.revision,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let receipts = receipts.clone();
        watchers.push(tokio::spawn(async move {
            for round in 0..PUBLISHES {
                let Some(Ok(_)) = stream.next().await else { return };
                receipts.lock().unwrap()[round].push(Instant::now());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut starts = Vec::new();
    let mut acks = Vec::new();
    for round in 0..PUBLISHES {
        starts.push(Instant::now());
        admin
            .publish_config(authed(
                &switchyard.key,
                pb::PublishConfigRequest {
                    name: "projects/bench/configs/c0".into(),
                    environment: "prod".into(),
                    message: format!("round {round}"),
                    etag: String::new(),
                },
            ))
            .await
            .unwrap();
        acks.push(starts[round].elapsed());
        wait_for_all(&receipts, round).await;
    }
    for watcher in watchers {
        let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    }
    let receipts = receipts.lock().unwrap().clone();
    propagation_figures(&starts, &acks, &receipts)
}

async fn wait_for_all(receipts: &Arc<Mutex<Vec<Vec<Instant>>>>, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while receipts.lock().unwrap()[round].len() < WATCHERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Etcd {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd_binary() -> Option<String> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .map(str::to_owned)
}

async fn start_etcd(binary: &str) -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let child = std::process::Command::new(binary)
        .args(["--data-dir", &dir.path().join("etcd").display().to_string()])
        .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}")])
        .args(["--log-level", "error", "--quota-backend-bytes", "4294967296"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let etcd = Etcd { child, url, _dir: dir };
    let mut grpc = tonic::client::Grpc::new(channels(&etcd.url)[0].clone());
    for _ in 0..100 {
        if etcd::range(&mut grpc, b"probe").await.is_ok() {
            return etcd;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not start");
}

fn etcd_key(index: usize) -> Vec<u8> {
    format!("/switchyard/bench/prod/c{index}").into_bytes()
}

async fn populate_etcd(etcd: &Etcd) {
    let channels = channels(&etcd.url);
    let populated = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..16 {
        let channel = channels[writer % CHANNELS].clone();
        writers.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            for index in (writer..CONFIGS).step_by(16) {
                let value = serde_json::to_vec(&payload(index)).unwrap();
                etcd::put(&mut grpc, &etcd_key(index), &value).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    eprintln!("etcd: put {CONFIGS} keys in {:?}", populated.elapsed());
}

async fn etcd_reads(etcd: &Etcd, concurrency: usize) -> ReadFigures {
    let channels = Arc::new(channels(&etcd.url));
    let figures = closed_loop(concurrency, move |task, index| {
        let mut grpc = tonic::client::Grpc::new(channels[task % CHANNELS].clone());
        async move {
            let response = etcd::range(&mut grpc, &etcd_key(index)).await.unwrap();
            assert_eq!(response.kvs.len(), 1);
        }
    })
    .await;
    eprintln!("etcd Range: {figures:?}");
    figures
}

async fn etcd_propagation(etcd: &Etcd) -> PropagationFigures {
    let channels = channels(&etcd.url);
    let key = etcd_key(0);
    let receipts: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); PUBLISHES]));
    let mut watchers = Vec::new();
    for watcher in 0..WATCHERS {
        let mut grpc = tonic::client::Grpc::new(channels[watcher % CHANNELS].clone());
        let mut stream = etcd::watch(&mut grpc, &key).await.unwrap();
        let receipts = receipts.clone();
        watchers.push(tokio::spawn(async move {
            let mut round = 0;
            while round < PUBLISHES {
                let Ok(Some(response)) = stream.message().await else {
                    return;
                };
                for _ in &response.events {
                    if round < PUBLISHES {
                        receipts.lock().unwrap()[round].push(Instant::now());
                    }
                    round += 1;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut grpc = tonic::client::Grpc::new(channels[0].clone());
    let value = serde_json::to_vec(&payload(0)).unwrap();
    let mut acks = Vec::new();
    let mut starts = Vec::new();
    for round in 0..PUBLISHES {
        starts.push(Instant::now());
        etcd::put(&mut grpc, &key, &value).await.unwrap();
        acks.push(starts[round].elapsed());
        wait_for_all(&receipts, round).await;
    }
    for watcher in watchers {
        let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    }
    let receipts = receipts.lock().unwrap().clone();
    propagation_figures(&starts, &acks, &receipts)
}

fn read_json(figures: &ReadFigures) -> Value {
    json!({
        "concurrency": figures.concurrency,
        "requests_per_second": figures.requests_per_second.round(),
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
    })
}

fn propagation_json(figures: &PropagationFigures) -> Value {
    json!({
        "write_ack_ms": figures.write_ack_ms,
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
        "max_ms": figures.max_ms,
        "deliveries": figures.deliveries,
    })
}

/// `a / b` to two decimals.
fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 100.0).round() / 100.0
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut switchyard = start_switchyard().await;
        populate_switchyard(&switchyard).await;
        let etcd = match etcd_binary() {
            Some(binary) => Some(start_etcd(&binary).await),
            None => None,
        };
        if let Some(etcd) = &etcd {
            populate_etcd(etcd).await;
        }
        // Alternate the systems so that drift on a noisy machine hits both alike.
        let mut our_reads: Vec<Vec<ReadFigures>> = vec![Vec::new(); READ_CONCURRENCY.len()];
        let mut their_reads: Vec<Vec<ReadFigures>> = vec![Vec::new(); READ_CONCURRENCY.len()];
        let (mut our_propagation, mut their_propagation) = (Vec::new(), Vec::new());
        for _ in 0..REPETITIONS {
            for (level, concurrency) in READ_CONCURRENCY.into_iter().enumerate() {
                our_reads[level].push(switchyard_reads(&switchyard, concurrency).await);
                if let Some(etcd) = &etcd {
                    their_reads[level].push(etcd_reads(etcd, concurrency).await);
                }
            }
            let figures = switchyard_propagation(&switchyard).await;
            eprintln!("switchyard propagation: {figures:?}");
            our_propagation.push(figures);
            if let Some(etcd) = &etcd {
                let figures = etcd_propagation(etcd).await;
                eprintln!("etcd propagation: {figures:?}");
                their_propagation.push(figures);
            }
        }
        switchyard.process.kill();
        drop(etcd);
        let reads: Vec<ReadFigures> = our_reads.iter().map(|runs| median_reads(runs)).collect();
        let propagation = median_propagation(&our_propagation);
        let comparison = if their_propagation.is_empty() {
            json!({"etcd": "not installed: run scripts/bench-config-service.sh to install etcd-server"})
        } else {
            let etcd_reads: Vec<ReadFigures> = their_reads.iter().map(|runs| median_reads(runs)).collect();
            let etcd_propagation = median_propagation(&their_propagation);
            json!({
                "etcd_version": std::process::Command::new(etcd_binary().unwrap_or_default()).arg("--version").output().ok().map(|out| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_owned()),
                "etcd_reads": etcd_reads.iter().map(read_json).collect::<Vec<_>>(),
                "etcd_propagation": propagation_json(&etcd_propagation),
                "reads_by_concurrency": reads.iter().zip(&etcd_reads).map(|(ours, theirs)| json!({
                    "concurrency": ours.concurrency,
                    "throughput_ratio_switchyard_over_etcd": ratio(ours.requests_per_second, theirs.requests_per_second),
                    "p99_ratio_etcd_over_switchyard": ratio(theirs.p99_ms, ours.p99_ms),
                })).collect::<Vec<_>>(),
                "write_ack_ratio_etcd_over_switchyard": ratio(etcd_propagation.write_ack_ms, propagation.write_ack_ms),
                "propagation_p50_ratio_etcd_over_switchyard": ratio(etcd_propagation.p50_ms, propagation.p50_ms),
                "propagation_p99_ratio_etcd_over_switchyard": ratio(etcd_propagation.p99_ms, propagation.p99_ms),
            })
        };
        let report = json!({
            "benchmark": "config-service data plane vs etcd, one run, loopback",
            "machine": switchyard_platform::testing::machine(),
            "setup": {
                "configs_stored": CONFIGS,
                "payload_bytes": serde_json::to_vec(&payload(0)).unwrap().len(),
                "read_concurrency": READ_CONCURRENCY,
                "connections": CHANNELS,
                "round_seconds": ROUND.as_secs(),
                "repetitions_median_of": REPETITIONS,
                "load_generator": "one tokio current-thread runtime in the benchmark process",
                "watchers": WATCHERS,
                "publishes": PUBLISHES,
                "switchyard_storage": "postgresql",
                "etcd_reads": "serializable Range (no quorum round), its fastest read",
            },
            "targets": {"get_p99_ms": 1.0, "get_rps": 20000, "propagation_p99_ms": 50.0},
            "switchyard_get_config": reads.iter().map(read_json).collect::<Vec<_>>(),
            "switchyard_propagation": propagation_json(&propagation),
            "comparison": comparison,
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/config-service.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
        eprintln!("wrote {}", path.display());
    });
}
