//! Flag management over gRPC against real storage: flags with per-environment rules, segments,
//! history, rollback, the kill switch, import/export, roles, tenants and bad input — and the
//! evaluation protocols serving every change at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Keys, ManagementClient, evaluating, management, proto_struct, settings_with_keys, start_settings, with_selector,
};
use switchyard_api::{
    flagd::evaluation::v2::{self, service_client::ServiceClient as V2Client},
    flags::v1::{self as pb},
};
use switchyard_platform::{Running, testing};
use tokio_stream::StreamExt;
use tonic::Code;

const PROD: &str = "projects/shop/environments/prod";
const DEV: &str = "projects/shop/environments/dev";

struct Fixture {
    running: Running,
    keys: Keys,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (settings, keys) = settings_with_keys(dir.path());
        let (running, _shutdown) = start_settings(settings).await;
        Self {
            running,
            keys,
            _dir: dir,
        }
    }

    fn client(&self, key: &str) -> ManagementClient {
        management(&self.running, key)
    }

    fn editor(&self) -> ManagementClient {
        self.client(&self.keys.editor)
    }

    async fn resolve(
        &self,
        selector: &str,
        flag: &str,
        context: Value,
    ) -> Result<v2::ResolveStringResponse, tonic::Status> {
        let mut client = V2Client::new(testing::grpc_channel(&self.running));
        let request = v2::ResolveStringRequest {
            flag_key: flag.into(),
            context: proto_struct(context),
        };
        client
            .resolve_string(evaluating(&self.keys.sdk_server, request, selector))
            .await
            .map(|response| response.into_inner())
    }
}

fn checkout_flag() -> pb::Flag {
    pb::Flag {
        description: "New checkout flow".into(),
        owner: "team-checkout".into(),
        tags: vec!["checkout".into()],
        variants: proto_struct(json!({"new": "new", "old": "old"})),
        environments: [
            (
                "prod".to_owned(),
                pb::EnvironmentRules {
                    enabled: true,
                    default_variant: "old".into(),
                    targeting: proto_struct(json!({"if": [{"$ref": "staff"}, "new"]})),
                    ..Default::default()
                },
            ),
            (
                "dev".to_owned(),
                pb::EnvironmentRules {
                    enabled: true,
                    default_variant: "new".into(),
                    ..Default::default()
                },
            ),
        ]
        .into(),
        ..Default::default()
    }
}

async fn create_staff_segment(client: &mut ManagementClient) {
    client
        .create_segment(pb::CreateSegmentRequest {
            parent: "projects/shop".into(),
            segment_id: "staff".into(),
            segment: Some(pb::Segment {
                description: "Our own people".into(),
                rule: proto_struct(json!({"ends_with": [{"var": "email"}, "@shop.com.bd"]})),
                ..Default::default()
            }),
            message: "staff first".into(),
        })
        .await
        .unwrap();
}

async fn create_checkout(client: &mut ManagementClient) -> pb::Flag {
    create_staff_segment(client).await;
    client
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "new-checkout".into(),
            flag: Some(checkout_flag()),
            message: "launch".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_created_flag_is_served_per_environment_with_its_segment() {
    let fixture = Fixture::sqlite().await;
    let created = create_checkout(&mut fixture.editor()).await;
    assert_eq!(
        (created.name.as_str(), created.version, created.etag.as_str()),
        ("projects/shop/flags/new-checkout", 1, "1")
    );

    let staff = fixture
        .resolve(PROD, "new-checkout", json!({"email": "ana@shop.com.bd"}))
        .await
        .unwrap();
    assert_eq!(
        (staff.value.as_deref(), staff.reason.as_str()),
        (Some("new"), "TARGETING_MATCH")
    );
    let customer = fixture
        .resolve(PROD, "new-checkout", json!({"email": "bob@gmail.com"}))
        .await
        .unwrap();
    assert_eq!(
        (customer.value.as_deref(), customer.reason.as_str()),
        (Some("old"), "DEFAULT")
    );
    let dev = fixture.resolve(DEV, "new-checkout", json!({})).await.unwrap();
    assert_eq!((dev.value.as_deref(), dev.reason.as_str()), (Some("new"), "STATIC"));
    let metadata = switchyard_platform::proto_json::from_proto_struct(&staff.metadata.unwrap());
    assert_eq!(metadata.get("flagSetId"), Some(&json!(PROD)));
}

#[tokio::test]
async fn updates_take_effect_at_once_and_stale_etags_are_refused() {
    let fixture = Fixture::sqlite().await;
    let mut editor = fixture.editor();
    let created = create_checkout(&mut editor).await;

    let mut events = V2Client::new(testing::grpc_channel(&fixture.running))
        .event_stream(evaluating(&fixture.keys.sdk_server, v2::EventStreamRequest {}, PROD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.next().await.unwrap().unwrap().r#type, "provider_ready");

    let mut flag = created.clone();
    flag.environments.get_mut("prod").unwrap().default_variant = "new".into();
    let updated = editor
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(flag.clone()),
            etag: created.etag.clone(),
            message: "everyone".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.r#type, "configuration_change");
    assert_eq!(updated.version, 2);
    let customer = fixture
        .resolve(PROD, "new-checkout", json!({"email": "bob@gmail.com"}))
        .await
        .unwrap();
    assert_eq!(
        customer.value.as_deref(),
        Some("new"),
        "the writer's replica serves the change before answering"
    );

    let stale = editor
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(flag),
            etag: created.etag,
            message: "late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
}

#[tokio::test]
async fn the_kill_switch_history_diff_and_rollback() {
    let fixture = Fixture::sqlite().await;
    let mut editor = fixture.editor();
    create_checkout(&mut editor).await;
    let killed = editor
        .kill_flag(pb::KillFlagRequest {
            name: "projects/shop/flags/new-checkout".into(),
            environments: vec!["prod".into()],
            message: "incident 42".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!killed.environments["prod"].enabled);
    assert!(
        killed.environments["dev"].enabled,
        "only the named environment is killed"
    );
    let served = fixture
        .resolve(PROD, "new-checkout", json!({"email": "ana@shop.com.bd"}))
        .await
        .unwrap();
    assert_eq!((served.value, served.reason.as_str()), (None, "DISABLED"));

    let versions = editor
        .list_flag_versions(pb::ListFlagVersionsRequest {
            name: "projects/shop/flags/new-checkout".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    let summary: Vec<(i64, &str)> = versions
        .iter()
        .map(|version| (version.version, version.message.as_str()))
        .collect();
    assert_eq!(summary, [(2, "incident 42"), (1, "launch")]);
    assert!(versions[0].author.starts_with("apikey:"), "{}", versions[0].author);

    let diff = editor
        .diff_flag_versions(pb::DiffFlagVersionsRequest {
            name: "projects/shop/flags/new-checkout".into(),
            from_version: 1,
            to_version: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(diff.len(), 1);
    assert_eq!(
        (diff[0].path.as_str(), diff[0].kind.as_str()),
        ("$.environments.prod.enabled", "changed")
    );

    let restored = editor
        .rollback_flag(pb::RollbackFlagRequest {
            name: "projects/shop/flags/new-checkout".into(),
            version: 1,
            message: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restored.version, 3);
    assert!(restored.environments["prod"].enabled);
    let served = fixture
        .resolve(PROD, "new-checkout", json!({"email": "ana@shop.com.bd"}))
        .await
        .unwrap();
    assert_eq!(served.value.as_deref(), Some("new"));
}

#[tokio::test]
async fn segments_cannot_dangle_and_rules_are_validated_at_their_field() {
    let fixture = Fixture::sqlite().await;
    let mut editor = fixture.editor();
    create_checkout(&mut editor).await;
    let referenced = editor
        .delete_segment(pb::DeleteSegmentRequest {
            name: "projects/shop/segments/staff".into(),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(referenced.code(), Code::InvalidArgument);
    assert!(referenced.message().contains("invalid") || !referenced.details().is_empty());

    let mut flag = checkout_flag();
    flag.environments.get_mut("prod").unwrap().targeting = proto_struct(json!({"if": [{"$ref": "nobody"}, "new"]}));
    let error = editor
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "other".into(),
            flag: Some(flag),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_details_bad_request(&error).unwrap();
    assert_eq!(details.field_violations[0].field, "flag.environments.prod.targeting");

    let mut flag = checkout_flag();
    flag.environments.get_mut("dev").unwrap().default_variant = "nope".into();
    let error = editor
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "third".into(),
            flag: Some(flag),
            message: String::new(),
        })
        .await
        .unwrap_err();
    let details = tonic_types::StatusExt::get_details_bad_request(&error).unwrap();
    assert_eq!(
        details.field_violations[0].field,
        "flag.environments.dev.defaultVariant"
    );
}

#[tokio::test]
async fn roles_reach_only_their_environments_and_tenants_are_apart() {
    let fixture = Fixture::sqlite().await;
    let created = create_checkout(&mut fixture.editor()).await;

    let viewer = fixture
        .client(&fixture.keys.viewer)
        .get_flag(pb::GetFlagRequest {
            name: created.name.clone(),
        })
        .await;
    assert!(viewer.is_ok());
    let denied = fixture
        .client(&fixture.keys.viewer)
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "x".into(),
            flag: Some(checkout_flag()),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut dev_editor = fixture.client(&fixture.keys.dev_editor);
    let mut dev_change = created.clone();
    dev_change.environments.get_mut("dev").unwrap().enabled = false;
    assert!(
        dev_editor
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(dev_change),
                etag: String::new(),
                message: String::new()
            })
            .await
            .is_ok()
    );
    let current = dev_editor
        .get_flag(pb::GetFlagRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut prod_change = current.clone();
    prod_change.environments.get_mut("prod").unwrap().enabled = false;
    let error = dev_editor
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(prod_change),
            etag: String::new(),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let mut variant_change = current;
    variant_change.description = "changed".into();
    let error = dev_editor
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(variant_change),
            etag: String::new(),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "the flag's own fields need the project"
    );

    let other = fixture
        .client(&fixture.keys.other_tenant)
        .get_flag(pb::GetFlagRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        other.code(),
        Code::NotFound,
        "another tenant's flags do not exist for it"
    );
    let mut other_evaluation = V2Client::new(testing::grpc_channel(&fixture.running));
    let mut request = with_selector(
        v2::ResolveStringRequest {
            flag_key: "new-checkout".into(),
            context: None,
        },
        PROD,
    );
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", fixture.keys.other_tenant).parse().unwrap(),
    );
    assert_eq!(
        other_evaluation.resolve_string(request).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let fixture = Fixture::sqlite().await;
    let mut editor = fixture.editor();
    for (parent, flag_id) in [
        ("projects/shop", "x'; DROP TABLE flags;--"),
        ("projects/../etc", "a"),
        ("shop", "a"),
        ("projects/shop", ""),
    ] {
        let error = editor
            .create_flag(pb::CreateFlagRequest {
                parent: parent.into(),
                flag_id: flag_id.into(),
                flag: Some(checkout_flag()),
                message: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{parent} {flag_id}");
    }
    let mut mixed = checkout_flag();
    mixed.variants = proto_struct(json!({"on": true, "off": "no"}));
    assert_eq!(
        editor
            .create_flag(pb::CreateFlagRequest {
                parent: "projects/shop".into(),
                flag_id: "mixed".into(),
                flag: Some(mixed),
                message: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut long = checkout_flag();
    long.description = "x".repeat(10_000);
    assert_eq!(
        editor
            .create_flag(pb::CreateFlagRequest {
                parent: "projects/shop".into(),
                flag_id: "long".into(),
                flag: Some(long),
                message: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut bad_lifecycle = checkout_flag();
    bad_lifecycle.lifecycle = 42;
    assert_eq!(
        editor
            .create_flag(pb::CreateFlagRequest {
                parent: "projects/shop".into(),
                flag_id: "life".into(),
                flag: Some(bad_lifecycle),
                message: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    assert_eq!(
        editor
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: "projects/shop/flags/ghost".into(),
                    ..checkout_flag()
                }),
                etag: String::new(),
                message: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        editor
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: "projects/shop/flags/ghost".into(),
                    ..checkout_flag()
                }),
                etag: "W/zz".into(),
                message: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    let listed = editor
        .list_flags(pb::ListFlagsRequest {
            parent: "projects/shop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.flags.is_empty(), "nothing was written");
    let unauthenticated = pb::flag_service_client::FlagServiceClient::new(testing::grpc_channel(&fixture.running))
        .list_flags(pb::ListFlagsRequest {
            parent: "projects/shop".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn export_and_import_round_trip_through_flagd_documents() {
    let fixture = Fixture::sqlite().await;
    let mut editor = fixture.editor();
    create_checkout(&mut editor).await;
    let exported = editor
        .export_flags(pb::ExportFlagsRequest { parent: PROD.into() })
        .await
        .unwrap()
        .into_inner()
        .document;
    let document: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(
        document["$evaluators"]["staff"],
        json!({"ends_with": [{"var": "email"}, "@shop.com.bd"]})
    );
    assert_eq!(document["flags"]["new-checkout"]["defaultVariant"], json!("old"));

    let imported = editor
        .import_flags(pb::ImportFlagsRequest {
            parent: "projects/store/environments/prod".into(),
            document: exported,
            message: "copy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.imported, 1);
    let copy = fixture
        .resolve(
            "projects/store/environments/prod",
            "new-checkout",
            json!({"email": "ana@shop.com.bd"}),
        )
        .await
        .unwrap();
    assert_eq!(copy.value.as_deref(), Some("new"));

    let yaml = "flags:\n  banner:\n    state: ENABLED\n    variants: {on: 'yes', off: 'no'}\n    defaultVariant: on\n";
    let imported = editor
        .import_flags(pb::ImportFlagsRequest {
            parent: DEV.into(),
            document: yaml.into(),
            message: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.imported, 1);
    let broken = editor
        .import_flags(pb::ImportFlagsRequest {
            parent: DEV.into(),
            document: "{\"flags\": {\"x\": {\"state\": \"ON\"}}}".into(),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(broken.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_audit_trail_records_every_change_for_admins() {
    let fixture = Fixture::sqlite().await;
    create_checkout(&mut fixture.editor()).await;
    let records = fixture
        .client(&fixture.keys.admin)
        .list_audit_records(pb::ListAuditRecordsRequest {
            resource_prefix: "projects/shop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let actions: Vec<&str> = records.iter().map(|record| record.action.as_str()).collect();
    assert_eq!(actions, ["flags.create", "segments.create"], "newest first");
    assert!(records[0].before_digest.is_empty() && records[0].after_digest.len() == 64);
    let denied = fixture
        .editor()
        .list_audit_records(pb::ListAuditRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_change_on_one_replica_reaches_the_other_through_redis() {
    let database = testing::fresh_postgres_database().await;
    let start = |dir: &std::path::Path| {
        let (mut settings, keys) = settings_with_keys(dir);
        settings.storage.url = database.clone();
        settings.redis_url = Some(testing::redis_url());
        settings.service.resync_interval_ms = 3_600_000; // only the bus can deliver within the test
        (settings, keys)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (settings_a, keys) = start(dir_a.path());
    let (settings_b, keys_b) = start(dir_b.path());
    let (a, _shutdown_a) = start_settings(settings_a).await;
    let (b, _shutdown_b) = start_settings(settings_b).await;

    let mut events = V2Client::new(testing::grpc_channel(&b))
        .event_stream(evaluating(&keys_b.sdk_server, v2::EventStreamRequest {}, PROD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.next().await.unwrap().unwrap().r#type, "provider_ready");

    let mut editor = management(&a, &keys.editor);
    create_checkout(&mut editor).await;
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.r#type, "configuration_change");
    let mut client = V2Client::new(testing::grpc_channel(&b));
    let served = client
        .resolve_string(evaluating(
            &keys_b.sdk_server,
            v2::ResolveStringRequest {
                flag_key: "new-checkout".into(),
                context: None,
            },
            PROD,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.value.as_deref(), Some("old"));
}

#[tokio::test]
async fn prerequisites_gate_rules_and_must_name_real_flags() {
    let fixture = Fixture::sqlite().await;
    let mut editor = fixture.editor();
    create_checkout(&mut editor).await;
    let wallet = |variants: Vec<String>| pb::Flag {
        variants: proto_struct(json!({"shown": "shown", "hidden": "hidden"})),
        environments: [(
            "prod".to_owned(),
            pb::EnvironmentRules {
                enabled: true,
                default_variant: "hidden".into(),
                targeting: proto_struct(json!({"if": [true, "shown"]})),
                prerequisites: vec![pb::Prerequisite {
                    flag: "new-checkout".into(),
                    variants,
                }],
            },
        )]
        .into(),
        ..Default::default()
    };
    editor
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "wallet".into(),
            flag: Some(wallet(vec!["new".into()])),
            message: String::new(),
        })
        .await
        .unwrap();
    let staff = fixture
        .resolve(PROD, "wallet", json!({"email": "ana@shop.com.bd"}))
        .await
        .unwrap();
    assert_eq!(
        staff.value.as_deref(),
        Some("shown"),
        "staff get the new checkout, so its prerequisite holds"
    );
    let customer = fixture
        .resolve(PROD, "wallet", json!({"email": "bob@gmail.com"}))
        .await
        .unwrap();
    assert_eq!(
        (customer.value.as_deref(), customer.reason.as_str()),
        (Some("hidden"), "DEFAULT")
    );

    let error = editor
        .create_flag(pb::CreateFlagRequest {
            parent: "projects/shop".into(),
            flag_id: "bad".into(),
            flag: Some(wallet(vec!["sideways".into()])),
            message: String::new(),
        })
        .await
        .unwrap_err();
    let details = tonic_types::StatusExt::get_details_bad_request(&error).unwrap();
    assert_eq!(
        details.field_violations[0].field,
        "flag.environments.prod.prerequisites"
    );
    assert!(details.field_violations[0].description.contains("sideways"));
}
