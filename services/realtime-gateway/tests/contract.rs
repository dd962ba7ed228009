//! realtime-gateway on real sockets, held to the contract every service meets: boots, is healthy,
//! answers `GetServiceInfo` over gRPC and HTTP, runs on SQLite and on PostgreSQL with the
//! Redis bus, registers with Consul, and drains on shutdown.

use realtime_gateway::{conf::defaults, start};
use switchyard_platform::testing::Contract;

const CONTRACT: Contract = Contract {
    name: "realtime-gateway",
    grpc_service: "switchyard.realtime.v1.RealtimeService",
    info_route: "/v1/realtime/info",
};

#[tokio::test]
async fn boots_on_sqlite_answers_grpc_and_http_and_drains() {
    CONTRACT.boots_on_sqlite(defaults, start).await;
}

#[tokio::test]
async fn runs_on_postgres_with_the_redis_bus() {
    CONTRACT.runs_on_postgres_with_redis(defaults, start).await;
}

#[tokio::test]
async fn registers_with_consul_and_leaves_on_shutdown() {
    CONTRACT.registers_with_consul(defaults, start).await;
}
