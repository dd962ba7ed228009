//! The audit trail: every mutation recorded, queryable, exportable as JSON lines, and a
//! hash chain that detects altered and removed records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Service, authed, create_yaml, publish, shop};
use switchyard_api::config::v1 as pb;
use switchyard_platform::testing;
use tonic::Code;

async fn verify(service: &Service) -> pb::VerifyAuditChainResponse {
    service
        .client()
        .verify_audit_chain(authed(&service.keys.admin, pb::VerifyAuditChainRequest {}))
        .await
        .unwrap()
        .into_inner()
}

async fn tamper(url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::Executor::execute(&mut connection, sql).await.unwrap();
}

async fn audited_changes(service: &Service) {
    shop(service).await;
    create_yaml(service, "app", "port: 1\n", "").await;
    publish(service, "app", "dev").await.unwrap();
}

async fn trail_is_queryable_and_detects_tampering(service: Service, database_url: String) {
    audited_changes(&service).await;
    let mut client = service.client();
    let all = client
        .list_audit_records(authed(&service.keys.admin, pb::ListAuditRecordsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<&str> = all.records.iter().rev().map(|record| record.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "project.create",
            "environment.update",
            "environment.update",
            "environment.update",
            "config.create",
            "config.publish"
        ]
    );
    let by_resource = client
        .list_audit_records(authed(
            &service.keys.admin,
            pb::ListAuditRecordsRequest {
                resource: "projects/shop/configs/app".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_resource.records.len(), 1);
    assert!(by_resource.records[0].actor.starts_with("apikey:"));
    let future = client
        .list_audit_records(authed(
            &service.keys.admin,
            pb::ListAuditRecordsRequest {
                start_time: "2999-01-01T00:00:00Z".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(future.records.is_empty(), "time range filters");
    let denied = client
        .list_audit_records(authed(&service.keys.publisher, pb::ListAuditRecordsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let lines = testing::http(
        "GET",
        &service.http("/v1/audit/records:export"),
        &[("authorization", &format!("Bearer {}", service.keys.admin))],
        "",
    )
    .await;
    assert_eq!(lines.status, 200);
    let exported: Vec<serde_json::Value> = lines
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(exported.len(), 6, "one JSON line per record");
    assert_eq!(exported[0]["action"], "project.create");

    let intact = verify(&service).await;
    assert!(intact.intact, "{}", intact.problem);
    assert_eq!(intact.records_checked, 6);

    tamper(
        &database_url,
        "UPDATE audit_log SET actor = 'mallory' WHERE sequence = 3",
    )
    .await;
    let altered = verify(&service).await;
    assert!(!altered.intact);
    assert_eq!(altered.first_bad_sequence, 3);
    assert!(altered.problem.contains("altered"), "{}", altered.problem);

    tamper(
        &database_url,
        "UPDATE audit_log SET actor = (SELECT actor FROM audit_log WHERE sequence = 2) WHERE sequence = 3",
    )
    .await;
    assert!(verify(&service).await.intact, "restored");
    tamper(&database_url, "DELETE FROM audit_log WHERE sequence = 6").await;
    let truncated = verify(&service).await;
    assert!(!truncated.intact, "a removed last record is detected");
    tamper(&database_url, "DELETE FROM audit_log WHERE sequence = 4").await;
    let gap = verify(&service).await;
    assert!(!gap.intact);
    assert_eq!(gap.first_bad_sequence, 4, "{}", gap.problem);
}

#[tokio::test]
async fn audit_trail_on_sqlite() {
    let service = support::sqlite().await;
    let url = format!(
        "sqlite://{}",
        service.settings.data_dir.join("config-service.db").display()
    );
    trail_is_queryable_and_detects_tampering(service, url).await;
}

#[tokio::test]
async fn audit_trail_on_postgres() {
    let service = support::postgres().await;
    let url = service.settings.storage.url.clone();
    trail_is_queryable_and_detects_tampering(service, url).await;
}
