//! [`RealtimeNotifier`]: experiment notices on `$experiments:{project}` and as a JSON POST
//! to the experiment's webhook, through the platform's announcer. Each is tried up to three
//! times; the idempotency key makes a retried publish land once.

use std::time::Duration;

use switchyard_platform::{
    announce::{Announcer, retried},
    discovery::Discovery,
};

use crate::biz::notices::{Notice, Notifier};

const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct RealtimeNotifier {
    announcer: Announcer,
}

impl RealtimeNotifier {
    pub fn new(discovery: Discovery, credential: Option<String>) -> Self {
        Self {
            announcer: Announcer::new(discovery, credential),
        }
    }
}

fn log_failure(what: &str, notice: &Notice, outcome: Result<(), String>) {
    if let Err(error) = outcome {
        tracing::warn!(%error, experiment = %notice.experiment, "{what} failed; the stop stands and is audited");
    }
}

impl Notifier for RealtimeNotifier {
    async fn notify(&self, tenant: &str, notice: &Notice) {
        let body = match serde_json::to_value(notice) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "a notice did not serialize");
                return;
            }
        };
        let channel = format!("$experiments:{}", notice.project);
        let key = format!("{}@{}", notice.experiment, notice.version);
        let published = retried(ATTEMPTS, BACKOFF, || {
            self.announcer.publish(tenant, &channel, &key, &body)
        })
        .await;
        log_failure("publishing the notice to $experiments", notice, published);
        if !notice.webhook.is_empty() {
            let posted = retried(ATTEMPTS, BACKOFF, || self.announcer.post(&notice.webhook, &body)).await;
            log_failure("posting the notice to the webhook", notice, posted);
        }
    }
}
