//! The outside world's two doors, as the domain sees them: a JSON POST to a webhook (whose
//! answer may matter), and an announcement on a realtime channel and to webhooks.
//! `data::hooks` implements them on the platform's announcer.

use futures::future::BoxFuture;
use serde_json::Value;

use super::error::{ConfigError, ConfigResult};

/// The most notification webhooks one resource may have.
pub const MAX_WEBHOOKS: usize = 5;

/// A webhook's answer.
#[derive(Debug, Clone)]
pub struct HookAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The transport, implemented in `data::hooks` on the platform's announcer.
pub trait Hooks: Send + Sync + std::fmt::Debug {
    /// POSTs `body` to `url` and returns the answer.
    fn ask<'a>(&'a self, url: &'a str, body: &'a Value) -> BoxFuture<'a, Result<HookAnswer, String>>;
    /// Publishes `body` on `channel` (once per `key`) and POSTs it to each webhook, retrying a
    /// few times; failures are logged, not returned.
    fn announce<'a>(
        &'a self,
        tenant: &'a str,
        channel: &'a str,
        key: &'a str,
        body: &'a Value,
        webhooks: &'a [String],
    ) -> BoxFuture<'a, ()>;
}

/// Checks a webhook URL given by a user.
pub fn check_url(field: &str, url: &str) -> ConfigResult<()> {
    let plain_http = url.starts_with("http://") && url.len() > "http://".len() && url.len() <= 2048;
    if plain_http && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Ok(());
    }
    Err(ConfigError::invalid(field, "an http:// URL of at most 2048 characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_plain_http() {
        assert!(check_url("w", "http://hooks.internal:8080/deploy").is_ok());
        assert!(check_url("w", "file:///etc/passwd").is_err());
        assert!(check_url("w", "http://a b").is_err());
    }
}
