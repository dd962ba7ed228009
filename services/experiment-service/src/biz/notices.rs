//! What experiment-service tells the outside when an experiment stops itself: a notice on
//! the realtime channel `$experiments:{project}` and, when the experiment has one, a POST to
//! its webhook. The stop is audited before any notice goes out, so a notice that cannot be
//! delivered loses no record; delivery is retried a few times and then logged.

use std::future::Future;

use serde::Serialize;

/// One notice, as both the channel and the webhook receive it (JSON, camelCase).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// `experiment_stopped`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `projects/{project}/experiments/{experiment}`.
    pub experiment: String,
    pub project: String,
    /// `guardrail` (a guardrail metric showed harm) or `srm` (sample ratio mismatch).
    pub cause: &'static str,
    /// The figures that stopped it, in words.
    pub reason: String,
    /// The control variant every eligible unit now gets.
    pub serving: String,
    /// The experiment's version after the stop.
    pub version: i64,
    pub stopped_at_ms: i64,
    /// Not sent: where the webhook is.
    #[serde(skip)]
    pub webhook: String,
}

/// Delivers notices for a tenant.
pub trait Notifier: Send + Sync + 'static {
    fn notify(&self, tenant: &str, notice: &Notice) -> impl Future<Output = ()> + Send;
}
