//! Guardrails from outside: a running experiment whose guardrail metric shows harm, or whose
//! traffic is skewed (SRM), stops itself — its flag serves the control variant, the stop is
//! versioned with the figures, the webhook hears of it — and starts again only with a
//! reason. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, Service, service};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

const EXPERIMENT: &str = "/v1/projects/shop/experiments/checkout";

async fn post(service: &Service, key: &str, path: &str, body: Value) -> Value {
    let (status, answer) = service.call(key, "POST", path, &body.to_string()).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// A webhook receiver on loopback: each POST's JSON body arrives on the channel.
async fn webhook() -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/experiments", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 8192];
            // Reads until the body announced by content-length is in.
            loop {
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        let body = &request[end + 4..end + 4 + length];
                        let _ = sender.send(serde_json::from_slice(body).unwrap_or(Value::Null));
                        break;
                    }
                }
            }
            let _ = socket
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, receiver)
}

/// A running experiment on flag `checkout` with a binomial `errors` guardrail.
async fn running(service: &Service, webhook: &str, guardrail: bool) {
    let editor = &service.keys.editor;
    service.create_flag("checkout", &["control", "treatment"]).await;
    for (id, event) in [("purchase", "purchase"), ("errors", "error")] {
        let metric = json!({"metricId": id, "metric": {"type": "METRIC_TYPE_BINOMIAL", "event": event, "inverse": id == "errors"}});
        post(service, editor, "/v1/projects/shop/metrics", metric).await;
    }
    let guardrails: Vec<&str> = if guardrail { vec!["errors"] } else { vec![] };
    let experiment = json!({"experimentId": "checkout", "experiment": {
        "flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
        "primaryMetrics": ["purchase"], "guardrailMetrics": guardrails,
        "notificationWebhook": webhook}});
    post(service, editor, "/v1/projects/shop/experiments", experiment).await;
    post(
        service,
        &service.keys.publisher,
        &format!("{EXPERIMENT}:start"),
        json!({"message": "launch"}),
    )
    .await;
}

/// `units` exposures, `control_share` of every ten to control, interleaved as real traffic
/// arrives; errors for the share of each arm's units given.
async fn traffic(service: &Service, units: usize, control_share: usize, error_rate: (f64, f64)) {
    let editor = &service.keys.editor;
    let in_control = |i: usize| i % 10 < control_share;
    let exposures: Vec<Value> = (0..units)
        .map(|i| {
            json!({"id": format!("x{i}"), "experiment": "checkout", "unit": format!("u{i}"),
            "variant": if in_control(i) { "control" } else { "treatment" }, "environment": "prod"})
        })
        .collect();
    for chunk in exposures.chunks(1000) {
        post(
            service,
            editor,
            "/v1/projects/shop/exposures:log",
            json!({"exposures": chunk}),
        )
        .await;
    }
    let events: Vec<Value> = (0..units)
        .filter(|&i| {
            let rate = if in_control(i) { error_rate.0 } else { error_rate.1 };
            // Deterministic: the first `rate` share of every hundred units errs.
            ((i / 10 % 100) as f64) < rate * 100.0
        })
        .map(|i| json!({"id": format!("e{i}"), "name": "error", "unit": format!("u{i}")}))
        .collect();
    for chunk in events.chunks(1000) {
        post(
            service,
            editor,
            "/v1/projects/shop/events:log",
            json!({"events": chunk}),
        )
        .await;
    }
}

/// Waits for the experiment to reach `state`; the deadline only guards against hanging.
async fn until_state(service: &Service, state: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (status, experiment) = service.call(&service.keys.viewer, "GET", EXPERIMENT, "").await;
        assert_eq!(status, 200, "{experiment}");
        if experiment["state"] == state {
            return experiment;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached {state}: {experiment}"
        );
        // Not a timing assertion: only spacing the polls.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_harmful_treatment_stops_itself_and_resumes_only_with_a_reason(backend: Backend) {
    let service = service(backend).await;
    let (url, mut hook) = webhook().await;
    running(&service, &url, true).await;
    // Treatment errs for 30% of its units, control for 5%.
    traffic(&service, 2_000, 5, (0.05, 0.30)).await;

    let stopped = until_state(&service, "EXPERIMENT_STATE_STOPPED").await;
    let decision = &stopped["decision"];
    assert_eq!(decision["actor"], "guardrail", "{stopped}");
    assert_eq!(decision["type"], "DECISION_TYPE_ROLL_BACK", "{stopped}");
    let reason = decision["reason"].as_str().unwrap();
    assert!(reason.contains("errors") && reason.contains("treatment"), "{reason}");

    // The flag serves the control variant to every unit of the experiment (written right
    // after the stop; the deadline only guards against hanging).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let flag = service.flag("checkout").await;
        if flag["environments"]["prod"]["targeting"]["if"][1] == "control" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the flag never went back: {flag}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The stop is a version of its own, by `guardrail`, with the figures.
    let (_, versions) = service
        .call(&service.keys.viewer, "GET", &format!("{EXPERIMENT}/versions"), "")
        .await;
    let stop = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|version| version["action"] == "stop")
        .unwrap_or_else(|| panic!("no stop version: {versions}"));
    assert_eq!(stop["author"], "guardrail", "{stop}");
    assert!(stop["message"].as_str().unwrap().contains("effect"), "{stop}");

    let notice = hook.recv().await.unwrap();
    assert_eq!(notice["type"], "experiment_stopped", "{notice}");
    assert_eq!(notice["cause"], "guardrail", "{notice}");
    assert_eq!(notice["experiment"], "projects/shop/experiments/checkout", "{notice}");
    assert_eq!(notice["serving"], "control", "{notice}");

    // Starting it again needs a reason; with one it runs in a new phase.
    let start = format!("{EXPERIMENT}:start");
    let (status, answer) = service
        .call(&service.keys.publisher, "POST", &start, &json!({}).to_string())
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("say why"), "{answer}");
    let restarted = post(
        &service,
        &service.keys.publisher,
        &start,
        json!({"message": "error spike was an unrelated outage"}),
    )
    .await;
    assert_eq!(restarted["state"], "EXPERIMENT_STATE_RUNNING", "{restarted}");
    assert_eq!(restarted["phases"].as_array().unwrap().len(), 2, "{restarted}");
    service.stop().await;
}

async fn skewed_traffic_stops_the_experiment_on_srm(backend: Backend) {
    let service = service(backend).await;
    running(&service, "", false).await;
    // 1,200 units to control and 800 to treatment under 50/50 weights: p ≈ 2e-19.
    traffic(&service, 2_000, 6, (0.0, 0.0)).await;
    let stopped = until_state(&service, "EXPERIMENT_STATE_STOPPED").await;
    let reason = stopped["decision"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("sample ratio mismatch"), "{reason}");
    // It may stop before every exposure is in: the figures are those it saw then, 3 to 2.
    let count = |arm: &str| -> i64 {
        let at = reason.find(&format!("{arm} ")).unwrap() + arm.len() + 1;
        reason[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(count("control") * 2, count("treatment") * 3, "{reason}");
    // Another tenant sees nothing of it.
    let (status, _) = service.call(&service.keys.other_tenant, "GET", EXPERIMENT, "").await;
    assert_eq!(status, 404);
    service.stop().await;
}

async fn a_bad_webhook_is_refused(backend: Backend) {
    let service = service(backend).await;
    service.create_flag("checkout", &["control", "treatment"]).await;
    for webhook in [
        "https://hooks.example.com/x",
        "ftp://x",
        "http://",
        "http://a b/",
        "http://user@host/",
    ] {
        let experiment = json!({"experimentId": "checkout", "experiment": {
            "flag": "checkout", "environments": ["prod"],
            "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
            "notificationWebhook": webhook}});
        let (status, answer) = service
            .call(
                &service.keys.editor,
                "POST",
                "/v1/projects/shop/experiments",
                &experiment.to_string(),
            )
            .await;
        assert_eq!(status, 400, "{webhook}: {answer}");
        assert!(answer.to_string().contains("notification_webhook"), "{answer}");
    }
    service.stop().await;
}

on_both_backends!(
    a_harmful_treatment_stops_itself_and_resumes_only_with_a_reason,
    skewed_traffic_stops_the_experiment_on_srm,
    a_bad_webhook_is_refused,
);
