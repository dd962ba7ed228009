//! What evaluations leave behind: usage counts per variant, the stale-flag report, and
//! exposure records for flags bound to experiments, delivered in batches on the Redis bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{evaluating, management, proto_struct, settings_with_keys, start_settings};
use switchyard_api::{
    flagd::evaluation::v2::{self, service_client::ServiceClient as V2Client},
    flags::v1 as pb,
};
use switchyard_platform::{bus::ChangeBus, testing};
use tokio_stream::StreamExt;

const PROD: &str = "projects/shop/environments/prod";

fn experiment_flag(experiment: Option<&str>) -> pb::Flag {
    let metadata = match experiment {
        Some(experiment) => json!({ "experiment": experiment }),
        None => json!({}),
    };
    pb::Flag {
        variants: proto_struct(json!({"control": "control", "treatment": "treatment"})),
        environments: [(
            "prod".to_owned(),
            pb::EnvironmentRules {
                enabled: true,
                default_variant: "control".into(),
                targeting: proto_struct(json!({"fractional": [["control", 50], ["treatment", 50]]})),
                ..Default::default()
            },
        )]
        .into(),
        metadata: proto_struct(metadata),
        ..Default::default()
    }
}

async fn evaluate(
    running: &switchyard_platform::Running,
    key: &str,
    flag: &str,
    targeting_key: &str,
) -> v2::ResolveStringResponse {
    let mut client = V2Client::new(testing::grpc_channel(running));
    let request = v2::ResolveStringRequest {
        flag_key: flag.into(),
        context: proto_struct(json!({"targetingKey": targeting_key})),
    };
    client
        .resolve_string(evaluating(key, request, PROD))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn usage_is_counted_per_variant_and_stale_flags_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = settings_with_keys(dir.path());
    settings.service.usage_flush_ms = 50;
    let database = settings.storage_url("flag-service");
    let (running, _shutdown) = start_settings(settings).await;
    let mut editor = management(&running, &keys.editor);
    for flag_id in ["used", "forgotten", "new"] {
        editor
            .create_flag(pb::CreateFlagRequest {
                parent: "projects/shop".into(),
                flag_id: flag_id.into(),
                flag: Some(experiment_flag(None)),
                message: String::new(),
            })
            .await
            .unwrap();
    }
    let mut served = std::collections::HashMap::<String, i64>::new();
    for user in 0..40 {
        let answer = evaluate(&running, &keys.sdk_server, "used", &format!("user-{user}")).await;
        *served.entry(answer.variant.unwrap()).or_default() += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let usage = editor
        .get_flag_usage(pb::GetFlagUsageRequest {
            name: "projects/shop/flags/used".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.environments.len(), 1);
    let counted: std::collections::HashMap<String, i64> = usage.environments[0]
        .variants
        .iter()
        .map(|variant| (variant.variant.clone(), variant.evaluations))
        .collect();
    assert_eq!(counted, served);
    assert!(usage.environments[0].last_evaluated.is_some());

    // Age two flags by 40 days, as if created then; only the one never evaluated since is stale.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();
    let old = 1_000_000_i64;
    sqlx::query("UPDATE flags SET created_ms = $1 WHERE flag_key IN ('used', 'forgotten')")
        .bind(old)
        .execute(&pool)
        .await
        .unwrap();
    let stale = editor
        .list_stale_flags(pb::ListStaleFlagsRequest {
            parent: "projects/shop".into(),
            stale_days: 30,
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = stale
        .flags
        .iter()
        .map(|flag| flag.flag.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["projects/shop/flags/forgotten"]);
    assert!(stale.flags[0].last_evaluated.is_none());
}

#[tokio::test]
async fn flags_bound_to_an_experiment_emit_exposures_in_batches_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = settings_with_keys(dir.path());
    settings.redis_url = Some(testing::redis_url());
    settings.service.exposure_batch = 10;
    settings.service.exposure_linger_ms = 50;
    let (running, _shutdown) = start_settings(settings).await;
    let bus = switchyard_platform::bus::RedisBus::connect(&testing::redis_url())
        .await
        .unwrap();
    let mut batches = bus.subscribe("flag-service.exposures").await.unwrap();

    let mut editor = management(&running, &keys.editor);
    let project = format!("exp{}", std::process::id());
    for (flag_id, experiment) in [("bound", Some("checkout-test")), ("plain", None)] {
        editor
            .create_flag(pb::CreateFlagRequest {
                parent: format!("projects/{project}"),
                flag_id: flag_id.into(),
                flag: Some(experiment_flag(experiment)),
                message: String::new(),
            })
            .await
            .unwrap();
    }
    let selector = format!("projects/{project}/environments/prod");
    let mut expected = Vec::new();
    for user in 0..25 {
        for flag in ["bound", "plain"] {
            let mut client = V2Client::new(testing::grpc_channel(&running));
            let request = v2::ResolveStringRequest {
                flag_key: flag.into(),
                context: proto_struct(json!({"targetingKey": format!("u{user}")})),
            };
            let answer = client
                .resolve_string(evaluating(&keys.sdk_server, request, &selector))
                .await
                .unwrap()
                .into_inner();
            if flag == "bound" {
                expected.push((format!("u{user}"), answer.variant.unwrap()));
            }
        }
    }
    let mut received = Vec::new();
    let mut batch_sizes = Vec::new();
    while received.len() < expected.len() {
        let message = tokio::time::timeout(Duration::from_secs(5), batches.next())
            .await
            .expect("an exposure batch")
            .unwrap();
        let lines: Vec<Value> = String::from_utf8_lossy(&message.payload)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        batch_sizes.push(lines.len());
        received.extend(
            lines
                .into_iter()
                .filter(|exposure| exposure["flagSet"] == json!(selector)),
        );
    }
    assert!(
        batch_sizes.iter().all(|size| *size <= 10),
        "batches of at most 10: {batch_sizes:?}"
    );
    let got: Vec<(String, String)> = received
        .iter()
        .map(|exposure| {
            (
                exposure["targetingKey"].as_str().unwrap().to_owned(),
                exposure["variant"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got, expected,
        "every evaluation of the bound flag, in order, and none of the plain one"
    );
    assert!(
        received
            .iter()
            .all(|exposure| exposure["experiment"] == "checkout-test" && exposure["tenant"] == "acme")
    );
}
