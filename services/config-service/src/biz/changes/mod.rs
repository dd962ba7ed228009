//! Change requests for protected environments.

pub mod model;
