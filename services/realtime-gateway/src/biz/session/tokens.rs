//! A session's connection token: verified at `connect`, replaced by `refresh` (which may
//! narrow the channels it grants, ending the subscriptions it no longer allows).

use serde::Deserialize;
use switchyard_platform::{auth::AuthError, clock::now_ms};

use super::{Client, RefreshReply, Session};
use crate::biz::{
    broker::Broker,
    channel::{ChannelName, Grants, check_tenant},
    outbox::Outgoing,
    protocol::{CommandError, Disconnect, ErrorCode, Unsubscribed},
};

/// The claims of a connection token.
#[derive(Debug, Clone, Deserialize)]
struct ConnectionClaims {
    sub: String,
    exp: i64,
    /// Channels the client may subscribe to: exact names, or prefixes ending in `*`.
    #[serde(default)]
    channels: Vec<String>,
    /// Defaults to the gateway's anonymous tenant.
    #[serde(default)]
    tenant: Option<String>,
}

impl<B: Broker> Session<B> {
    pub(super) fn verify(&self, token: &str) -> Result<Client, AuthError> {
        let claims: ConnectionClaims = self.gateway.authenticator.verify_jwt(token)?;
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("the `sub` claim is empty".into()));
        }
        let tenant = claims
            .tenant
            .unwrap_or_else(|| self.gateway.settings.anonymous_tenant.clone());
        check_tenant(&tenant).map_err(AuthError::Invalid)?;
        Ok(Client {
            tenant,
            grants: Grants {
                user: Some(claims.sub),
                channels: claims.channels,
            },
            expires_at_ms: Some(claims.exp.saturating_mul(1000)),
        })
    }

    /// `refresh`: a new token for the same user extends the connection.
    pub(super) fn refresh(&mut self, token: &str) -> Result<Result<RefreshReply, CommandError>, Disconnect> {
        let fresh = match self.verify(token) {
            Ok(fresh) => fresh,
            Err(AuthError::Expired) => return Ok(Err(CommandError::new(ErrorCode::TokenExpired, "token expired"))),
            Err(error) => {
                return Err(Disconnect::new(
                    Disconnect::INVALID_TOKEN,
                    format!("invalid token: {error}"),
                ));
            }
        };
        let Some(client) = self.client.as_mut() else {
            return Ok(Err(CommandError::new(ErrorCode::Unauthorized, "send connect first")));
        };
        if fresh.grants.user != client.grants.user || fresh.tenant != client.tenant {
            return Err(Disconnect::new(
                Disconnect::INVALID_TOKEN,
                "refresh token is for another user",
            ));
        }
        client.grants.channels = fresh.grants.channels;
        client.expires_at_ms = fresh.expires_at_ms;
        self.drop_ungranted();
        Ok(Ok(RefreshReply {
            expires_in: fresh.expires_at_ms.map(|at| ((at - now_ms()) / 1000).max(0)),
        }))
    }

    /// After a refresh: subscriptions the new token no longer allows end, as if the server
    /// API had unsubscribed them (2000), in order with what is already queued.
    fn drop_ungranted(&self) {
        let Some(client) = self.client.as_ref() else {
            return;
        };
        for channel in self.outbox.subscribed_channels() {
            let allowed = ChannelName::parse(&channel)
                .ok()
                .is_some_and(|name| self.gateway.namespaces.may_subscribe(&name, &client.grants).is_ok());
            if !allowed {
                self.outbox.push(Outgoing::Unsubscribed(Unsubscribed {
                    channel,
                    code: Unsubscribed::SERVER,
                    reason: "no longer granted by the token",
                    resubscribe: false,
                }));
            }
        }
    }
}
