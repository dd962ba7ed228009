//! A real Prometheus (Debian's `prometheus` package, which `make test` installs) on loopback,
//! scraping a test exporter whose values the test sets.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Series the exporter serves: `name{labels}` → value.
#[derive(Debug, Clone, Default)]
pub struct Exporter {
    series: Arc<Mutex<BTreeMap<String, f64>>>,
    pub addr: Option<SocketAddr>,
}

impl Exporter {
    pub async fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let exporter = Exporter {
            series: Arc::default(),
            addr: Some(listener.local_addr().unwrap()),
        };
        let series = exporter.series.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let series = series.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let body: String = {
                        let series = series.lock().unwrap();
                        series.iter().map(|(name, value)| format!("{name} {value}\n")).collect()
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        exporter
    }

    pub fn set(&self, series: &str, value: f64) {
        self.series.lock().unwrap().insert(series.to_owned(), value);
    }
}

/// A Prometheus process scraping one exporter every 100 ms; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> String {
    for candidate in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.to_owned();
        }
    }
    panic!("Prometheus is not installed: run ./scripts/ensure-backing-services.sh (make test does)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    pub async fn scraping(exporter: &Exporter) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let target = exporter.addr.unwrap();
        let config = format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let prometheus = Prometheus {
            child,
            address: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..300 {
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok();
            if listening {
                let ready = switchyard_platform::testing::get(&format!("{}/-/ready", prometheus.address)).await;
                if ready.status == 200 {
                    return prometheus;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready");
    }

    /// Waits until an instant query of `query` returns `value` (a scrape happened).
    pub async fn wait_for_value(&self, query: &str, value: f64) {
        let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let url = format!("{}/api/v1/query?query={encoded}", self.address);
        for _ in 0..300 {
            let answer = switchyard_platform::testing::get(&url).await.json();
            let seen = answer["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|text| text.parse::<f64>().ok());
            if seen == Some(value) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus never saw {query} = {value}");
    }
}
