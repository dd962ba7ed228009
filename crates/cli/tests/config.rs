//! `switchyard config` against a real config-service started in this process: the binary is
//! run as an operator would, with the server, key and project in `SY_*` variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Output, Stdio},
    time::Duration,
};

use base64::Engine as _;
use switchyard_api::config::v1::{self as pb, config_service_client::ConfigServiceClient};
use switchyard_platform::{
    Running, Shutdown,
    auth::{ApiKeyRecord, generate_api_key},
    testing,
};
use tonic::metadata::MetadataValue;

struct Server {
    running: Running,
    shutdown: Shutdown,
    key: String,
    record: ApiKeyRecord,
    dir: tempfile::TempDir,
}

/// A config-service on loopback with an admin key of tenant `acme`, listening on `port`
/// (0 for any) over the data directory `dir`.
async fn start_on(dir: tempfile::TempDir, key: String, record: ApiKeyRecord, port: u16) -> Server {
    let mut settings = testing::local(config_service::conf::defaults(), &dir.path().join("data"));
    settings.grpc.port = port;
    settings.auth.api_keys.push(record.clone());
    let shutdown = Shutdown::new();
    let running = config_service::start(settings, shutdown.clone()).await.unwrap();
    Server {
        running,
        shutdown,
        key,
        record,
        dir,
    }
}

/// A fresh service with project `shop` (dev → staging → prod).
async fn start() -> Server {
    let key = generate_api_key("acme", &["admin"]);
    let server = start_on(tempfile::tempdir().unwrap(), key.plaintext, key.record, 0).await;
    let mut request = tonic::Request::new(pb::CreateProjectRequest {
        project_id: "shop".into(),
        project: Some(pb::Project::default()),
        environment_ids: vec!["dev".into(), "staging".into(), "prod".into()],
    });
    let bearer: MetadataValue<_> = format!("Bearer {}", server.key).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    ConfigServiceClient::new(testing::grpc_channel(&server.running))
        .create_project(request)
        .await
        .unwrap();
    server
}

impl Server {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .arg("config")
            .args(args)
            .current_dir(self.dir.path())
            .env("SY_CONFIG_SERVER", format!("http://{}", self.running.grpc_addr))
            .env("SY_API_KEY", &self.key)
            .env("SY_PROJECT", "shop")
            .env_remove("RUST_BACKTRACE");
        command
    }

    /// Runs `switchyard config <args>` off the runtime, so the service keeps answering.
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Writes `name` in the working directory and returns its name.
    fn file<'a>(&self, name: &'a str, content: &str) -> &'a str {
        std::fs::write(self.dir.path().join(name), content).unwrap();
        name
    }

    async fn stop(self) -> (tempfile::TempDir, String, ApiKeyRecord, u16) {
        let port = self.running.grpc_addr.port();
        self.shutdown.trigger();
        self.running.wait().await;
        (self.dir, self.key, self.record, port)
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn set_publish_get_diff_history_rollback_and_promote() {
    let server = start().await;
    let first = server.file("app.yaml", "port: 8080\nname: shop\n");
    let created = server.ok(&["set", "app", "--file", first, "--label", "team=web"]).await;
    assert!(!created.trim().is_empty(), "prints the etag");
    let published = server.ok(&["publish", "app", "--env", "dev", "-m", "first"]).await;
    assert!(
        published.starts_with("release 1 projects/shop/environments/dev/configs/app/releases/1 "),
        "{published}"
    );
    let got = server.ok(&["get", "app", "--env", "dev"]).await;
    assert_eq!(json(&got), serde_json::json!({"port": 8080, "name": "shop"}));

    let second = server.file("app.yaml", "port: 9090\nname: shop\n");
    let updated = server.ok(&["set", "app", "--file", second]).await;
    assert_ne!(updated, created, "a new etag");
    server.ok(&["publish", "app", "--env", "dev", "-m", "second"]).await;

    let diff = server.ok(&["diff", "dev@1", "dev@2", "--config", "app"]).await;
    assert_eq!(diff.trim(), "~ $.port: 8080 -> 9090");
    let against_current = server.ok(&["diff", "dev@1", "dev", "--config", "app"]).await;
    assert_eq!(against_current, diff);

    let history = server.ok(&["history", "app", "--env", "dev"]).await;
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].trim_start().starts_with('2') && lines[0].ends_with("second"),
        "{history}"
    );
    assert!(
        lines[1].trim_start().starts_with('1') && lines[1].ends_with("first"),
        "{history}"
    );

    let rolled = server.ok(&["rollback", "app", "--env", "dev", "--to", "1"]).await;
    assert!(rolled.starts_with("release 3 "), "{rolled}");
    assert_eq!(json(&server.ok(&["get", "app", "--env", "dev"]).await)["port"], 8080);

    let promoted = server
        .ok(&["promote", "app", "--env", "dev", "--release", "3", "-m", "ship"])
        .await;
    assert!(promoted.contains("/environments/staging/"), "{promoted}");
    let staged = server.ok(&["get", "app", "--env", "staging", "--output", "json"]).await;
    let staged = json(&staged);
    assert_eq!(staged["name"], "projects/shop/environments/staging/configs/app");
    assert_eq!(json(staged["text"].as_str().unwrap())["port"], 8080);

    let raw = server.ok(&["get", "app", "--env", "dev", "--raw"]).await;
    assert!(raw.contains("port: 8080"), "the text as written: {raw}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_documents_exit_1_naming_the_path() {
    let server = start().await;
    let schema = server.file(
        "schema.json",
        r#"{"type": "object", "properties": {"port": {"type": "integer", "maximum": 65535}}}"#,
    );
    let good = server.file("good.json", r#"{"port": 80}"#);
    server.ok(&["set", "app", "--file", good, "--schema", schema]).await;
    assert_eq!(server.ok(&["validate", "app", "--env", "dev"]).await.trim(), "valid");

    let bad = server.file("bad.json", r#"{"port": 70000}"#);
    let checked = server.run(&["validate", "app", "--env", "dev", "--file", bad]).await;
    assert_eq!(checked.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.starts_with("$.port: ") && stdout.contains("[schema]"),
        "{stdout}"
    );

    // The draft may hold an invalid document (the schema is kept); publishing it may not.
    server.ok(&["set", "app", "--file", bad]).await;
    let rejected = server.run(&["publish", "app", "--env", "dev"]).await;
    assert_eq!(rejected.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("\n  $.port: "),
        "{stderr}"
    );
    let missing = server.run(&["get", "app", "--env", "dev"]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn render_k8s_keeps_secrets_out_of_the_config_map() {
    let server = start().await;
    let file = server.file(
        "db.json",
        r#"{"db": {"password": {"$secret": "pw"}, "pool": 5}, "port": 8080}"#,
    );
    server.ok(&["set", "db", "--file", file]).await;
    server.ok(&["publish", "db", "--env", "dev"]).await;
    let yaml = server
        .ok(&["render", "db", "--env", "dev", "--k8s", "--namespace", "apps"])
        .await;
    let documents: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(&yaml)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    assert_eq!(documents.len(), 2, "{yaml}");
    let (config_map, secret) = (&documents[0], &documents[1]);

    assert_eq!(config_map["kind"], "ConfigMap");
    assert_eq!(config_map["metadata"]["name"], "db");
    assert_eq!(config_map["metadata"]["namespace"], "apps");
    assert_eq!(
        config_map["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "switchyard"
    );
    assert_eq!(config_map["metadata"]["annotations"]["switchyard.dev/release"], "1");
    assert!(
        !config_map["metadata"]["annotations"]["switchyard.dev/etag"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(config_map["data"]["port"], "8080");
    assert_eq!(config_map["data"]["db"], r#"{"pool":5}"#);
    assert_eq!(
        json(config_map["data"]["db.json"].as_str().unwrap()),
        serde_json::json!({"db": {"pool": 5}, "port": 8080})
    );
    assert!(!config_map.to_string().contains("pw"), "{yaml}");

    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "Opaque");
    let encoded = secret["data"]["db_password"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    assert_eq!(decoded, b"pw");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_project_imports_as_a_copy() {
    let server = start().await;
    let file = server.file("app.toml", "port = 7000\n");
    server.ok(&["set", "app", "--file", file]).await;
    server.ok(&["publish", "app", "--env", "dev"]).await;
    server.ok(&["export", "--out", "archive.json"]).await;
    let archive = json(&std::fs::read_to_string(server.dir.path().join("archive.json")).unwrap());
    assert_eq!(archive["project"]["name"], "projects/shop");

    let imported = server.ok(&["import", "--file", "archive.json", "--as", "copy"]).await;
    assert_eq!(imported.trim(), "imported projects/copy");
    let copied = server.ok(&["get", "app", "--env", "dev", "--project", "copy"]).await;
    assert_eq!(json(&copied), serde_json::json!({"port": 7000}));
    server.stop().await;
}

/// A running `switchyard config watch` and its stdout lines.
struct Watcher {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Watcher {
    fn spawn(server: &Server, args: &[&str]) -> Watcher {
        let mut child = server
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if sender.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("watch did not end within 10s of Ctrl-C");
    }

    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(20), self.lines.recv())
            .await
            .expect("a watch line within 20s")
            .expect("watch is still running")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn publish_port(server: &Server, port: u16) {
    let file = server.file("app.yaml", &format!("port: {port}\n"));
    server.ok(&["set", "app", "--file", file]).await;
    server.ok(&["publish", "app", "--env", "dev"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_a_snapshot_then_each_change() {
    let server = start().await;
    publish_port(&server, 1).await;
    let mut watcher = Watcher::spawn(&server, &["watch", "--env", "dev"]);
    let snapshot = watcher.next().await;
    assert!(snapshot.starts_with("revision 1 snapshot app@1 "), "{snapshot}");
    publish_port(&server, 2).await;
    let change = watcher.next().await;
    assert!(change.starts_with("revision 2 change app@2 "), "{change}");
    assert!(watcher.interrupt().success(), "Ctrl-C ends the watch cleanly");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_resumes_after_the_server_restarts_without_losing_a_change() {
    let server = start().await;
    publish_port(&server, 1).await;
    let mut watcher = Watcher::spawn(&server, &["watch", "--env", "dev"]);
    assert!(watcher.next().await.starts_with("revision 1 snapshot "));

    let (dir, key, record, port) = server.stop().await;
    let server = start_on(dir, key, record, port).await;
    publish_port(&server, 2).await;
    let change = watcher.next().await;
    assert!(
        change.starts_with("revision 2 change app@2 "),
        "resumed from revision 1, not a new snapshot: {change}"
    );
    drop(watcher);
    server.stop().await;
}

#[test]
fn config_help_lists_every_subcommand() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["config", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in [
        "get", "set", "validate", "publish", "diff", "history", "rollback", "promote", "watch", "export", "import",
        "render",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} missing from:\n{help}"
        );
    }
}
