//! The domain of presence-service, free of SQL, gRPC and HTTP: the record of a user and
//! their connections (`model`), how it looks from outside (`view`), the rules that change it
//! (`engine`), what storage must offer (`store`), the use cases (`tracker`) with the
//! records they wrote last (`record_cache`), watching
//! (`watch`) and input checks (`input`).

pub mod engine;
pub mod error;
pub mod input;
pub mod model;
pub mod record_cache;
pub mod store;
pub mod tracker;
pub mod view;
pub mod watch;
