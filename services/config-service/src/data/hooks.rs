//! The domain's webhooks and announcements on the platform's announcer.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use switchyard_platform::announce::{Announcer, retried};

use crate::biz::webhooks::{HookAnswer, Hooks};

const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct AnnouncerHooks {
    announcer: Announcer,
}

impl AnnouncerHooks {
    pub fn new(announcer: Announcer) -> Self {
        Self { announcer }
    }
}

impl Hooks for AnnouncerHooks {
    fn ask<'a>(&'a self, url: &'a str, body: &'a Value) -> BoxFuture<'a, Result<HookAnswer, String>> {
        Box::pin(async move {
            let answer = self.announcer.call(url, body).await?;
            Ok(HookAnswer {
                status: answer.status,
                body: answer.body.to_vec(),
            })
        })
    }

    fn announce<'a>(
        &'a self,
        tenant: &'a str,
        channel: &'a str,
        key: &'a str,
        body: &'a Value,
        webhooks: &'a [String],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.announcer.publishes() {
                let published = retried(ATTEMPTS, BACKOFF, || self.announcer.publish(tenant, channel, key, body)).await;
                if let Err(error) = published {
                    tracing::warn!(%error, %channel, "publishing an announcement failed");
                }
            }
            for url in webhooks {
                if let Err(error) = retried(ATTEMPTS, BACKOFF, || self.announcer.post(url, body)).await {
                    tracing::warn!(%error, %url, "posting an announcement to a webhook failed");
                }
            }
        })
    }
}
