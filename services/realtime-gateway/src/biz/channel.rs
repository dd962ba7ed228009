//! Channel names and who may use them.
//!
//! A channel is `namespace:rest`, `namespace#users` or a bare name (namespace `""`). After a
//! `#`, a comma-separated list of user ids makes the channel private to those users:
//! `user#42`, `chat:room#42,43`. A channel lives inside its tenant: the same name in two
//! tenants is two channels, which the hub and the brokers know as two [`Topic`]s.

use std::{collections::BTreeMap, sync::Arc};

use crate::conf::NamespaceSettings;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 255;

/// Why a channel cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {MAX_CHANNEL_BYTES} bytes")]
    TooLong,
    #[error("channel name contains {0:?}; allowed are letters, digits and - _ . : # , @ = $ /")]
    BadCharacter(char),
    #[error("channel {0:?} names an empty user after `#`")]
    EmptyUser(String),
    #[error("unknown namespace {0:?}")]
    UnknownNamespace(String),
    #[error("permission denied for channel {0:?}")]
    PermissionDenied(String),
}

/// A checked channel name with its namespace and, for private channels, its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    users: Option<&'a str>,
}

impl<'a> ChannelName<'a> {
    pub fn parse(name: &'a str) -> Result<Self, ChannelError> {
        if name.is_empty() {
            return Err(ChannelError::Empty);
        }
        if name.len() > MAX_CHANNEL_BYTES {
            return Err(ChannelError::TooLong);
        }
        if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
            return Err(ChannelError::BadCharacter(bad));
        }
        let namespace_end = name.find([':', '#']).unwrap_or(0);
        let users = name.split_once('#').map(|(_, users)| users);
        if let Some(users) = users
            && users.split(',').any(str::is_empty)
        {
            return Err(ChannelError::EmptyUser(name.to_owned()));
        }
        Ok(ChannelName {
            name,
            namespace: &name[..namespace_end],
            users,
        })
    }

    /// Private channels (`#` in the name) admit only the users they list.
    pub fn is_private(&self) -> bool {
        self.users.is_some()
    }

    fn admits_user(&self, user: &str) -> bool {
        self.users
            .is_some_and(|users| users.split(',').any(|listed| listed == user))
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:#,@=$/".contains(c)
}

/// Who is asking: the user of a connection token (None for anonymous clients) and the
/// channels its token grants (exact names, or prefixes ending in `*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub user: Option<String>,
    pub channels: Vec<String>,
}

impl Grants {
    fn grants(&self, channel: &str) -> bool {
        self.channels.iter().any(|granted| match granted.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => granted == channel,
        })
    }
}

/// The namespaces of the settings, answering what a client may do in a channel.
#[derive(Debug, Clone)]
pub struct Namespaces(BTreeMap<String, NamespaceSettings>);

impl Namespaces {
    pub fn new(settings: BTreeMap<String, NamespaceSettings>) -> Self {
        Namespaces(settings)
    }

    /// The namespace of a channel; a channel of an unconfigured namespace cannot be used.
    pub fn of(&self, channel: &ChannelName) -> Result<&NamespaceSettings, ChannelError> {
        self.0
            .get(channel.namespace)
            .ok_or_else(|| ChannelError::UnknownNamespace(channel.namespace.to_owned()))
    }

    /// Subscribing (and reading history): a private channel's own users; any client in a
    /// public namespace (anonymous ones where allowed); otherwise the channels a token grants.
    pub fn may_subscribe(&self, channel: &ChannelName, grants: &Grants) -> Result<&NamespaceSettings, ChannelError> {
        let namespace = self.of(channel)?;
        if let Some(watched) = presence_of(channel.name) {
            return self.may_watch_presence(channel, watched, grants).map(|()| namespace);
        }
        let allowed = match (&grants.user, channel.is_private()) {
            (None, true) => false,
            (Some(user), true) => channel.admits_user(user),
            (None, false) => namespace.allow_anonymous,
            (Some(_), false) => namespace.public || grants.grants(channel.name),
        };
        if !allowed {
            return Err(ChannelError::PermissionDenied(channel.name.to_owned()));
        }
        Ok(namespace)
    }

    /// `$presence:{channel}`: whoever may subscribe to the channel, where its namespace
    /// names its members.
    fn may_watch_presence(&self, channel: &ChannelName, watched: &str, grants: &Grants) -> Result<(), ChannelError> {
        let watched = ChannelName::parse(watched)?;
        let namespace = self.may_subscribe(&watched, grants)?;
        if presence_of(watched.name).is_some() || !namespace.presence_members {
            return Err(ChannelError::PermissionDenied(channel.name.to_owned()));
        }
        Ok(())
    }

    /// Publishing from a client: only where the namespace allows it, and only into channels
    /// the client may subscribe to.
    pub fn may_publish(&self, channel: &ChannelName, grants: &Grants) -> Result<&NamespaceSettings, ChannelError> {
        let namespace = self.may_subscribe(channel, grants)?;
        if !namespace.allow_publish || grants.user.is_none() {
            return Err(ChannelError::PermissionDenied(channel.name.to_owned()));
        }
        Ok(namespace)
    }
}

/// The channel whose presence a `$presence:{channel}` channel carries.
pub fn presence_of(channel: &str) -> Option<&str> {
    channel
        .strip_prefix(crate::conf::PRESENCE_NAMESPACE)
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|watched| !watched.is_empty())
}

/// A channel inside its tenant: the key of subscriber maps and broker streams.
/// Written `tenant/channel`; tenants never contain `/`, so the split is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    pub fn new(tenant: &str, channel: &str) -> Self {
        Topic(format!("{tenant}/{channel}").into())
    }

    /// The stored form, as brokers write it.
    pub fn parse(text: &str) -> Option<Self> {
        text.contains('/').then(|| Topic(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn tenant(&self) -> &str {
        self.0.split_once('/').map_or("", |(tenant, _)| tenant)
    }

    pub fn channel(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, channel)| channel)
    }
}

/// Tenants become part of topic names, so they must not contain the separator.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() || tenant.contains('/') || tenant.len() > 128 {
        return Err(format!("tenant {tenant:?} must be 1–128 bytes without `/`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespaces() -> Namespaces {
        let public = NamespaceSettings {
            public: true,
            allow_anonymous: true,
            ..NamespaceSettings::default()
        };
        let chat = NamespaceSettings {
            allow_publish: true,
            ..NamespaceSettings::default()
        };
        Namespaces::new(BTreeMap::from([
            ("product".to_owned(), public),
            ("order".to_owned(), NamespaceSettings::default()),
            ("user".to_owned(), NamespaceSettings::default()),
            ("chat".to_owned(), chat),
        ]))
    }

    fn user(id: &str, channels: &[&str]) -> Grants {
        Grants {
            user: Some(id.to_owned()),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn names_split_into_namespace_and_private_users() {
        let product = ChannelName::parse("product:sku-1").unwrap();
        assert_eq!((product.namespace, product.is_private()), ("product", false));
        let user_channel = ChannelName::parse("user#42").unwrap();
        assert_eq!((user_channel.namespace, user_channel.is_private()), ("user", true));
        let bare = ChannelName::parse("news").unwrap();
        assert_eq!(bare.namespace, "");
        assert_eq!(ChannelName::parse("").unwrap_err(), ChannelError::Empty);
        assert_eq!(ChannelName::parse("a b").unwrap_err(), ChannelError::BadCharacter(' '));
        assert_eq!(ChannelName::parse("x*").unwrap_err(), ChannelError::BadCharacter('*'));
        assert!(matches!(
            ChannelName::parse("user#42,").unwrap_err(),
            ChannelError::EmptyUser(_)
        ));
        assert_eq!(ChannelName::parse(&"a".repeat(256)).unwrap_err(), ChannelError::TooLong);
    }

    #[test]
    fn private_channels_admit_only_their_users() {
        let namespaces = namespaces();
        let channel = ChannelName::parse("user#42").unwrap();
        assert!(namespaces.may_subscribe(&channel, &user("42", &[])).is_ok());
        assert!(namespaces.may_subscribe(&channel, &user("43", &["user#42"])).is_err());
        assert!(namespaces.may_subscribe(&channel, &Grants::default()).is_err());
        let pair = ChannelName::parse("chat:room#42,43").unwrap();
        assert!(namespaces.may_subscribe(&pair, &user("43", &[])).is_ok());
        assert!(namespaces.may_subscribe(&pair, &user("4", &[])).is_err());
    }

    #[test]
    fn tokens_grant_channels_by_name_or_prefix() {
        let namespaces = namespaces();
        let order = ChannelName::parse("order:7").unwrap();
        assert!(namespaces.may_subscribe(&order, &user("1", &[])).is_err());
        assert!(namespaces.may_subscribe(&order, &user("1", &["order:7"])).is_ok());
        assert!(namespaces.may_subscribe(&order, &user("1", &["order:*"])).is_ok());
        assert!(namespaces.may_subscribe(&order, &user("1", &["order:70"])).is_err());
        assert!(namespaces.may_subscribe(&order, &Grants::default()).is_err());
        let product = ChannelName::parse("product:1").unwrap();
        assert!(namespaces.may_subscribe(&product, &Grants::default()).is_ok());
        let unknown = ChannelName::parse("secret:1").unwrap();
        assert!(matches!(
            namespaces.may_subscribe(&unknown, &user("1", &["*"])),
            Err(ChannelError::UnknownNamespace(_))
        ));
    }

    #[test]
    fn clients_publish_only_where_the_namespace_allows() {
        let namespaces = namespaces();
        let room = ChannelName::parse("chat:room#1,2").unwrap();
        assert!(namespaces.may_publish(&room, &user("1", &[])).is_ok());
        assert!(namespaces.may_publish(&room, &user("3", &[])).is_err());
        let product = ChannelName::parse("product:1").unwrap();
        assert!(namespaces.may_publish(&product, &user("1", &["product:*"])).is_err());
    }

    #[test]
    fn topics_keep_tenant_and_channel_apart() {
        let topic = Topic::new("acme", "chat:a/b");
        assert_eq!((topic.tenant(), topic.channel()), ("acme", "chat:a/b"));
        assert!(check_tenant("a/b").is_err());
        assert!(check_tenant("").is_err());
    }
}
