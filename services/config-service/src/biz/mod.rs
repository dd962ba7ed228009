//! The domain of config-service: types and use cases, free of SQL, gRPC and HTTP. Repositories
//! are traits defined here and implemented in `data/`.

pub mod api_keys;
pub mod archive;
pub mod catalog;
pub mod changes;
pub mod delivery;
pub mod deployments;
pub use switchyard_platform::json::diff;
pub mod document;
pub mod environments;
pub mod error;
pub mod governance;
pub mod input;
pub use switchyard_platform::json::path as json_path;
pub mod keystore;
pub mod merge;
pub mod mirror;
pub mod model;
pub mod names;
pub mod publishing;
pub mod reading;
pub mod repository;
pub mod rule_cost;
pub mod secrets;
pub mod sightings;
pub mod staging;
pub mod store;
pub mod validation;
pub mod webhooks;
