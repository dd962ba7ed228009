//! Who may evaluate which flags. Flag files are public, as with flagd. Managed flags of an
//! environment need a credential whose role binding covers it: an `sdk-server` key (or any
//! management role) sees every flag, an `sdk-client` key only the flags marked client-visible,
//! as LaunchDarkly's and Unleash's client keys do. An environment an admin made public
//! (config-service's `public_evaluation`) is open to callers without credentials, for keyless
//! flagd providers. Anything else is refused, so an anonymous caller can never read a
//! tenant's managed flags by guessing a selector.

use switchyard_platform::{
    auth::{Principal, Role},
    error::{Classify, ErrorKind, FieldViolation},
};

use super::selector::{Selector, SelectorError};

/// Who evaluates: the tenant whose managed flags they may see, and how far their
/// credentials reach inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reader {
    pub tenant: Option<String>,
    pub reach: Reach,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reach {
    /// No credentials: flag files and the tenant's public environments.
    Public,
    /// The resources the caller's role bindings cover, for all flags (`server`) or only the
    /// client-visible ones (`client`); `None` is the whole tenant.
    Granted {
        server: Vec<Option<String>>,
        client: Vec<Option<String>>,
    },
}

/// How much of one source a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Hidden,
    /// Only flags marked client-visible.
    Client,
    Full,
}

/// Why a reader may not see what it asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "the flags of {0} need an SDK key: send `authorization: Bearer <key>` (or, from a flagd provider, the key as the selector)"
    )]
    KeyRequired(String),
    #[error("this key does not reach {0}: it needs an sdk-client, sdk-server or higher role there")]
    NotGranted(String),
    #[error("the API key sent as the selector was refused: {0}")]
    BadKey(String),
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

/// Mapped once, for gRPC and for OFREP's HTTP statuses alike.
impl Classify for AccessError {
    fn kind(&self) -> ErrorKind {
        match self {
            AccessError::KeyRequired(_) | AccessError::BadKey(_) => ErrorKind::Unauthenticated,
            AccessError::NotGranted(_) => ErrorKind::PermissionDenied,
            AccessError::Selector(_) => ErrorKind::InvalidArgument,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            AccessError::Selector(error) => vec![FieldViolation::new("selector", error.to_string())],
            _ => Vec::new(),
        }
    }
}

impl Reader {
    /// A caller without credentials, evaluating in the anonymous tenant.
    pub fn anonymous(tenant: Option<String>) -> Self {
        Self {
            tenant,
            reach: Reach::Public,
        }
    }

    /// An authenticated caller: its tenant, and its role bindings as reach.
    pub fn of(principal: &Principal) -> Self {
        let mut server = Vec::new();
        let mut client = Vec::new();
        for binding in &principal.roles {
            match binding.role {
                Role::SdkClient => client.push(binding.resource.clone()),
                _ => server.push(binding.resource.clone()),
            }
        }
        Self {
            tenant: Some(principal.tenant.clone()),
            reach: Reach::Granted { server, client },
        }
    }

    /// How much of a source this reader sees; `public` says whether its environment is open
    /// to everyone.
    pub fn audience(&self, source_tenant: Option<&str>, source: &str, public: bool) -> Audience {
        let Some(owner) = source_tenant else {
            return Audience::Full;
        };
        if self.tenant.as_deref() != Some(owner) {
            return Audience::Hidden;
        }
        if public {
            return Audience::Full;
        }
        let Reach::Granted { server, client } = &self.reach else {
            return Audience::Hidden;
        };
        if server.iter().any(|scope| covers(scope, source)) {
            return Audience::Full;
        }
        if client.iter().any(|scope| covers(scope, source)) {
            return Audience::Client;
        }
        Audience::Hidden
    }

    /// Without a selector, a key bound to one environment evaluates in that environment, as an
    /// environment SDK key does; otherwise the selector stands.
    pub fn implied_selector(&self, selector: &Selector) -> Selector {
        let (Selector::All, Reach::Granted { server, client }) = (selector, &self.reach) else {
            return selector.clone();
        };
        let mut scopes = server.iter().chain(client);
        let Some(Some(first)) = scopes.next() else {
            return selector.clone();
        };
        let one_environment = is_environment(first) && scopes.all(|scope| scope.as_deref() == Some(first.as_str()));
        match one_environment {
            true => Selector::Source(first.clone()),
            false => selector.clone(),
        }
    }

    /// Refuses a selector naming a managed environment this reader cannot see at all; a
    /// caller told "not found" would not know it only lacks a key.
    pub fn check(&self, selector: &Selector, public: impl Fn(&str) -> bool) -> Result<(), AccessError> {
        let Selector::Source(name) = selector else {
            return Ok(());
        };
        if !is_environment(name) || public(name) {
            return Ok(());
        }
        if self.audience(self.tenant.as_deref(), name, false) != Audience::Hidden {
            return Ok(());
        }
        match self.reach {
            Reach::Public => Err(AccessError::KeyRequired(name.clone())),
            Reach::Granted { .. } => Err(AccessError::NotGranted(name.clone())),
        }
    }
}

/// Whether a binding's resource covers a source name (`None` covers the whole tenant).
fn covers(scope: &Option<String>, source: &str) -> bool {
    match scope {
        None => true,
        Some(prefix) => {
            source == prefix
                || source
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// `projects/{p}/environments/{e}`: the name of a managed source.
fn is_environment(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    matches!(parts[..], ["projects", project, "environments", environment] if !project.is_empty() && !environment.is_empty())
}

#[cfg(test)]
mod tests {
    use switchyard_platform::auth::Credential;

    use super::*;

    const PROD: &str = "projects/shop/environments/prod";
    const DEV: &str = "projects/shop/environments/dev";

    fn reader(roles: &[&str]) -> Reader {
        Reader::of(&Principal {
            subject: "apikey:k".into(),
            tenant: "acme".into(),
            roles: roles.iter().map(|role| role.parse().unwrap()).collect(),
            scopes: vec![],
            credential: Credential::ApiKey,
        })
    }

    #[test]
    fn keys_see_what_their_bindings_cover() {
        let client = reader(&["sdk-client:projects/shop/environments/prod"]);
        assert_eq!(client.audience(Some("acme"), PROD, false), Audience::Client);
        assert_eq!(client.audience(Some("acme"), DEV, false), Audience::Hidden);
        assert_eq!(client.audience(None, "flags.json", false), Audience::Full);
        let server = reader(&["sdk-server:projects/shop"]);
        assert_eq!(server.audience(Some("acme"), PROD, false), Audience::Full);
        assert_eq!(server.audience(Some("other"), PROD, false), Audience::Hidden);
        assert_eq!(reader(&["viewer"]).audience(Some("acme"), DEV, false), Audience::Full);
        assert_eq!(
            reader(&["sdk-server:projects/shopping"]).audience(Some("acme"), PROD, false),
            Audience::Hidden
        );
    }

    #[test]
    fn anonymous_callers_see_files_and_public_environments_only() {
        let anonymous = Reader::anonymous(Some("acme".into()));
        assert_eq!(anonymous.audience(Some("acme"), PROD, false), Audience::Hidden);
        assert_eq!(anonymous.audience(Some("acme"), DEV, true), Audience::Full);
        assert_eq!(
            anonymous.check(&Selector::Source(PROD.into()), |_| false),
            Err(AccessError::KeyRequired(PROD.into()))
        );
        assert!(
            anonymous
                .check(&Selector::Source(DEV.into()), |name| name == DEV)
                .is_ok()
        );
        assert!(
            anonymous
                .check(&Selector::Source("flags.json".into()), |_| false)
                .is_ok()
        );
    }

    #[test]
    fn a_key_bound_to_one_environment_selects_it() {
        let key = reader(&["sdk-client:projects/shop/environments/prod"]);
        assert_eq!(key.implied_selector(&Selector::All), Selector::Source(PROD.into()));
        assert_eq!(
            key.implied_selector(&Selector::FlagSetId("x".into())),
            Selector::FlagSetId("x".into())
        );
        assert_eq!(reader(&["viewer"]).implied_selector(&Selector::All), Selector::All);
        assert_eq!(
            reader(&["sdk-server:projects/shop"]).implied_selector(&Selector::All),
            Selector::All
        );
        assert_eq!(
            key.check(&Selector::Source(DEV.into()), |_| false),
            Err(AccessError::NotGranted(DEV.into()))
        );
    }
}
