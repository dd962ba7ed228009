//! The domain of config-service: types and use cases, free of SQL, gRPC and HTTP. Repositories
//! are traits defined here and implemented in `data/`.

pub mod json_path;
pub mod secrets;
pub mod validation;
pub mod document;
pub mod merge;
pub mod diff;
pub mod catalog;
pub mod delivery;
pub mod error;
pub mod keystore;
pub mod model;
pub mod names;
pub mod publishing;
pub mod repository;
pub mod store;
pub mod archive;
