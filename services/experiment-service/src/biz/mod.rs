//! The domain of experiment-service: types and use cases, free of SQL, gRPC and HTTP.
//!
//! An experiment ([`model`]) moves through its [`lifecycle`]; [`management`] holds the use
//! cases that check who may do what and write through the [`repository`]; [`ingest`]
//! takes exposures and metric events in, and the [`aggregator`] folds them into per-arm
//! sufficient statistics ([`unit_values`] says what each unit contributes), split by
//! [`dimensions`] when asked; [`guardrails`]
//! stop a running experiment that harms, and [`notices`] say so.

pub mod aggregator;
pub mod analysis;
pub mod assignment;
pub mod breakdown;
pub mod dimensions;
pub mod error;
pub mod flags;
pub mod guardrails;
pub mod holdout_comparison;
pub mod id_retention;
pub mod ingest;
pub mod layering;
pub mod layers;
pub mod lifecycle;
pub mod management;
pub mod model;
pub mod notices;
pub mod rebuilds;
pub mod repository;
pub mod results;
pub mod rollout;
pub mod sums;
pub mod unit_values;
