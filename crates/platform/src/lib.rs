//! What every Switchyard service gets for free. A service crate builds its domain parts
//! and hands its gRPC services to [`server::Host`]; everything else — settings, telemetry,
//! both ports, HTTP transcoding, auth, limits, storage, the change bus, discovery and
//! graceful shutdown — lives here, once.

pub mod about;
pub mod announce;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod clock;
pub mod discovery;
pub mod error;
pub mod json;
pub mod metrics;
pub mod names;
pub mod page_token;
pub mod protection;
pub mod proto_json;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transcode;

/// mimalloc for every binary that links the platform (each service, `switchyard dev`, their
/// tests). A request allocates and frees many short-lived buffers across worker threads; under
/// load glibc's malloc took a fifth of flag-service's CPU (perf, largely free-list
/// consolidation), mimalloc's thread-local free lists a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use server::{GrpcServices, Host, Running, StartError};
pub use settings::{ServiceIdentity, Settings};
pub use shutdown::Shutdown;

/// The descriptor pool of every Switchyard API, decoded once.
pub fn descriptors() -> prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptor set is generated at build time from our own protos; failing to
        // decode it is a build defect, caught by every test that starts a server.
        prost_reflect::DescriptorPool::decode(switchyard_api::FILE_DESCRIPTOR_SET).unwrap_or_default()
    })
    .clone()
}
