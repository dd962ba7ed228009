//! A session's part in presence: reporting its own connection (when it has a user and the
//! gateway reports to presence-service), the client's `presence` command, and the members
//! a `$presence:{channel}` subscription starts with.

use std::time::Duration;

use super::{Client, Session};
use crate::biz::{
    broker::Broker,
    presence::{ConnectionPresence, ConnectionRules, DeviceInfo, PresenceMetas, UpdateRefused},
    protocol::{CommandError, ErrorCode},
};

impl<B: Broker> Session<B> {
    /// Reports a connection with a user to presence-service.
    pub(super) fn open_presence(
        &self,
        client: &Client,
        device: Option<DeviceInfo>,
        metas: Option<PresenceMetas>,
    ) -> Option<ConnectionPresence> {
        let reporter = self.gateway.presence.clone()?;
        let user = client.grants.user.as_deref()?;
        let settings = &self.gateway.settings.presence;
        let rules = ConnectionRules {
            activity_every: Duration::from_millis(settings.activity_report_ms),
            updates_per_second: settings.updates_per_second,
        };
        let connection = format!("{}.{}", self.gateway.node.id, self.id);
        Some(ConnectionPresence::open(
            reporter,
            (&client.tenant, user, connection),
            device.unwrap_or_default(),
            metas.unwrap_or_default(),
            rules,
        ))
    }

    /// `presence`: the client's own metas.
    pub(super) fn update_presence(&mut self, metas: PresenceMetas) -> Result<(), CommandError> {
        let Some(presence) = self.presence.as_mut() else {
            return Err(CommandError::new(
                ErrorCode::NotAvailable,
                "presence is tracked only for connections with a user, when presence-service is in use",
            ));
        };
        presence.update(metas).map_err(|refused| match refused {
            UpdateRefused::Invalid(message) => CommandError::new(ErrorCode::BadRequest, message),
            UpdateRefused::TooFast => CommandError::new(ErrorCode::LimitExceeded, "presence updated too often"),
        })
    }

    /// Whether the connection ends on purpose (the client closed it, or the server will not
    /// take it back): presence then drops it at once instead of after the grace period.
    pub fn set_clean_departure(&mut self, clean: bool) {
        self.clean_departure = clean;
    }

    /// For `$presence:{channel}`: the members now, so the client shows them at once.
    pub(super) async fn presence_snapshot(&self, channel: &str) -> Result<Option<bytes::Bytes>, CommandError> {
        let Some(watched) = crate::biz::channel::presence_of(channel) else {
            return Ok(None);
        };
        let (Some(directory), Ok(client)) = (&self.gateway.presence_directory, self.client()) else {
            return Err(CommandError::new(
                ErrorCode::NotAvailable,
                "presence-service is not in use",
            ));
        };
        let members = directory
            .members(&client.tenant, watched)
            .await
            .map_err(|error| CommandError::new(ErrorCode::Unavailable, error))?;
        Ok(Some(crate::biz::presence_feed::snapshot_json(&members)))
    }
}
