//! Flag evaluation with no I/O: flagd flag definitions parsed once, compiled into evaluation
//! plans, and evaluated against a context.
//!
//! The definition format is flagd's (state, variants, defaultVariant, JSON Logic targeting with
//! `fractional`, `sem_ver`, `starts_with`, `ends_with`, `$evaluators` / `$ref`, metadata), so flag
//! files written for flagd load unchanged and results match what every OpenFeature flagd
//! provider expects. Bucketing lives in [`bucketing`] because experiment assignment must use the
//! very same arithmetic.

pub mod bucketing;
mod context;
mod definition;
mod flag;
mod logic;
mod semver;
mod short_str;

pub use context::Context;
pub use definition::{DefinitionError, FlagSet, Limits, Problem};
pub use flag::{ErrorCode, Flag, FlagState, Reason, Resolution, ValueKind};
pub use logic::Scope;

/// Flag metadata: flag-set entries overlaid by the flag's own (string, number or bool values).
pub type Metadata = serde_json::Map<String, serde_json::Value>;
