//! Scheduled changes: applied at their wall-clock time in a named zone, once across replicas,
//! cancellable, and failed with a reason when they no longer fit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use support::{ManagementClient, evaluating, management, proto_struct, settings_with_keys, start_settings};
use switchyard_api::{
    flagd::evaluation::v2::{self, service_client::ServiceClient as V2Client},
    flags::v1 as pb,
};
use switchyard_platform::{Running, testing};
use tonic::Code;

const PROD: &str = "projects/shop/environments/prod";
const FLAG: &str = "projects/shop/flags/sale";

fn sale(default: &str) -> pb::Flag {
    pb::Flag {
        variants: proto_struct(json!({"on": "on", "off": "off"})),
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
    }
}

async fn create_sale(editor: &mut ManagementClient) {
    editor
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "sale".into(),
            flag: Some(sale("off")),
            message: String::new(),
        })
        .await
        .unwrap();
}

/// Local wall-clock time in Dhaka, `seconds` from now.
fn dhaka_in(seconds: i64) -> String {
    let zone: chrono_tz::Tz = "Asia/Dhaka".parse().unwrap();
    (Utc::now() + chrono::Duration::seconds(seconds))
        .with_timezone(&zone)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn schedule(at: String, time_zone: &str, default: &str) -> pb::ScheduleFlagChangeRequest {
    pb::ScheduleFlagChangeRequest {
        name: FLAG.into(),
        at,
        time_zone: time_zone.into(),
        environments: [(
            "prod".to_owned(),
            pb::EnvironmentRules {
                enabled: true,
                default_variant: default.into(),
                ..Default::default()
            },
        )]
        .into(),
        message: "flash sale".into(),
    }
}

async fn served(running: &Running, key: &str) -> Option<String> {
    let mut client = V2Client::new(testing::grpc_channel(running));
    let request = v2::ResolveStringRequest {
        flag_key: "sale".into(),
        context: None,
    };
    client
        .resolve_string(evaluating(key, request, PROD))
        .await
        .unwrap()
        .into_inner()
        .value
}

#[tokio::test]
async fn a_change_applies_at_its_local_time_in_asia_dhaka() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = settings_with_keys(dir.path());
    settings.service.schedule_poll_ms = 50;
    let (running, _shutdown) = start_settings(settings).await;
    let mut editor = management(&running, &keys.editor);
    create_sale(&mut editor).await;

    let scheduled = editor
        .schedule_flag_change(schedule(dhaka_in(2), "Asia/Dhaka", "on"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (scheduled.state.as_str(), scheduled.time_zone.as_str()),
        ("pending", "Asia/Dhaka")
    );
    let due = scheduled.due_time.unwrap();
    let until_due = due.seconds * 1000 + i64::from(due.nanos) / 1_000_000 - Utc::now().timestamp_millis();
    assert!((1_000..=2_100).contains(&until_due), "due in {until_due} ms");
    assert_eq!(served(&running, &keys.sdk_server).await.as_deref(), Some("off"));

    let started = Instant::now();
    while served(&running, &keys.sdk_server).await.as_deref() != Some("on") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the change was not applied"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let lateness = Utc::now().timestamp_millis() - (due.seconds * 1000 + i64::from(due.nanos) / 1_000_000);
    assert!(lateness < 1_000, "applied {lateness} ms after its time");

    let changes = editor
        .list_scheduled_changes(pb::ListScheduledChangesRequest { name: FLAG.into() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!((changes[0].state.as_str(), changes[0].applied_version), ("applied", 2));
    let versions = editor
        .list_flag_versions(pb::ListFlagVersionsRequest {
            name: FLAG.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert!(
        versions[0].author.starts_with("scheduler:apikey:"),
        "{}",
        versions[0].author
    );
    assert_eq!(versions[0].message, "flash sale");
}

#[tokio::test]
async fn pending_changes_cancel_and_bad_schedules_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, keys) = settings_with_keys(dir.path());
    let (running, _shutdown) = start_settings(settings).await;
    let mut editor = management(&running, &keys.editor);
    create_sale(&mut editor).await;

    let later = editor
        .schedule_flag_change(schedule("2099-01-01T09:00".into(), "Asia/Dhaka", "on"))
        .await
        .unwrap()
        .into_inner();
    let cancelled = editor
        .cancel_scheduled_change(pb::CancelScheduledChangeRequest {
            name: later.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, "cancelled");
    let again = editor
        .cancel_scheduled_change(pb::CancelScheduledChangeRequest { name: later.name })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    for (at, zone, field) in [
        ("2020-01-01T09:00", "Asia/Dhaka", "at"),
        ("2099-01-01T09:00", "Mars/Olympus", "time_zone"),
        ("2099-03-29T02:30", "Europe/Berlin", "at"),
        ("next tuesday", "Asia/Dhaka", "at"),
    ] {
        let error = editor
            .schedule_flag_change(schedule(at.into(), zone, "on"))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{at} {zone}");
        let details = tonic_types::StatusExt::get_details_bad_request(&error).unwrap();
        assert_eq!(details.field_violations[0].field, field, "{at} {zone}");
    }
    let wrong_variant = editor
        .schedule_flag_change(schedule("2099-01-01T09:00".into(), "Asia/Dhaka", "maybe"))
        .await
        .unwrap_err();
    assert_eq!(wrong_variant.code(), Code::InvalidArgument, "validated when scheduled");
    let viewer = management(&running, &keys.viewer)
        .schedule_flag_change(schedule("2099-01-01T09:00".into(), "Asia/Dhaka", "on"))
        .await
        .unwrap_err();
    assert_eq!(viewer.code(), Code::PermissionDenied);
    let listed = editor
        .list_scheduled_changes(pb::ListScheduledChangesRequest { name: FLAG.into() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(listed.len(), 1, "refused schedules left nothing behind");
}

#[tokio::test]
async fn a_change_that_no_longer_fits_fails_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, keys) = settings_with_keys(dir.path());
    settings.service.schedule_poll_ms = 50;
    let (running, _shutdown) = start_settings(settings).await;
    let mut editor = management(&running, &keys.editor);
    create_sale(&mut editor).await;
    editor
        .create_segment(pb::CreateSegmentRequest {
            parent: "projects/shop".into(),
            segment_id: "vip".into(),
            segment: Some(pb::Segment {
                rule: proto_struct(json!({"==": [{"var": "tier"}, "vip"]})),
                ..Default::default()
            }),
            message: String::new(),
        })
        .await
        .unwrap();
    let mut request = schedule(dhaka_in(1), "Asia/Dhaka", "off");
    request.environments.get_mut("prod").unwrap().targeting = proto_struct(json!({"if": [{"$ref": "vip"}, "on"]}));
    editor.schedule_flag_change(request).await.unwrap();
    // Nothing refers to the segment yet, so it can go — and the scheduled rules lose it.
    editor
        .delete_segment(pb::DeleteSegmentRequest {
            name: "projects/shop/segments/vip".into(),
            message: String::new(),
        })
        .await
        .unwrap();

    let started = Instant::now();
    loop {
        let changes = editor
            .list_scheduled_changes(pb::ListScheduledChangesRequest { name: FLAG.into() })
            .await
            .unwrap()
            .into_inner()
            .changes;
        if changes[0].state == "failed" {
            assert!(changes[0].failure.contains("vip"), "{}", changes[0].failure);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {}",
            changes[0].state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        served(&running, &keys.sdk_server).await.as_deref(),
        Some("off"),
        "nothing was half-applied"
    );
}

#[tokio::test]
async fn two_replicas_apply_a_change_exactly_once() {
    let database = testing::fresh_postgres_database().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (mut settings, keys) = settings_with_keys(dirs[0].path());
    settings.storage.url = database.clone();
    settings.redis_url = Some(testing::redis_url());
    settings.service.schedule_poll_ms = 10;
    let mut replicas = Vec::new();
    for dir in &dirs {
        let mut replica = settings.clone();
        replica.data_dir = dir.path().to_path_buf();
        replicas.push(start_settings(replica).await);
    }
    let mut editor = management(&replicas[0].0, &keys.editor);
    create_sale(&mut editor).await;
    editor
        .schedule_flag_change(schedule(dhaka_in(1), "Asia/Dhaka", "on"))
        .await
        .unwrap();
    let started = Instant::now();
    for (running, _) in &replicas {
        while served(running, &keys.sdk_server).await.as_deref() != Some("on") {
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let versions = editor
        .list_flag_versions(pb::ListFlagVersionsRequest {
            name: FLAG.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 2, "created once, changed once");
}
