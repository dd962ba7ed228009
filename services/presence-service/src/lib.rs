//! presence-service: who is online, on which devices and pages, last seen, and presence events.
//!
//! Layering: `biz/` holds the domain and knows nothing of SQL or gRPC, `data/`
//! implements biz's repositories on the database, `service/` maps protobuf to biz and
//! errors to statuses, and `server.rs` wires them onto the platform host.

pub mod biz;
pub mod conf;
pub mod data;
pub mod server;
pub mod service;

use switchyard_platform::{Running, Shutdown, StartError};

/// Starts the service and returns once both ports are serving; tests and
/// `switchyard dev` use this to learn the bound addresses.
pub async fn start(settings: conf::Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    server::start(settings, shutdown).await
}

/// Runs the service until `shutdown` is triggered and every call has drained.
pub async fn run(settings: conf::Settings, shutdown: Shutdown) -> Result<(), StartError> {
    start(settings, shutdown).await?.wait().await;
    Ok(())
}
