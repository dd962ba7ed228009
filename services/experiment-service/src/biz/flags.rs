//! What experiment-service needs from flag-service: read a flag, and rewrite its targeting in
//! some environments (with the flag's `experiment` metadata, which makes flag-service emit
//! exposures). Calls carry the caller's own credentials, so an experiment changes only flags
//! its starter may change.

use std::{collections::BTreeMap, future::Future};

use serde_json::Value;

/// A flag as the experiment sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagView {
    pub variants: Vec<String>,
    /// Environment → its targeting (`None`: no rule), for the environments with rules.
    pub targeting: BTreeMap<String, Option<Value>>,
}

/// A targeting rewrite: environment → new targeting (`None` removes it), and the metadata
/// `experiment` to set (`Some`) or remove (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetingChange {
    pub targeting: BTreeMap<String, Option<Value>>,
    pub experiment: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    #[error("flag `{0}` does not exist in this project")]
    Missing(String),
    #[error("flag-service says the caller may not change the flag: {0}")]
    Denied(String),
    #[error("flag-service refused the change: {0}")]
    Refused(String),
    #[error("flag-service is not reachable: {0}")]
    Unavailable(String),
}

/// The credentials flag-service sees: the caller's own `authorization`, and with the
/// services' shared credential the tenant it acts for (a guardrail stop, which no request
/// carries).
#[derive(Debug, Clone, Copy)]
pub struct FlagCredentials<'a> {
    pub authorization: &'a str,
    pub act_for_tenant: Option<&'a str>,
}

pub trait Flags: Send + Sync + 'static {
    fn read(
        &self,
        credentials: FlagCredentials<'_>,
        project: &str,
        flag: &str,
    ) -> impl Future<Output = Result<FlagView, FlagsError>> + Send;

    /// Applies the change (retrying when the flag moved meanwhile); returns the flag as it was.
    fn rewrite(
        &self,
        credentials: FlagCredentials<'_>,
        project: &str,
        flag: &str,
        change: &TargetingChange,
    ) -> impl Future<Output = Result<FlagView, FlagsError>> + Send;
}
