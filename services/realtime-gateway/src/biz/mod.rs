//! The domain of realtime-gateway: channels and who may use them, the hub that fans
//! publications out to connections, the broker contract (offsets, epochs, history), the
//! client protocol and each connection's session. Free of SQL, gRPC and HTTP; the brokers
//! live in `data/`, the transports in `service/`.

pub mod broker;
pub mod channel;
pub mod feeds;
pub mod gateway;
pub mod hub;
pub mod live;
pub mod metrics;
pub mod outbox;
pub mod presence;
pub mod presence_feed;
pub mod protocol;
pub mod publication;
pub mod replies;
pub mod session;
pub mod token_bucket;
