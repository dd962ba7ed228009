//! `switchyard flags` against a real flag-service started in this process: the binary is run
//! as an operator would, with the server, key and project in `SY_*` variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use switchyard_platform::{Running, Shutdown, auth::generate_api_key, testing};

struct Server {
    running: Running,
    shutdown: Shutdown,
    /// An admin key of tenant `acme`.
    admin: String,
    /// A viewer key of tenant `acme`.
    viewer: String,
    /// An SDK server key of `projects/shop/environments/dev`.
    sdk_dev: String,
    dir: tempfile::TempDir,
}

/// A flag-service on loopback with keys of tenant `acme`.
async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = testing::local(flag_service::conf::defaults(), &dir.path().join("data"));
    let mut add = |roles: &[&str]| {
        let key = generate_api_key("acme", roles);
        settings.auth.api_keys.push(key.record);
        key.plaintext
    };
    let (admin, viewer) = (add(&["admin"]), add(&["viewer"]));
    let sdk_dev = add(&["sdk-server:projects/shop/environments/dev"]);
    settings.service.anonymous_tenant = "acme".to_owned();
    let shutdown = Shutdown::new();
    let running = flag_service::start(settings, shutdown.clone()).await.unwrap();
    Server {
        running,
        shutdown,
        admin,
        viewer,
        sdk_dev,
        dir,
    }
}

impl Server {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .arg("flags")
            .args(args)
            .current_dir(self.dir.path())
            .env("SY_FLAG_SERVER", format!("http://{}", self.running.grpc_addr))
            .env("SY_API_KEY", &self.admin)
            .env("SY_PROJECT", "shop")
            .env_remove("RUST_BACKTRACE");
        command
    }

    /// Runs `command` off the runtime, so the service keeps answering.
    async fn output(&self, mut command: Command) -> Output {
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs `switchyard flags <args>`.
    async fn run(&self, args: &[&str]) -> Output {
        self.output(self.command(args)).await
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

    /// Runs and expects exit code 1; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    /// Writes `name` in the working directory and returns its name.
    fn file<'a>(&self, name: &'a str, content: &str) -> &'a str {
        std::fs::write(self.dir.path().join(name), content).unwrap();
        name
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.running.wait().await;
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

/// The value of `field` in `field  value` output.
fn field<'a>(text: &'a str, field: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(field).filter(|rest| rest.starts_with("  ")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in:\n{text}"))
}

const STAFF: &str = "description: Our own people\nrule: {ends_with: [{var: email}, \"@shop.example\"]}\n";

const CHECKOUT: &str = r#"
description: New checkout flow
owner: team-checkout
tags: [checkout]
variants: {new: "new", old: "old"}
environments:
  prod:
    enabled: true
    defaultVariant: old
    targeting: {if: [{$ref: staff}, new]}
  dev:
    enabled: true
    defaultVariant: new
"#;

/// Segment `staff` and flag `new-checkout` (dev: new for everyone; prod: new for staff).
async fn create_checkout(server: &Server) {
    let staff = server.file("staff.yaml", STAFF);
    let created = server.ok(&["segments", "create", "staff", "--file", staff]).await;
    assert_eq!(created.trim(), "segment staff version 1");
    let file = server.file("checkout.yaml", CHECKOUT);
    let created = server
        .ok(&["create", "new-checkout", "--file", file, "-m", "launch"])
        .await;
    assert_eq!(created.trim(), "new-checkout version 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_set_kill_history_diff_and_rollback() {
    let server = start().await;
    create_checkout(&server).await;

    let got = server.ok(&["get", "new-checkout"]).await;
    assert_eq!(field(&got, "flag"), "new-checkout");
    assert_eq!(field(&got, "owner"), "team-checkout");
    assert_eq!(field(&got, "variants"), r#"new="new", old="old""#);
    assert_eq!(field(&got, "env dev"), "enabled, default new");
    assert_eq!(
        field(&got, "env prod"),
        r#"enabled, default old, targeting {"if":[{"$ref":"staff"},"new"]}"#
    );
    let got = json(&server.ok(&["get", "new-checkout", "--output", "json"]).await);
    assert_eq!(got["name"], "projects/shop/flags/new-checkout");
    assert_eq!(got["environments"]["prod"]["defaultVariant"], "old");

    let banner = server.file(
        "banner.yaml",
        "variants: {on: true, off: false}\nenvironments:\n  \
         prod: {enabled: true, defaultVariant: on, prerequisites: [{flag: new-checkout, variants: [new]}]}\n",
    );
    server.ok(&["create", "banner", "--file", banner]).await;
    let got = server.ok(&["get", "banner"]).await;
    assert_eq!(
        field(&got, "env prod"),
        "enabled, default on, requires new-checkout=new"
    );

    let listed = server.ok(&["list"]).await;
    assert_eq!(listed.lines().count(), 3, "a header and two flags: {listed}");
    let row = listed.lines().nth(2).unwrap();
    assert!(
        row.starts_with("new-checkout ") && row.contains("dev:on prod:on") && row.ends_with("New checkout flow"),
        "{listed}"
    );
    assert_eq!(
        server.ok(&["list", "--tag", "nothing"]).await.trim(),
        "no flags in projects/shop"
    );
    let active = json(&server.ok(&["list", "--lifecycle", "active", "--output", "json"]).await);
    assert_eq!(active["flags"].as_array().unwrap().len(), 2);

    let set = server
        .ok(&["set", "new-checkout", "--env", "dev", "--disable", "-m", "not yet"])
        .await;
    assert_eq!(set.trim(), "new-checkout version 2: dev disabled, default new");
    let killed = server
        .ok(&["kill", "new-checkout", "--env", "prod", "-m", "incident 42"])
        .await;
    assert_eq!(killed.trim(), "new-checkout version 3: killed in prod");

    let history = server.ok(&["history", "new-checkout"]).await;
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three versions: {history}");
    assert!(
        lines[0].starts_with("VERSION") && lines[0].ends_with("MESSAGE"),
        "{history}"
    );
    assert!(
        lines[1].starts_with("3 ") && lines[1].ends_with("incident 42"),
        "{history}"
    );
    assert!(lines[1].contains("apikey:"), "the author: {history}");
    assert!(lines[3].starts_with("1 ") && lines[3].ends_with("launch"), "{history}");

    let diff = server.ok(&["diff", "new-checkout", "2", "3"]).await;
    assert_eq!(diff.trim(), "~ $.environments.prod.enabled: true -> false");
    let diff = json(&server.ok(&["diff", "new-checkout", "1", "3", "--output", "json"]).await);
    assert_eq!(diff["changes"].as_array().unwrap().len(), 2, "{diff}");

    let rolled = server.ok(&["rollback", "new-checkout", "1", "-m", "back"]).await;
    assert_eq!(rolled.trim(), "new-checkout version 4");
    let got = server.ok(&["get", "new-checkout"]).await;
    assert!(field(&got, "env dev").starts_with("enabled"), "{got}");
    assert!(field(&got, "env prod").starts_with("enabled"), "{got}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn set_keeps_what_it_is_not_told_to_change_and_update_refuses_a_stale_etag() {
    let server = start().await;
    create_checkout(&server).await;
    let targeting = server.file("beta.json", r#"{"if": [{"var": "beta"}, "new"]}"#);
    server
        .ok(&[
            "set",
            "new-checkout",
            "--env",
            "staging",
            "--enable",
            "--default-variant",
            "old",
        ])
        .await;
    let set = server
        .ok(&["set", "new-checkout", "--env", "staging", "--targeting-file", targeting])
        .await;
    assert_eq!(
        set.trim(),
        r#"new-checkout version 3: staging enabled, default old, targeting {"if":[{"var":"beta"},"new"]}"#
    );
    let got = json(&server.ok(&["get", "new-checkout", "--output", "json"]).await);
    assert_eq!(
        got["environments"]["prod"]["defaultVariant"], "old",
        "other environments stay"
    );
    assert_eq!(got["description"], "New checkout flow");

    // `get --output json`, edited, goes back with its etag: stale once the flag has moved on.
    let mut edited = got.clone();
    edited["description"] = "Faster checkout".into();
    let file = server.file("edited.json", &edited.to_string());
    server.ok(&["set", "new-checkout", "--env", "dev", "--disable"]).await;
    let stale = server.fails(&["update", "new-checkout", "--file", file]).await;
    assert!(stale.contains("Aborted") && stale.contains("changed"), "{stale}");
    let forced = server
        .ok(&["update", "new-checkout", "--file", file, "--etag", "4"])
        .await;
    assert_eq!(forced.trim(), "new-checkout version 5");
    let got = server.ok(&["get", "new-checkout"]).await;
    assert_eq!(field(&got, "description"), "Faster checkout");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn evaluate_shows_the_value_variant_and_reason() {
    let server = start().await;
    create_checkout(&server).await;
    let context = r#"{"email": "ana@shop.example"}"#;
    let staff = server
        .ok(&["evaluate", "new-checkout", "--env", "prod", "--context", context])
        .await;
    assert_eq!(field(&staff, "value"), r#""new""#);
    assert_eq!(field(&staff, "variant"), "new");
    assert_eq!(field(&staff, "reason"), "TARGETING_MATCH");

    let customer = server.file("customer.yaml", "email: bob@example.com\ntargetingKey: bob\n");
    let evaluated = server
        .ok(&[
            "evaluate",
            "new-checkout",
            "--selector",
            "projects/shop/environments/prod",
            "--context-file",
            customer,
            "--type",
            "string",
            "--output",
            "json",
        ])
        .await;
    let evaluated = json(&evaluated);
    assert_eq!(
        (&evaluated["value"], &evaluated["variant"], &evaluated["reason"]),
        (&"old".into(), &"old".into(), &"DEFAULT".into())
    );

    // Managed flags need a key: without one the CLI says so; an SDK key of the environment
    // evaluates.
    let mut anonymous = server.command(&["evaluate-all", "--env", "dev"]);
    anonymous.env_remove("SY_API_KEY");
    let output = server.output(anonymous).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("SDK key"));
    let mut sdk = server.command(&["evaluate-all", "--env", "dev"]);
    sdk.env("SY_API_KEY", &server.sdk_dev);
    let output = server.output(sdk).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["FLAG", "VALUE", "VARIANT", "REASON"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["new-checkout", "\"new\"", "new", "STATIC"]
    );

    let mismatch = server
        .fails(&["evaluate", "new-checkout", "--env", "prod", "--type", "boolean"])
        .await;
    assert!(mismatch.contains("TYPE_MISMATCH"), "{mismatch}");

    server.ok(&["kill", "new-checkout", "--all"]).await;
    let killed = server.ok(&["evaluate", "new-checkout", "--env", "dev"]).await;
    assert_eq!(field(&killed, "value"), "(caller's default)");
    assert_eq!(field(&killed, "reason"), "DISABLED");

    let unknown = server.fails(&["evaluate", "ghost", "--env", "dev"]).await;
    assert!(
        unknown.contains("ghost") && unknown.contains("FLAG_NOT_FOUND"),
        "{unknown}"
    );
    let bad_context = server.fails(&["evaluate", "new-checkout", "--context", "[1]"]).await;
    assert!(bad_context.contains("--context must be a JSON object"), "{bad_context}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_environment_imports_into_another() {
    let server = start().await;
    create_checkout(&server).await;
    let stdout = json(&server.ok(&["export", "--env", "prod"]).await);
    assert_eq!(stdout["flags"]["new-checkout"]["defaultVariant"], "old");
    assert_eq!(
        stdout["$evaluators"]["staff"],
        serde_json::json!({"ends_with": [{"var": "email"}, "@shop.example"]})
    );

    let wrote = server.run(&["export", "--env", "prod", "-o", "prod.json"]).await;
    assert!(wrote.status.success());
    assert_eq!(String::from_utf8_lossy(&wrote.stderr).trim(), "wrote prod.json");
    let written = json(&std::fs::read_to_string(server.dir.path().join("prod.json")).unwrap());
    assert_eq!(written, stdout);

    let imported = server
        .ok(&["import", "--env", "staging", "prod.json", "-m", "copy prod"])
        .await;
    assert_eq!(
        imported.trim(),
        "imported 1 flag(s) into projects/shop/environments/staging"
    );
    let context = r#"{"email": "ana@shop.example"}"#;
    let copy = server
        .ok(&["evaluate", "new-checkout", "--env", "staging", "--context", context])
        .await;
    assert_eq!(field(&copy, "reason"), "TARGETING_MATCH");
    let round_trip = json(&server.ok(&["export", "--env", "staging"]).await);
    assert_eq!(round_trip["flags"], stdout["flags"]);

    let broken = server.file("broken.json", r#"{"flags": {"x": {"state": "ON"}}}"#);
    let refused = server.fails(&["import", "--env", "dev", broken]).await;
    assert!(refused.contains("InvalidArgument"), "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_are_listed_shown_updated_and_deleted_when_unused() {
    let server = start().await;
    create_checkout(&server).await;
    let listed = server.ok(&["segments", "list"]).await;
    assert!(listed.lines().nth(1).unwrap().starts_with("staff "), "{listed}");
    let shown = server.ok(&["segments", "get", "staff"]).await;
    assert_eq!(
        field(&shown, "rule"),
        r#"{"ends_with":[{"var":"email"},"@shop.example"]}"#
    );

    let wider = server.file(
        "wider.json",
        r#"{"description": "Staff and friends", "rule": {"ends_with": [{"var": "email"}, ".example"]}}"#,
    );
    let updated = server.ok(&["segments", "update", "staff", "--file", wider]).await;
    assert_eq!(updated.trim(), "segment staff version 2");
    let friend = server
        .ok(&[
            "evaluate",
            "new-checkout",
            "--env",
            "prod",
            "--context",
            r#"{"email": "x@friend.example"}"#,
        ])
        .await;
    assert_eq!(
        field(&friend, "reason"),
        "TARGETING_MATCH",
        "the flag follows its segment"
    );

    let in_use = server.fails(&["segments", "delete", "staff"]).await;
    assert!(in_use.contains("InvalidArgument"), "{in_use}");
    let unused = server.file("unused.yaml", "rule: {'==': [1, 1]}\n");
    server.ok(&["segments", "create", "everyone", "--file", unused]).await;
    let deleted = server.ok(&["segments", "delete", "everyone"]).await;
    assert_eq!(deleted.trim(), "deleted segment everyone");
    let gone = server.fails(&["segments", "get", "everyone"]).await;
    assert!(
        gone.contains("NotFound") && gone.contains("projects/shop/segments/everyone"),
        "{gone}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_clear_error_and_exits_1() {
    let server = start().await;
    let malformed = server.file("malformed.json", r#"{"description": "x", "#);
    let error = server.fails(&["create", "x", "--file", malformed]).await;
    assert!(error.contains("malformed.json is not valid JSON"), "{error}");
    let misspelt = server.file("misspelt.yaml", "descripton: x\n");
    let error = server.fails(&["create", "x", "--file", misspelt]).await;
    assert!(
        error.contains("misspelt.yaml is not a flag definition") && error.contains("descripton"),
        "{error}"
    );
    let wrong_variant = server.file(
        "wrong.yaml",
        "variants: {on: true, off: false}\nenvironments: {dev: {enabled: true, defaultVariant: maybe}}\n",
    );
    let error = server.fails(&["create", "x", "--file", wrong_variant]).await;
    assert!(
        error.contains("InvalidArgument") && error.contains("\n  flag.environments.dev.defaultVariant: "),
        "the field the service names: {error}"
    );

    let unknown = server.fails(&["get", "ghost"]).await;
    assert!(unknown.contains("NotFound") && unknown.contains("ghost"), "{unknown}");
    let unknown = server.fails(&["set", "ghost", "--env", "dev", "--enable"]).await;
    assert!(unknown.contains("NotFound"), "{unknown}");
    let error = server.fails(&["get", "ghost", "--server", "http://127.0.0.1:1"]).await;
    assert!(
        error.contains("Unavailable") && error.contains("SY_FLAG_SERVER"),
        "{error}"
    );

    let mut no_project = server.command(&["list"]);
    no_project.env_remove("SY_PROJECT");
    let output = server.output(no_project).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no project: pass --project or set SY_PROJECT"));

    let nothing_to_change = server.run(&["set", "x", "--env", "dev"]).await;
    assert_eq!(nothing_to_change.status.code(), Some(2), "a usage error");
    let both = server.run(&["set", "x", "--env", "dev", "--enable", "--disable"]).await;
    assert_eq!(both.status.code(), Some(2), "a usage error");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_api_key_is_a_clear_error() {
    let server = start().await;
    let mut missing = server.command(&["list"]);
    missing.env_remove("SY_API_KEY");
    let output = server.output(missing).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no API key: pass --api-key, set SY_API_KEY"),
        "{stderr}"
    );

    let wrong = server.fails(&["list", "--api-key", "sy_nope_nope"]).await;
    assert!(
        wrong.contains("Unauthenticated") && wrong.contains("SY_API_KEY"),
        "{wrong}"
    );
    let file = server.file("flag.json", r#"{"variants": {"on": true}}"#);
    let mut viewer = server.command(&["create", "x", "--file", file]);
    viewer.env("SY_API_KEY", &server.viewer);
    let output = server.output(viewer).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PermissionDenied"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_lists_changes_newest_first() {
    let server = start().await;
    create_checkout(&server).await;
    let audit = server.ok(&["audit", "--resource", "projects/shop"]).await;
    let actions: Vec<&str> = audit
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(actions, ["flags.create", "segments.create"], "{audit}");
    let limited = json(&server.ok(&["audit", "--limit", "1", "--output", "json"]).await);
    assert_eq!(limited["records"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[test]
fn flags_help_lists_and_documents_every_subcommand() {
    let help = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("flags")
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let top = help(&[]);
    let commands = [
        "list",
        "get",
        "create",
        "update",
        "set",
        "kill",
        "history",
        "diff",
        "rollback",
        "segments",
        "export",
        "import",
        "evaluate",
        "evaluate-all",
        "audit",
    ];
    for command in commands {
        assert!(
            top.contains(&format!("\n  {command} ")),
            "{command} missing from:\n{top}"
        );
        assert!(help(&[command]).contains("Usage"), "{command}");
    }
    for command in ["list", "get", "create", "update", "delete"] {
        assert!(help(&["segments", command]).contains("Usage"), "segments {command}");
    }
    assert!(
        help(&["create"]).contains("defaultVariant"),
        "create documents the file"
    );
    assert!(top.contains("SY_FLAG_SERVER") && top.contains("SY_PROJECT"), "{top}");
}
