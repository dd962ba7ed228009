//! `switchyard dev` as a newcomer runs it: one process, five services, ports and the admin
//! key printed, every service answering, and a clean exit on SIGTERM — with the same key
//! on the next start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    process::{Child, Command},
    time::Duration,
};

use support::{port_of, start, start_with};

use switchyard_platform::testing::{HttpResponse, get, http, text_stream};

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..150 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("switchyard dev did not exit within 15 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_runs_all_five_prints_the_key_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start(dir.path());
    let names: Vec<&str> = dev.ports.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "config-service",
            "flag-service",
            "experiment-service",
            "realtime-gateway",
            "presence-service"
        ]
    );
    assert!(dev.admin_key.starts_with("sy_"), "{}", dev.admin_key);

    let routes = [
        "/v1/config/info",
        "/v1/flags/info",
        "/v1/experiments/info",
        "/v1/realtime/info",
        "/v1/presence/info",
    ];
    for ((name, http_port, grpc_port), route) in dev.ports.iter().zip(routes) {
        let info = get(&format!("http://127.0.0.1:{http_port}{route}")).await;
        assert_eq!(info.status, 200, "{name}: {}", info.text());
        assert_eq!(info.json()["name"], name.as_str());
        assert_eq!(info.json()["grpcPort"], *grpc_port);
        assert_eq!(info.json()["storageBackend"], "sqlite");
        let metrics = get(&format!("http://127.0.0.1:{http_port}/metrics")).await;
        assert!(metrics.text().contains("switchyard_build_info"));
    }
    // The admin key authenticates (an unknown route is then 404, not 401).
    let bearer = format!("Bearer {}", dev.admin_key);
    let config_http = dev.ports[0].1;
    let authed = http(
        "GET",
        &format!("http://127.0.0.1:{config_http}/v1/config/info"),
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(authed.status, 200);

    let key_file = dir.path().join("data/admin-api-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(dir.path().join("data/config-service.db").exists());

    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success(), "exit code 0 after SIGTERM");

    let mut again = start(dir.path());
    assert_eq!(again.admin_key, dev.admin_key, "the key survives a restart");
    sigterm(&again.child);
    assert!(wait_exit(&mut again.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_serves_the_flags_files_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let flags = r#"{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "on"}}}"#;
    std::fs::write(dir.path().join("flags.json"), flags).unwrap();
    std::fs::write(
        dir.path().join("more.yaml"),
        "flags:\n  theme: {state: ENABLED, variants: {dark: dark}, defaultVariant: dark}\n",
    )
    .unwrap();
    let mut dev = start_with(dir.path(), &["--flags-file", "flags.json", "--flags-file", "more.yaml"]);
    let (_, _, grpc_port) = dev.ports.iter().find(|(name, _, _)| name == "flag-service").unwrap();
    let server = format!("http://127.0.0.1:{grpc_port}");
    let evaluate = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["flags", "--server", &server, "--output", "json"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let banner = evaluate(&["evaluate", "banner", "--selector", "flags.json"]);
    assert_eq!((&banner["value"], &banner["reason"]), (&true.into(), &"STATIC".into()));
    let all = evaluate(&["evaluate-all"]);
    let keys: Vec<&str> = all["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|evaluation| evaluation["flag"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["banner", "theme"], "both files are served");
    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success());
}

/// Runs the CLI in `dir` (where `switchyard dev` wrote its admin key and JWT secret).
fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Sends the request until it is answered with `status`, and returns that answer; the bound
/// only turns a change that never arrives into a failure.
async fn until(status: u16, method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http(method, url, headers, body.to_owned()).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} still answers {}: {}",
            answer.status,
            answer.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`until`] for `GET url` with `key`.
async fn until_status(url: &str, key: &str, status: u16) {
    until(status, "GET", url, &[("authorization", &format!("Bearer {key}"))], "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_created_in_dev_works_on_every_service_until_it_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start(dir.path());
    let (config_http, config_grpc) = port_of(&dev, "config-service");
    let (flags_http, _) = port_of(&dev, "flag-service");
    let server = format!("http://127.0.0.1:{config_grpc}");
    let created = cli(
        dir.path(),
        &[
            "keys", "--server", &server, "create", "--name", "ci", "--role", "viewer",
        ],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let text = String::from_utf8_lossy(&created.stdout).into_owned();
    let key = text.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    assert!(key.starts_with("sy_"), "{text}");

    let config_url = format!("http://127.0.0.1:{config_http}/v1/projects");
    let flags_url = format!("http://127.0.0.1:{flags_http}/v1/projects/shop/flags");
    until_status(&config_url, &key, 200).await;
    until_status(&flags_url, &key, 200).await;

    let listed = cli(dir.path(), &["keys", "--server", &server, "--output", "json", "list"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["displayName"], "ci");

    let revoked = cli(dir.path(), &["keys", "--server", &server, "revoke", &id]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    until_status(&config_url, &key, 401).await;
    until_status(&flags_url, &key, 401).await;

    let refused = cli(
        dir.path(),
        &["keys", "--server", &server, "create", "--name", "x", "--role", "owner"],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("roles[0]"));
    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dev_token_opens_the_users_private_channel_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start(dir.path());
    let (gateway_http, _) = port_of(&dev, "realtime-gateway");
    let token = |user: &str| {
        let output = cli(
            dir.path(),
            &["token", "--user", user, "--channel", "user#42", "--ttl", "1h"],
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let sse = |token: Option<String>| {
        let token = token.map(|token| format!("&token={token}")).unwrap_or_default();
        format!("http://127.0.0.1:{gateway_http}/realtime/sse?channel=user%2342{token}")
    };
    let mut own = text_stream(&sse(Some(token("42"))), &[]).await;
    assert_eq!(own.status, 200);
    own.read_until("\n\n").await;
    for refused in [sse(None), sse(Some(token("43")))] {
        let stream = text_stream(&refused, &[]).await;
        assert_eq!(stream.status, 403, "{refused}");
    }
    let published = http(
        "POST",
        &format!("http://127.0.0.1:{gateway_http}/v1/realtime/publish"),
        &[("authorization", &format!("Bearer {}", dev.admin_key))],
        r#"{"channel": "user#42", "data": {"order": 7, "status": "shipped"}}"#,
    )
    .await;
    assert_eq!(published.status, 200, "{}", published.text());
    own.read_until("shipped").await;

    let expired = cli(
        dir.path(),
        &["token", "--user", "42", "--channel", "user#42", "--ttl", "0s"],
    );
    assert!(!expired.status.success(), "a zero ttl is refused");
    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_connected_to_the_gateway_is_online_in_presence() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start(dir.path());
    let (gateway_http, _) = port_of(&dev, "realtime-gateway");
    let (_, presence_grpc) = port_of(&dev, "presence-service");
    let token = cli(dir.path(), &["token", "--user", "42", "--channel", "user#42"]);
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let url = format!("http://127.0.0.1:{gateway_http}/realtime/sse?channel=user%2342&token={token}");
    let mut stream = text_stream(&url, &[]).await;
    assert_eq!(stream.status, 200);
    stream.read_until("\n\n").await;
    let server = format!("http://127.0.0.1:{presence_grpc}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = cli(
            dir.path(),
            &["presence", "--server", &server, "--output", "json", "get", "42"],
        );
        assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
        let presences: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
        if presences[0]["online"] == true {
            assert_eq!(presences[0]["deviceCount"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never reported user 42: {presences}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let online = cli(dir.path(), &["presence", "--server", &server, "online"]);
    assert!(String::from_utf8_lossy(&online.stdout).contains("1 online in all"));
    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_flags_need_an_sdk_key_until_an_admin_makes_the_environment_public() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start(dir.path());
    let (config_http, config_grpc) = port_of(&dev, "config-service");
    let (flags_http, _) = port_of(&dev, "flag-service");
    let admin = format!("Bearer {}", dev.admin_key);
    let config = |path: &str| format!("http://127.0.0.1:{config_http}{path}");
    let created = http(
        "POST",
        &config("/v1/projects?projectId=shop&environmentIds=prod"),
        &[("authorization", &admin)],
        r#"{"displayName": "Shop"}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    let flag = r#"{"flagId": "banner", "flag": {"variants": {"on": true, "off": false}, "clientVisible": true,
        "environments": {"prod": {"enabled": true, "defaultVariant": "on"}}}}"#;
    let flags_url = format!("http://127.0.0.1:{flags_http}/v1/projects/shop/flags");
    let made = http("POST", &flags_url, &[("authorization", &admin)], flag).await;
    assert_eq!(made.status, 200, "{}", made.text());

    let ofrep = format!("http://127.0.0.1:{flags_http}/ofrep/v1/evaluate/flags/banner");
    let prod = ("flagd-selector", "projects/shop/environments/prod");
    let anonymous = http("POST", &ofrep, &[prod], "{}").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());

    // An SDK client key from the key store evaluates at once, without a selector.
    let server = format!("http://127.0.0.1:{config_grpc}");
    let role = "sdk-client:projects/shop/environments/prod";
    let created = cli(
        dir.path(),
        &["keys", "--server", &server, "create", "--name", "web", "--role", role],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let text = String::from_utf8_lossy(&created.stdout).into_owned();
    let sdk_key = text.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    let bearer = format!("Bearer {sdk_key}");
    let answer = until(200, "POST", &ofrep, &[("authorization", &bearer)], "{}").await;
    assert_eq!(answer.json()["value"], true);

    let environment = http(
        "GET",
        &config("/v1/projects/shop/environments/prod"),
        &[("authorization", &admin)],
        "",
    )
    .await;
    let body = format!(
        r#"{{"publicEvaluation": true, "updateMask": "publicEvaluation", "etag": {}}}"#,
        environment.json()["etag"]
    );
    let opened = http(
        "PATCH",
        &config("/v1/projects/shop/environments/prod"),
        &[("authorization", &admin)],
        body,
    )
    .await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let answer = until(200, "POST", &ofrep, &[prod], "{}").await;
    assert_eq!(answer.json()["value"], true);
    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success());
}

/// The gRPC services each dev service serves over HTTP.
const SERVED: &[(&str, &[&str])] = &[
    (
        "config-service",
        &[
            "switchyard.config.v1.ConfigService",
            "switchyard.config.v1.ApiKeyService",
            "switchyard.config.v1.DeliveryService",
            "switchyard.config.v1.GovernanceService",
        ],
    ),
    ("flag-service", &["switchyard.flags.v1.FlagService"]),
    ("experiment-service", &["switchyard.experiments.v1.ExperimentService"]),
    ("realtime-gateway", &["switchyard.realtime.v1.RealtimeService"]),
    ("presence-service", &["switchyard.presence.v1.PresenceService"]),
];

/// `Service_Method` of every `google.api.http` binding (additional bindings included) of
/// `service`, read straight from the descriptor set.
fn bindings(service: &str) -> Vec<String> {
    use prost::Message as _;
    let pool = switchyard_platform::descriptors();
    let extension = pool.get_extension_by_name("google.api.http").unwrap();
    let descriptor = pool.get_service_by_name(service).unwrap();
    let mut out = Vec::new();
    for method in descriptor.methods() {
        let options = method.options();
        if !options.has_extension(&extension) {
            continue;
        }
        let prost_reflect::Value::Message(rule) = options.get_extension(&extension).into_owned() else {
            continue;
        };
        let rule = switchyard_api::google::api::HttpRule::decode(rule.encode_to_vec().as_slice()).unwrap();
        let base = format!("{}_{}", descriptor.name(), method.name());
        out.push(base.clone());
        out.extend((1..=rule.additional_bindings.len()).map(|index| format!("{base}{index}")));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_http_binding_of_every_service_is_an_operation_of_its_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start(dir.path());
    for (name, services) in SERVED {
        let (http_port, _) = port_of(&dev, name);
        let document = get(&format!("http://127.0.0.1:{http_port}/openapi.json")).await.json();
        let mut operations: Vec<(String, String, String)> = Vec::new();
        for (path, verbs) in document["paths"].as_object().unwrap() {
            assert!(
                !path.contains('.') || path.contains(':'),
                "{name}: dotted parameter in {path}"
            );
            for (verb, operation) in verbs.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap().to_owned();
                operations.push((id, verb.clone(), path.clone()));
            }
        }
        let mut expected: Vec<String> = services.iter().flat_map(|service| bindings(service)).collect();
        let mut found: Vec<String> = operations.iter().map(|(id, _, _)| id.clone()).collect();
        expected.sort();
        found.sort();
        assert_eq!(found, expected, "{name}: one operation per binding");
        let info = operations
            .iter()
            .find(|(id, _, _)| id.ends_with("_GetServiceInfo"))
            .unwrap();
        let security = &document["paths"][&info.2][&info.1]["security"];
        assert_eq!(security, &serde_json::json!([]), "{name}: its info route is public");
    }
    let (config_http, _) = port_of(&dev, "config-service");
    let document = get(&format!("http://127.0.0.1:{config_http}/openapi.json"))
        .await
        .json();
    let get_config = &document["paths"]["/v1/projects/{project}/environments/{environment}/configs/{config}"]["get"];
    assert_eq!(get_config["operationId"], "ConfigService_GetConfig", "{get_config}");
    sigterm(&dev.child);
    assert!(wait_exit(&mut dev.child).success());
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["dev", "--help"],
        vec!["flags", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "generate", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["token", "--help"],
        vec!["migrate", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(&args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn keys_generate_prints_a_key_and_only_its_hash_for_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["keys", "generate", "--tenant", "acme", "--role", "editor:projects/shop"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let key = text.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert!(key.starts_with("sy_"));
    assert!(text.contains("[[auth.api_keys]]") && text.contains("sha256 = "));
    assert_eq!(
        text.matches(key).count(),
        1,
        "the plaintext appears once, never in the settings entry"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["keys", "generate", "--tenant", "a", "--role", "owner"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("owner"));

    for (tenant, role, named) in [
        ("", "viewer", "--tenant"),
        ("Acme Corp", "viewer", "--tenant"),
        ("acme", "editor:projects/../*", "projects/../*"),
        ("acme", "editor:projects/*", "projects/*"),
        ("acme", "editor:projects", "projects"),
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["keys", "generate", "--tenant", tenant, "--role", role])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{tenant:?} {role:?} was accepted");
        assert!(stderr.contains(named), "{tenant:?} {role:?}: {stderr}");
        assert!(refused.stdout.is_empty(), "no key is printed for a refused request");
    }
}
