//! Who is calling. Management APIs accept a bearer JWT (HS256 with a shared secret, or
//! RS256 against configured public keys) or an API key (`sy_…`, stored only as its SHA-256
//! hash). Either resolves to a [`Principal`]: a tenant, role bindings and scopes. The
//! [`AuthLayer`] runs in front of every gRPC method (and so every transcoded HTTP route);
//! handlers then ask the principal whether it may act on a resource.
//!
//! No credentials or bad credentials → UNAUTHENTICATED. Good credentials that do not
//! reach the resource (another tenant, too small a role) → PERMISSION_DENIED.
//!
//! API keys come from two places: settings (`auth.api_keys`, read at start) and the key
//! store config-service keeps, which every service follows at runtime ([`directory`],
//! [`follower`]).

pub mod directory;
pub mod follower;
mod layer;

pub use layer::{Admitted, AuthLayer, AuthService, PublicMethods};

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    sync::{Arc, RwLock},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind as JwtErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::directory::KeyDirectory;

/// Authentication settings (`[auth]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Shared secret for HS256 tokens.
    pub jwt_hs256_secret: Option<String>,
    /// PEM public keys for RS256 tokens; a token is accepted if any key verifies it.
    pub jwt_rs256_public_keys: Vec<String>,
    /// Required `iss` claim, when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub jwt_audience: Option<String>,
    /// API keys known at start, by hash.
    pub api_keys: Vec<ApiKeyRecord>,
    /// The credential services share to follow config-service's key store: the same value on
    /// every service, config-service included (which accepts it, with the
    /// `switchyard:key-sync` scope and nothing else). A `sy_` key of at least 32 characters,
    /// such as one `switchyard keys generate` prints. Without it, a service accepts only the
    /// keys in settings. `switchyard dev` sets it. With the `x-switchyard-act-for-tenant`
    /// header it also acts for that tenant as publisher (never admin), for work no request
    /// carries, such as an experiment stopping itself on its guardrail.
    pub key_sync_credential: Option<String>,
}

/// The scope a service's credential needs to follow the key store.
pub const KEY_SYNC_SCOPE: &str = "switchyard:key-sync";

/// The header with which the services' shared credential names the tenant it acts for, for
/// work no user's request carries (an experiment stopped by its guardrail puts its flag back
/// and announces it).
pub const ACT_FOR_TENANT_HEADER: &str = "x-switchyard-act-for-tenant";

/// A stored API key: never the key itself, only its SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// A public identifier, shown in logs and audit records.
    pub id: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub sha256: String,
    pub tenant: String,
    /// Role bindings such as `admin` or `editor:projects/shop`.
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Roles grant increasing power: each includes the ones before it. The two SDK roles only
/// evaluate flags (environment SDK keys, as LaunchDarkly and Unleash have them): a client key
/// sees only flags marked client-visible, a server key every flag; neither reads anything
/// through the management APIs, which start at `viewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    SdkClient,
    SdkServer,
    Viewer,
    Editor,
    Publisher,
    Admin,
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "sdk-client" => Ok(Role::SdkClient),
            "sdk-server" => Ok(Role::SdkServer),
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "publisher" => Ok(Role::Publisher),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::Malformed(format!(
                "unknown role `{other}`: viewer, editor, publisher, admin, sdk-client or sdk-server"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::SdkClient => "sdk-client",
            Role::SdkServer => "sdk-server",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        };
        f.write_str(name)
    }
}

/// A role on every resource of the tenant, or on one resource and what lies under it
/// (`editor:projects/shop` covers `projects/shop/environments/prod/configs/app`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    pub role: Role,
    pub resource: Option<String>,
}

impl FromStr for RoleBinding {
    type Err = AuthError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None => Ok(RoleBinding {
                role: text.parse()?,
                resource: None,
            }),
            Some((role, resource)) => {
                let role = role.parse()?;
                let resource = resource.trim_end_matches('/');
                check_resource(resource)?;
                Ok(RoleBinding {
                    role,
                    resource: Some(resource.to_owned()),
                })
            }
        }
    }
}

/// A resource a role can be bound to: `collection/id` pairs (`projects/shop`,
/// `projects/shop/environments/prod`), each segment a plain name — no `..`, no wildcards,
/// nothing a prefix match could be fooled by.
fn check_resource(resource: &str) -> Result<(), AuthError> {
    let segments: Vec<&str> = resource.split('/').collect();
    let plain = |segment: &&str| {
        segment.len() <= 128
            && segment.starts_with(|c: char| c.is_ascii_alphanumeric())
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !segment.contains("..")
    };
    if !segments.len().is_multiple_of(2) || !segments.iter().all(plain) {
        return Err(AuthError::Malformed(format!(
            "`{resource}` is not a resource name: collection/id pairs such as projects/shop or \
             projects/shop/environments/prod"
        )));
    }
    Ok(())
}

/// A tenant id: 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter or digit.
pub fn check_tenant(tenant: &str) -> Result<(), AuthError> {
    let valid = (1..=64).contains(&tenant.len())
        && tenant.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && tenant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if valid {
        return Ok(());
    }
    Err(AuthError::Malformed(format!(
        "tenant `{tenant}`: 1 to 64 lowercase letters, digits, `-` and `_`"
    )))
}

impl RoleBinding {
    fn covers(&self, resource: &str) -> bool {
        match &self.resource {
            None => true,
            Some(prefix) => {
                resource == prefix
                    || resource
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Jwt,
    ApiKey,
}

/// An authenticated caller. Handlers find it in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The JWT `sub`, or `apikey:<id>`.
    pub subject: String,
    pub tenant: String,
    pub roles: Vec<RoleBinding>,
    pub scopes: Vec<String>,
    pub credential: Credential,
}

impl Principal {
    /// The services' shared credential acting for `tenant`: publisher on all of it, never
    /// admin (it cannot manage keys), recorded as `service:for:{tenant}`. Any other principal
    /// naming a tenant is refused.
    pub fn acting_for(&self, tenant: &str) -> Result<Principal, AuthError> {
        if !self.scopes.iter().any(|scope| scope == KEY_SYNC_SCOPE) {
            return Err(AuthError::Forbidden(format!(
                "only the services' shared credential may send {ACT_FOR_TENANT_HEADER}"
            )));
        }
        check_tenant(tenant)?;
        Ok(Principal {
            subject: format!("service:for:{tenant}"),
            tenant: tenant.to_owned(),
            roles: vec![RoleBinding {
                role: Role::Publisher,
                resource: None,
            }],
            scopes: self.scopes.clone(),
            credential: self.credential,
        })
    }

    /// Allows the call when the principal belongs to `tenant` and holds at least `role`
    /// on `resource` (a resource name such as `projects/shop`).
    pub fn authorize(&self, tenant: &str, role: Role, resource: &str) -> Result<(), AuthError> {
        if self.tenant != tenant {
            return Err(AuthError::Forbidden(format!("{} belongs to another tenant", resource)));
        }
        let allowed = self
            .roles
            .iter()
            .any(|binding| binding.role >= role && binding.covers(resource));
        if allowed {
            return Ok(());
        }
        Err(AuthError::Forbidden(format!("{role} role required on {resource}")))
    }

    /// The principal of a request that passed the [`AuthLayer`].
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, AuthError> {
        request.extensions().get::<Principal>().ok_or(AuthError::Missing)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `authorization: Bearer <jwt or api key>`")]
    Missing,
    #[error("malformed credentials: {0}")]
    Malformed(String),
    #[error("credentials expired")]
    Expired,
    #[error("invalid credentials: {0}")]
    Invalid(String),
    #[error("permission denied: {0}")]
    Forbidden(String),
}

impl crate::error::Classify for AuthError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            AuthError::Forbidden(_) => crate::error::ErrorKind::PermissionDenied,
            _ => crate::error::ErrorKind::Unauthenticated,
        }
    }
}

/// The claims Switchyard reads from a JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub tenant: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Space-separated scopes, as in OAuth 2.
    #[serde(default)]
    pub scope: String,
}

/// Prefix of every Switchyard API key: `sy_<id>_<secret>`.
pub const API_KEY_PREFIX: &str = "sy_";

/// A freshly generated API key: the plaintext is shown once, only the record is kept.
pub struct NewApiKey {
    pub plaintext: String,
    pub record: ApiKeyRecord,
}

/// Generates a key for `tenant` with `roles`. 32 random bytes make it unguessable.
pub fn generate_api_key(tenant: &str, roles: &[&str]) -> NewApiKey {
    let id = hex::encode(rand::random::<[u8; 6]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let plaintext = format!("{API_KEY_PREFIX}{id}_{secret}");
    let record = ApiKeyRecord {
        id,
        sha256: hash_api_key(&plaintext),
        tenant: tenant.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        scopes: Vec::new(),
    };
    NewApiKey { plaintext, record }
}

pub fn hash_api_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// The tenant of the key-sync credential's principal; it holds no roles, so it reaches nothing.
const KEY_SYNC_TENANT: &str = "switchyard-services";

/// The record under which config-service accepts the key-sync credential.
fn key_sync_record(credential: &str) -> Result<ApiKeyRecord, crate::settings::SettingsError> {
    if !credential.starts_with(API_KEY_PREFIX) || credential.len() < 32 {
        return Err(crate::settings::SettingsError::Invalid {
            key: "auth.key_sync_credential".to_owned(),
            reason: format!("expected a `{API_KEY_PREFIX}` key of at least 32 characters"),
        });
    }
    Ok(ApiKeyRecord {
        id: "key-sync".to_owned(),
        sha256: hash_api_key(credential),
        tenant: KEY_SYNC_TENANT.to_owned(),
        roles: Vec::new(),
        scopes: vec![KEY_SYNC_SCOPE.to_owned()],
    })
}

/// Resolves credentials to principals.
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    rs256: Vec<DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    api_keys: RwLock<HashMap<String, ApiKeyRecord>>,
    directory: Arc<KeyDirectory>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("rs256_keys", &self.rs256.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator; a bad PEM key or role is a settings error naming the key.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, crate::settings::SettingsError> {
        let mut rs256 = Vec::new();
        for (index, pem) in settings.jwt_rs256_public_keys.iter().enumerate() {
            let key =
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|error| crate::settings::SettingsError::Invalid {
                    key: format!("auth.jwt_rs256_public_keys[{index}]"),
                    reason: error.to_string(),
                })?;
            rs256.push(key);
        }
        let authenticator = Authenticator {
            hs256: settings
                .jwt_hs256_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
            rs256,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            api_keys: RwLock::new(HashMap::new()),
            directory: Arc::default(),
        };
        if let Some(credential) = &settings.key_sync_credential {
            authenticator
                .add_api_key(key_sync_record(credential)?)
                .map_err(|error| crate::settings::SettingsError::Invalid {
                    key: "auth.key_sync_credential".to_owned(),
                    reason: error.to_string(),
                })?;
        }
        for (index, record) in settings.api_keys.iter().enumerate() {
            authenticator
                .add_api_key(record.clone())
                .map_err(|error| crate::settings::SettingsError::Invalid {
                    key: format!("auth.api_keys[{index}]"),
                    reason: error.to_string(),
                })?;
        }
        Ok(authenticator)
    }

    /// Registers a key (by its record); its role bindings must parse.
    pub fn add_api_key(&self, record: ApiKeyRecord) -> Result<(), AuthError> {
        for role in &record.roles {
            role.parse::<RoleBinding>()?;
        }
        let mut keys = self
            .api_keys
            .write()
            .map_err(|_| AuthError::Invalid("key store poisoned".into()))?;
        keys.insert(record.sha256.clone(), record);
        Ok(())
    }

    /// Resolves the value of an `authorization` header.
    pub fn authenticate(&self, authorization: &str) -> Result<Principal, AuthError> {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Malformed("expected `Bearer <token>`".into()))?
            .trim();
        if token.starts_with(API_KEY_PREFIX) {
            return self.api_key(token);
        }
        self.jwt(token)
    }

    /// The keys created at runtime, which config-service or its follower keeps current.
    pub fn directory(&self) -> &Arc<KeyDirectory> {
        &self.directory
    }

    fn api_key(&self, plaintext: &str) -> Result<Principal, AuthError> {
        let hash = hash_api_key(plaintext);
        let configured = self
            .api_keys
            .read()
            .map_err(|_| AuthError::Invalid("key store poisoned".into()))?
            .get(&hash)
            .cloned();
        let record = match configured {
            Some(record) => record,
            None => self.stored_key(&hash)?,
        };
        Ok(Principal {
            subject: format!("apikey:{}", record.id),
            tenant: record.tenant,
            roles: parse_roles(&record.roles)?,
            scopes: record.scopes,
            credential: Credential::ApiKey,
        })
    }

    /// A key from the key store: refused once expired, and its use noted.
    fn stored_key(&self, hash: &str) -> Result<ApiKeyRecord, AuthError> {
        let key = self
            .directory
            .lookup(hash)
            .ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))?;
        let now = crate::clock::now_ms();
        if key.is_expired(now) {
            return Err(AuthError::Expired);
        }
        self.directory.record_use(&key.record.id, now);
        Ok(key.record)
    }

    fn jwt(&self, token: &str) -> Result<Principal, AuthError> {
        principal_from_claims(self.verify_jwt::<Claims>(token)?)
    }

    /// Verifies a JWT with the configured keys, issuer and audience (`exp` and `sub` required)
    /// and returns its claims as `C`: for tokens that are not management credentials, such as
    /// the connection tokens of realtime clients.
    pub fn verify_jwt<C: serde::de::DeserializeOwned>(&self, token: &str) -> Result<C, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| AuthError::Malformed(error.to_string()))?;
        let keys: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 => self.rs256.iter().collect(),
            other => return Err(AuthError::Invalid(format!("algorithm {other:?} is not accepted"))),
        };
        if keys.is_empty() {
            return Err(AuthError::Invalid(format!("no {:?} keys are configured", header.alg)));
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError::Invalid("no key verified the token".into());
        for key in keys {
            match jsonwebtoken::decode::<C>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => last = jwt_error(error),
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }
}

fn jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        JwtErrorKind::ExpiredSignature => AuthError::Expired,
        JwtErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
        JwtErrorKind::InvalidToken | JwtErrorKind::Base64(_) | JwtErrorKind::Json(_) | JwtErrorKind::Utf8(_) => {
            AuthError::Malformed(error.to_string())
        }
        _ => AuthError::Invalid(error.to_string()),
    }
}

fn principal_from_claims(claims: Claims) -> Result<Principal, AuthError> {
    if claims.tenant.is_empty() {
        return Err(AuthError::Invalid("the `tenant` claim is empty".into()));
    }
    Ok(Principal {
        subject: claims.sub,
        tenant: claims.tenant,
        roles: parse_roles(&claims.roles)?,
        scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
        credential: Credential::Jwt,
    })
}

fn parse_roles(roles: &[String]) -> Result<Vec<RoleBinding>, AuthError> {
    roles.iter().map(|role| role.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, roles: &[&str]) -> Principal {
        Principal {
            subject: "u1".into(),
            tenant: tenant.into(),
            roles: roles.iter().map(|r| r.parse().unwrap()).collect(),
            scopes: vec![],
            credential: Credential::Jwt,
        }
    }

    #[test]
    fn only_the_services_credential_acts_for_a_tenant_and_never_as_admin() {
        let user = principal("acme", &["admin"]);
        assert!(matches!(user.acting_for("globex"), Err(AuthError::Forbidden(_))));
        let mut services = principal("switchyard-services", &[]);
        services.scopes = vec![KEY_SYNC_SCOPE.to_owned()];
        let acting = services.acting_for("acme").unwrap();
        assert_eq!(acting.tenant, "acme");
        assert!(
            acting
                .authorize("acme", Role::Publisher, "projects/shop/flags/f")
                .is_ok()
        );
        assert!(acting.authorize("acme", Role::Admin, "projects/shop").is_err());
        assert!(acting.authorize("globex", Role::Viewer, "projects/shop").is_err());
        assert!(services.acting_for("Not A Tenant").is_err());
    }

    #[test]
    fn scoped_roles_cover_only_their_subtree() {
        let p = principal("acme", &["editor:projects/shop"]);
        assert!(
            p.authorize("acme", Role::Editor, "projects/shop/environments/prod")
                .is_ok()
        );
        assert!(p.authorize("acme", Role::Viewer, "projects/shop").is_ok());
        assert!(p.authorize("acme", Role::Editor, "projects/shopping").is_err());
        assert!(p.authorize("acme", Role::Publisher, "projects/shop").is_err());
    }

    #[test]
    fn another_tenant_is_forbidden_whatever_the_role() {
        let p = principal("acme", &["admin"]);
        assert!(matches!(
            p.authorize("globex", Role::Viewer, "projects/x"),
            Err(AuthError::Forbidden(_))
        ));
    }

    #[test]
    fn unknown_roles_are_rejected() {
        assert!("owner".parse::<RoleBinding>().is_err());
    }
}
