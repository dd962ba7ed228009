//! The domain of flag-service: types and use cases, free of SQL, gRPC and HTTP.
//!
//! Flags live in named sources (a flags file, later a project environment), compiled by
//! flag-engine. The [`catalog::Catalog`] holds them in memory and answers every evaluation
//! protocol from views selected the way flagd selects (`flagSetId=`, `source=`); watchers
//! follow it through [`feeds`].

pub mod access;
pub mod catalog;
pub mod error;
pub mod evaluation;
pub mod feeds;
pub mod management;
pub mod model;
pub mod prerequisites;
pub mod projection;
pub mod repository;
pub mod schedule;
pub mod selector;
pub mod usage;
