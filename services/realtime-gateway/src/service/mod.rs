//! The faces of realtime-gateway: the gRPC server API (`api`), the WebSocket client
//! protocol (`websocket`), Server-Sent Events (`sse`) and the `/demo` page. Each maps its
//! wire format to the sessions and use cases in `biz`.

mod api;
mod sse;
mod websocket;

use std::sync::Arc;

use axum::{Router, response::Html, routing::get};
use switchyard_platform::shutdown::Shutdown;

pub use self::api::RealtimeServiceApi;
use crate::{biz::gateway::Gateway, data::AnyBroker};

/// What the HTTP transports share.
#[derive(Debug, Clone)]
pub struct Transport {
    pub gateway: Arc<Gateway<AnyBroker>>,
    pub shutdown: Shutdown,
}

/// `/realtime/websocket`, `/realtime/sse` and `/demo`, served on the HTTP port.
pub fn routes(transport: Transport) -> Router {
    Router::new()
        .route("/realtime/websocket", get(websocket::upgrade))
        .route("/realtime/sse", get(sse::stream))
        .route("/demo", get(|| async { Html(include_str!("demo.html")) }))
        .with_state(transport)
}
