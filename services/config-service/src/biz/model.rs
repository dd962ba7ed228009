//! The nouns of config-service as the domain sees them. Text fields that may hold secrets
//! (`content`, `overlays`, `resolved`) are kept here exactly as stored: sealed where the
//! config has secret paths. [`super::keystore`] seals and opens them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{document::Format, validation::Rule};

/// One environment of one project of one tenant: the unit of revisions and watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvKey {
    pub tenant: String,
    pub project: String,
    pub environment: String,
}

impl EnvKey {
    pub fn new(tenant: &str, project: &str, environment: &str) -> Self {
        EnvKey {
            tenant: tenant.to_owned(),
            project: project.to_owned(),
            environment: environment.to_owned(),
        }
    }

    /// `projects/{project}/environments/{environment}`.
    pub fn resource(&self) -> String {
        format!("projects/{}/environments/{}", self.project, self.environment)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: String,
    pub display_name: String,
    pub created_ms: i64,
    /// In pipeline order.
    pub environments: Vec<Environment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub project: String,
    pub id: String,
    pub position: i64,
    pub variables: BTreeMap<String, String>,
    /// The latest change revision inside this environment.
    pub revision: i64,
    /// Changes at or below this revision may be gone from the change log.
    pub compacted: i64,
    /// Bumped by every update; the etag clients send back.
    pub version: i64,
    /// Flags of this environment evaluate without an SDK key (flag-service learns it through
    /// the key store).
    pub public_evaluation: bool,
}

/// A configuration and its editable draft.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDraft {
    pub project: String,
    pub id: String,
    pub format: Format,
    /// As written (sealed when `secret_paths` is not empty).
    pub content: String,
    /// Environment id → overlay text (sealed like `content`).
    pub overlays: BTreeMap<String, String>,
    /// Base configs, lowest priority first, as [`ConfigRef`] texts.
    pub extends: Vec<String>,
    /// JSON Schema text, empty for none.
    pub schema: String,
    pub rules: Vec<Rule>,
    pub labels: BTreeMap<String, String>,
    pub secret_paths: Vec<String>,
    /// Lower-cased, redacted text for content search.
    pub search_text: String,
    pub version: i64,
    pub updated_by: String,
    pub updated_ms: i64,
}

/// An immutable, numbered publication of a config to an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub env: EnvKey,
    pub config: String,
    pub number: i64,
    pub author: String,
    pub message: String,
    pub created_ms: i64,
    pub format: Format,
    pub content: String,
    pub overlay: String,
    pub extends: Vec<String>,
    /// The resolved document at publish time (secret values sealed).
    pub resolved: Value,
    pub content_hash: String,
    pub secret_paths: Vec<String>,
    /// The release this one copies (rollback, promotion), as a resource name; empty otherwise.
    pub source: String,
    pub revision: i64,
    /// For an imported release, the author and time its archive claimed (`author` and
    /// `created_ms` are the importer's); empty and 0 otherwise.
    pub imported_author: String,
    pub imported_ms: i64,
}

/// What an environment serves for one config as of one revision: a row of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub config: String,
    pub revision: i64,
    pub release: i64,
    pub format: Format,
    /// Secret values sealed.
    pub resolved: Value,
    pub content_hash: String,
    pub secret_paths: Vec<String>,
    pub created_ms: i64,
    /// Set while a deployment moves the config to another release.
    pub rollout: Option<Box<Rollout>>,
}

/// A config under deployment: clients whose bucket (their id hashed with `seed`) falls below
/// `share` get the candidate release; the others keep the served one.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub deployment: i64,
    /// Parts per million of clients.
    pub share: u32,
    pub seed: String,
    pub release: i64,
    pub format: Format,
    /// Secret values sealed.
    pub resolved: Value,
    pub content_hash: String,
    pub secret_paths: Vec<String>,
}

/// What a resolution was computed from: `config` in `env` was served at `revision` (0 when
/// it was not served). A publication whose preconditions no longer hold is refused, so a
/// document resolved from a state that changed meanwhile never becomes current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    pub env: EnvKey,
    pub config: String,
    pub revision: i64,
}

/// A new resolved document for a config, to be given the environment's next revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub config: String,
    pub release: i64,
    pub format: Format,
    pub resolved: Value,
    pub content_hash: String,
    pub secret_paths: Vec<String>,
    pub requires: Vec<Precondition>,
}

/// A client that fetched a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigClient {
    pub service: String,
    pub instance: String,
    pub release: i64,
    pub etag: String,
    pub last_fetch_ms: i64,
}

/// One fetch to record: who got which release of what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fetch {
    pub env: EnvKey,
    pub config: String,
    pub service: String,
    pub instance: String,
    pub release: i64,
    pub etag: String,
}

/// Filters for listing configs.
#[derive(Debug, Clone, Default)]
pub struct ConfigFilter {
    pub name_prefix: String,
    /// `(key, value)` pairs that must all match.
    pub labels: Vec<(String, String)>,
    /// Lower-cased text the draft must contain.
    pub text: String,
    /// Only ids after this one (keyset pagination).
    pub after: String,
    pub limit: i64,
}

/// A data key as stored: wrapped under a key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub tenant: String,
    pub id: String,
    pub kek_id: String,
    pub ciphertext: String,
    pub created_ms: i64,
}

pub use switchyard_platform::clock::now_ms;
