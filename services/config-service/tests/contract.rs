//! config-service on real sockets: boots, is healthy, answers its first RPC over gRPC and HTTP,
//! runs on SQLite and on PostgreSQL with the Redis bus, registers with Consul, drains.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard_platform::{
    Shutdown,
    testing::{Contract, FakeConsul, local, with_postgres_and_redis},
};

const CONTRACT: Contract = Contract {
    name: "config-service",
    grpc_service: "switchyard.config.v1.ConfigService",
    info_route: "/v1/config/info",
};

#[tokio::test]
async fn boots_on_sqlite_answers_grpc_and_http_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let running = config_service::start(local(config_service::conf::defaults(), dir.path()), shutdown.clone())
        .await
        .unwrap();
    CONTRACT.check(running, shutdown, "sqlite", "in-process").await;
}

#[tokio::test]
async fn runs_on_postgres_with_the_redis_bus() {
    let dir = tempfile::tempdir().unwrap();
    let settings = with_postgres_and_redis(local(config_service::conf::defaults(), dir.path())).await;
    let shutdown = Shutdown::new();
    let running = config_service::start(settings, shutdown.clone()).await.unwrap();
    CONTRACT.check(running, shutdown, "postgres", "redis").await;
}

#[tokio::test]
async fn registers_with_consul_and_leaves_on_shutdown() {
    let consul = FakeConsul::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = local(config_service::conf::defaults(), dir.path());
    settings.consul = Some(switchyard_platform::settings::ConsulSettings {
        address: consul.url(),
        ..Default::default()
    });
    let shutdown = Shutdown::new();
    let running = config_service::start(settings, shutdown.clone()).await.unwrap();
    let registered = consul.payloads();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["Name"], "config-service");
    assert_eq!(registered[0]["Port"], running.grpc_addr.port());
    CONTRACT.check(running, shutdown, "sqlite", "in-process").await;
    assert_eq!(consul.deregistered().len(), 1, "deregistered on shutdown");
}
