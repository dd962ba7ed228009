//! Publishing configuration: resolution, validation, releases, rollbacks, promotions, diffs
//! (what is served is read through `reading`).
//!
//! Resolution, in order: each base's resolved document (as published in the same
//! environment id), then the config's own content with its environment overlay merged on
//! top and `${var}` references replaced by the environment's variables. Merging follows
//! `merge::deep_merge`: objects merge, arrays and scalars replace, an explicit null deletes.
//!
//! A publication validates the resolved document against the draft's schema and rules and
//! changes nothing when anything fails. Configs that extend the published one are
//! re-resolved and validated too; those in the same environment become current in the
//! same transaction, each at its own revision.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde_json::Value;
use switchyard_platform::auth::Role;

use super::{
    catalog::{existing_paths, parse_document, parse_schema, under_any},
    diff::{self, Change},
    document::{self, Format},
    error::{ConfigError, ConfigResult},
    input::{MAX_MESSAGE, check_length, parse_etag},
    merge,
    model::{EnvKey, Environment, Precondition, Release, Resolution},
    names::ConfigRef,
    reading::Presented,
    repository::{Publication, Repository, StoreError},
    secrets,
    store::{Caller, ConfigStore},
    validation::{self, Rule, Violation, ViolationSource},
};

/// A resolved document in clear, and which of its paths are secret.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub document: Value,
    pub secret_paths: Vec<String>,
    /// The served bases this document was built from.
    pub requires: Vec<Precondition>,
}

/// What a config publishes: its own texts (as stored, possibly sealed) and bases.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub(super) format: Format,
    pub(super) content: String,
    pub(super) overlay: String,
    pub(super) extends: Vec<String>,
    /// Paths already known to be secret (from the draft or the release being copied): kept
    /// secret even when the schema used now no longer marks them.
    pub(super) secret_paths: Vec<String>,
}

/// A release as a caller sees it: texts opened or masked, resolved document likewise.
#[derive(Debug, Clone)]
pub struct ReleaseView {
    pub release: Release,
}

impl ReleaseView {
    /// `projects/{p}/environments/{e}/configs/{c}/releases/{n}`.
    pub fn release_name(&self) -> String {
        let release = &self.release;
        release_name(&release.env, &release.config, release.number)
    }
}

/// How often a publication is resolved again when what it was resolved from changed.
pub(super) const MAX_ATTEMPTS: usize = 5;

/// A side of a diff: a given release, or what an environment serves now.
#[derive(Debug, Clone)]
pub enum DiffSide {
    Release { env: EnvKey, config: String, number: i64 },
    Current { env: EnvKey, config: String },
}

/// The resource a publication into `env` of `config` is authorised against.
pub(super) fn published_resource(env: &EnvKey, config: &str) -> String {
    format!("{}/configs/{config}", env.resource())
}

pub(super) fn release_name(env: &EnvKey, config: &str, number: i64) -> String {
    format!("{}/configs/{config}/releases/{number}", env.resource())
}

fn under_deployment(name: &str) -> ConfigError {
    ConfigError::FailedPrecondition(format!(
        "{name} is being deployed progressively: stop or promote its deployment before publishing it again"
    ))
}

/// Validates a resolved document. Messages that could quote a secret value are replaced:
/// the schema library quotes the offending value (or the whole object around it), and a
/// rule that fails to evaluate quotes its operands. A rule's own message is the author's.
/// The checks run on the blocking pool within a time limit (see [`validation::check`]).
pub(super) async fn validate(
    schema: Option<&Value>,
    rules: &[Rule],
    resolved: &Resolved,
    prefix: &str,
) -> ConfigResult<()> {
    let document = Arc::new(resolved.document.clone());
    let violations = validation::check(schema.cloned(), rules.to_vec(), document)
        .await
        .map_err(ConfigError::Validation)?;
    if violations.is_empty() {
        return Ok(());
    }
    let has_secrets = !resolved.secret_paths.is_empty();
    Err(ConfigError::Validation(
        violations
            .into_iter()
            .map(|violation| {
                let hidden = match violation.source {
                    ViolationSource::Schema => touches_secret(&violation.path, &resolved.secret_paths),
                    ViolationSource::Rule => has_secrets && !rules.iter().any(|rule| rule.message == violation.message),
                    ViolationSource::Syntax => false,
                };
                let message = match (hidden, violation.source) {
                    (false, _) => violation.message,
                    (true, ViolationSource::Rule) => {
                        "a rule could not be evaluated (details hidden: the document holds secrets)".to_owned()
                    }
                    (true, _) => {
                        "this value holds a secret and does not satisfy the schema (details hidden)".to_owned()
                    }
                };
                Violation {
                    message: format!("{prefix}{message}"),
                    ..violation
                }
            })
            .collect(),
    ))
}

/// Whether `path` is a secret, lies under one, or contains one.
fn touches_secret(path: &str, secret_paths: &[String]) -> bool {
    under_any(path, secret_paths) || secret_paths.iter().any(|secret| under_any(secret, &[path.to_owned()]))
}

/// `value`, found at `path`, with every secret inside it masked.
fn mask_inside(path: &str, value: Value, secret_paths: &[String]) -> Value {
    if under_any(path, secret_paths) {
        return Value::String(secrets::REDACTED.to_owned());
    }
    let mut value = value;
    let relative: Vec<String> = secret_paths
        .iter()
        .filter_map(|secret| secret.strip_prefix(path))
        .filter(|rest| rest.starts_with('.') || rest.starts_with('['))
        .map(|rest| format!("{}{rest}", super::json_path::ROOT))
        .collect();
    secrets::redact(&mut value, &relative);
    value
}

impl<R: Repository> ConfigStore<R> {
    /// Resolves a config's texts (in clear) in `env`. `fresh` holds bases re-resolved in the
    /// same operation, which take precedence over what is served.
    pub(super) async fn resolve(
        &self,
        env: &EnvKey,
        variables: &BTreeMap<String, String>,
        home_project: &str,
        source: &Source,
        schema: Option<&Value>,
        fresh: &HashMap<ConfigRef, Resolved>,
    ) -> ConfigResult<Resolved> {
        let content = self.keystore.open_text(&source.content).await?;
        let overlay = self.keystore.open_text(&source.overlay).await?;
        let mut own = parse_document("content", source.format, &content)?;
        let mut paths = secrets::secret_paths(schema, &own);
        paths.extend(source.secret_paths.iter().cloned());
        if !overlay.trim().is_empty() {
            let overlay = parse_document("overlay", source.format, &overlay)?;
            paths.extend(secrets::secret_paths(schema, &overlay));
            merge::deep_merge(&mut own, &overlay);
        }
        secrets::unwrap_markers(&mut own);
        if let Err(unresolved) = merge::interpolate(&mut own, variables) {
            return Err(ConfigError::Validation(
                unresolved
                    .into_iter()
                    .map(|missing| Violation {
                        path: missing.path,
                        message: format!("`${{{}}}` is not a variable of {}", missing.variable, env.resource()),
                        source: ViolationSource::Syntax,
                    })
                    .collect(),
            ));
        }
        if source.extends.is_empty() {
            return Ok(Resolved {
                secret_paths: existing_paths(&own, paths),
                document: own,
                requires: Vec::new(),
            });
        }
        let mut document = Value::Object(serde_json::Map::new());
        let mut requires = Vec::new();
        for text in &source.extends {
            let base = ConfigRef::parse("extends", text, home_project)?;
            let (resolved, served_at) = self.base_in(env, &base, fresh).await?;
            requires.extend(served_at);
            paths.extend(resolved.secret_paths);
            merge::deep_merge(&mut document, &resolved.document);
        }
        merge::deep_merge(&mut document, &own);
        Ok(Resolved {
            secret_paths: existing_paths(&document, paths),
            document,
            requires,
        })
    }

    /// A base's resolved document in the environment of the same id, in clear.
    async fn base_in(
        &self,
        env: &EnvKey,
        base: &ConfigRef,
        fresh: &HashMap<ConfigRef, Resolved>,
    ) -> ConfigResult<(Resolved, Option<Precondition>)> {
        // A base re-resolved in the same publication is written in the same transaction.
        if let Some(resolved) = fresh.get(base) {
            return Ok((resolved.clone(), None));
        }
        let base_env = EnvKey::new(&env.tenant, &base.project, &env.environment);
        let entry = self
            .delivery
            .current(&base_env, &base.config)
            .await
            .map_err(|error| match error {
                ConfigError::NotFound(_) => ConfigError::FailedPrecondition(format!(
                    "base {} is not published in environment `{}`: publish it there first",
                    base.name(),
                    env.environment
                )),
                other => other,
            })?;
        let mut document = entry.served.resolved.clone();
        self.keystore.open_document(&mut document).await?;
        let served_at = Precondition {
            env: base_env,
            config: base.config.clone(),
            revision: entry.served.revision,
        };
        let resolved = Resolved {
            document,
            secret_paths: entry.served.secret_paths.clone(),
            requires: Vec::new(),
        };
        Ok((resolved, Some(served_at)))
    }

    /// Seals a resolved document for storage and describes it as a resolution.
    pub(super) async fn resolution(
        &self,
        env: &EnvKey,
        config: &str,
        release: i64,
        format: Format,
        resolved: &Resolved,
    ) -> ConfigResult<Resolution> {
        let mut sealed = resolved.document.clone();
        self.keystore
            .seal_document(&env.tenant, &mut sealed, &resolved.secret_paths)
            .await?;
        Ok(Resolution {
            config: config.to_owned(),
            release,
            format,
            content_hash: document::digest(&resolved.document),
            resolved: sealed,
            secret_paths: resolved.secret_paths.clone(),
            requires: resolved.requires.clone(),
        })
    }

    /// Checks a draft (or a candidate content) without publishing: every violation, and the
    /// resolved document with secrets masked.
    pub async fn validate(
        &self,
        caller: Caller<'_>,
        project: &str,
        config: &str,
        environment: Option<&str>,
        candidate: Option<String>,
    ) -> ConfigResult<(Vec<Violation>, Value)> {
        let draft = self.stored_draft(caller, project, config).await?;
        let owner = self.project(caller, project).await?;
        let environment = match environment {
            Some(id) if !id.is_empty() => owner.environments.iter().find(|environment| environment.id == id),
            _ => owner.environments.first(),
        }
        .cloned()
        .ok_or_else(|| ConfigError::FailedPrecondition(format!("projects/{project} has no such environment")))?;
        let env = EnvKey::new(caller.tenant(), project, &environment.id);
        let (content, overlays) = self.opened_draft(&draft).await?;
        if candidate
            .as_deref()
            .is_some_and(|text| secrets::sealed_key_id(text).is_some())
        {
            return Err(ConfigError::invalid(
                "content",
                "a sealed value cannot be a candidate document",
            ));
        }
        let source = Source {
            format: draft.format,
            content: candidate.unwrap_or(content),
            overlay: overlays.get(&environment.id).cloned().unwrap_or_default(),
            extends: draft.extends.clone(),
            secret_paths: draft.secret_paths.clone(),
        };
        let schema = parse_schema(&draft.schema)?;
        let resolved = match self
            .resolve(
                &env,
                &environment.variables,
                project,
                &source,
                schema.as_ref(),
                &HashMap::new(),
            )
            .await
        {
            Err(ConfigError::Validation(violations)) => return Ok((violations, Value::Null)),
            Err(ConfigError::Invalid(fields)) => {
                let violations = fields
                    .into_iter()
                    .map(|field| Violation {
                        path: "$".to_owned(),
                        message: format!("{}: {}", field.field, field.description),
                        source: ViolationSource::Syntax,
                    })
                    .collect();
                return Ok((violations, Value::Null));
            }
            other => other?,
        };
        let violations = match validate(schema.as_ref(), &draft.rules, &resolved, "").await {
            Err(ConfigError::Validation(violations)) => violations,
            other => {
                other?;
                Vec::new()
            }
        };
        let mut masked = resolved.document;
        secrets::redact(&mut masked, &resolved.secret_paths);
        Ok((violations, masked))
    }

    /// Publishes the draft to `environment` as a new release.
    pub async fn publish(
        &self,
        caller: Caller<'_>,
        project: &str,
        config: &str,
        environment: &str,
        message: &str,
        etag: &str,
    ) -> ConfigResult<ReleaseView> {
        let env = EnvKey::new(caller.tenant(), project, environment);
        caller.require(Role::Publisher, &published_resource(&env, config))?;
        // Two independent reads, on two connections: one round trip of latency instead of two.
        let (draft, target) = futures::future::join(
            self.draft_for_publisher(caller.tenant(), project, config),
            self.repository.environment(caller.tenant(), project, environment),
        )
        .await;
        let target = target?.ok_or_else(|| ConfigError::NotFound(env.resource()));
        let (draft, target) = (draft?, target?);
        if !etag.is_empty() && parse_etag(etag)? != draft.version {
            return Err(ConfigError::Conflict(format!("projects/{project}/configs/{config}")));
        }
        let source = Source {
            format: draft.format,
            content: draft.content.clone(),
            overlay: draft.overlays.get(environment).cloned().unwrap_or_default(),
            extends: draft.extends.clone(),
            secret_paths: draft.secret_paths.clone(),
        };
        let schema = parse_schema(&draft.schema)?;
        let rules = draft.rules.clone();
        self.publish_source(
            caller,
            &env,
            &target,
            config,
            source,
            Some((schema, rules)),
            message,
            String::new(),
        )
        .await
    }

    /// The draft a publication copies. Publishing rights on the target (checked by the caller)
    /// include reading what is published, so no separate read right on the draft is needed.
    pub(super) async fn draft_for_publisher(
        &self,
        tenant: &str,
        project: &str,
        config: &str,
    ) -> ConfigResult<super::model::ConfigDraft> {
        self.repository
            .config(tenant, project, config)
            .await?
            .ok_or_else(|| ConfigError::NotFound(format!("projects/{project}/configs/{config}")))
    }

    /// Resolves, validates (when asked), writes the release with its dependents, announces it.
    /// When a base or a dependent changed between resolving and writing (another publisher,
    /// or a replica whose view lagged), the store refuses the write; the view catches up and
    /// the publication is resolved again.
    #[allow(clippy::too_many_arguments)]
    async fn publish_source(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        environment: &Environment,
        config: &str,
        source: Source,
        checks: Option<(Option<Value>, Vec<Rule>)>,
        message: &str,
        origin: String,
    ) -> ConfigResult<ReleaseView> {
        let resource = published_resource(env, config);
        self.admission.admit(caller, env, "config.publish", &resource).await?;
        let mut attempt = 1;
        loop {
            let outcome = self
                .try_publish(
                    caller,
                    env,
                    environment,
                    config,
                    source.clone(),
                    &checks,
                    message,
                    &origin,
                )
                .await;
            match outcome {
                Err(ConfigError::Storage(StoreError::Stale)) if attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                    self.delivery.catch_up().await;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_publish(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        environment: &Environment,
        config: &str,
        source: Source,
        checks: &Option<(Option<Value>, Vec<Rule>)>,
        message: &str,
        origin: &str,
    ) -> ConfigResult<ReleaseView> {
        check_length("message", message, MAX_MESSAGE)?;
        let no_fresh = HashMap::new();
        let schema = checks.as_ref().and_then(|(schema, _)| schema.as_ref());
        let resolved = self
            .resolve(env, &environment.variables, &env.project, &source, schema, &no_fresh)
            .await?;
        if let Some((schema, rules)) = checks {
            validate(schema.as_ref(), rules, &resolved, "").await?;
        }
        let me = ConfigRef {
            project: env.project.clone(),
            config: config.to_owned(),
        };
        let cascade = self.cascade(caller, env, &me, &resolved).await?;
        self.refuse_under_deployment(env, config).await?;
        for (dependent_env, resolution) in &cascade {
            self.refuse_under_deployment(dependent_env, &resolution.config).await?;
        }
        let first = self.resolution(env, config, 0, source.format, &resolved).await?;
        let release = Release {
            env: env.clone(),
            config: config.to_owned(),
            number: 0,
            author: caller.principal.subject.clone(),
            message: message.to_owned(),
            created_ms: 0,
            format: source.format,
            content: source.content,
            overlay: source.overlay,
            extends: source.extends,
            resolved: first.resolved.clone(),
            content_hash: first.content_hash.clone(),
            secret_paths: first.secret_paths.clone(),
            source: origin.to_owned(),
            revision: 0,
            imported_author: String::new(),
            imported_ms: 0,
        };
        let resource = published_resource(env, config);
        let mut audit = vec![caller.audit("config.publish", &resource, None, Some(first.content_hash.clone()))];
        let mut resolutions = vec![first];
        let mut elsewhere: BTreeMap<EnvKey, Vec<Resolution>> = BTreeMap::new();
        for (dependent_env, resolution) in cascade {
            let resource = published_resource(&dependent_env, &resolution.config);
            let entry = caller.audit(
                "config.reresolve",
                &resource,
                None,
                Some(resolution.content_hash.clone()),
            );
            if dependent_env == *env {
                audit.push(entry);
                resolutions.push(resolution);
            } else {
                elsewhere.entry(dependent_env).or_default().push(resolution);
            }
        }
        let publication = Publication {
            env: env.clone(),
            release: Some(release),
            resolutions,
            retain_changes: self.delivery.retain(),
        };
        let (written, served) = self.repository.publish(&publication, &audit).await?;
        self.delivery.applied(env, served).await;
        for (other_env, resolutions) in elsewhere {
            self.write_resolutions(caller, &other_env, resolutions).await?;
        }
        let release =
            written.ok_or_else(|| ConfigError::FailedPrecondition("the release was not written".to_owned()))?;
        self.release_view(caller, release, false).await
    }

    /// Makes re-resolved documents current in an environment, in one transaction.
    async fn write_resolutions(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        resolutions: Vec<Resolution>,
    ) -> ConfigResult<()> {
        if resolutions.is_empty() {
            return Ok(());
        }
        let audit: Vec<_> = resolutions
            .iter()
            .map(|resolution| {
                let resource = published_resource(env, &resolution.config);
                caller.audit(
                    "config.reresolve",
                    &resource,
                    None,
                    Some(resolution.content_hash.clone()),
                )
            })
            .collect();
        let publication = Publication {
            env: env.clone(),
            release: None,
            resolutions,
            retain_changes: self.delivery.retain(),
        };
        let (_, served) = self.repository.publish(&publication, &audit).await?;
        self.delivery.applied(env, served).await;
        Ok(())
    }

    /// Re-resolves and validates every published dependent of `changed`, nearest first.
    async fn cascade(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        changed: &ConfigRef,
        resolved: &Resolved,
    ) -> ConfigResult<Vec<(EnvKey, Resolution)>> {
        let mut fresh = HashMap::from([(changed.clone(), resolved.clone())]);
        let mut out = Vec::new();
        for dependent in self.bases_first(caller, changed).await? {
            let dependent_env = EnvKey::new(&env.tenant, &dependent.project, &env.environment);
            let reresolved = self.reresolve(&dependent_env, &dependent, &fresh, None).await?;
            if let Some((resolution, document)) = reresolved {
                fresh.insert(dependent, document);
                out.push((dependent_env, resolution));
            }
        }
        Ok(out)
    }

    /// Every dependent of `changed`, each after all of its own bases that are also affected
    /// (a topological order of the inheritance graph below `changed`): with A extending B and
    /// C, and C extending B, C is re-resolved before A uses it.
    async fn bases_first(&self, caller: Caller<'_>, changed: &ConfigRef) -> ConfigResult<Vec<ConfigRef>> {
        let affected: Vec<ConfigRef> = self
            .dependents(caller, changed)
            .await?
            .into_iter()
            .map(|(dependent, _)| dependent)
            .collect();
        let mut waiting_on: HashMap<ConfigRef, usize> = affected.iter().map(|node| (node.clone(), 0)).collect();
        let mut children: HashMap<ConfigRef, Vec<ConfigRef>> = HashMap::new();
        for node in std::iter::once(changed).chain(&affected) {
            let direct = self
                .repository
                .direct_dependents(caller.tenant(), &node.project, &node.config)
                .await?;
            for (project, config) in direct {
                let child = ConfigRef { project, config };
                if let Some(count) = waiting_on.get_mut(&child) {
                    *count += 1;
                    children.entry(node.clone()).or_default().push(child);
                }
            }
        }
        let mut ordered = Vec::with_capacity(affected.len());
        let mut ready = vec![changed.clone()];
        while let Some(node) = ready.pop() {
            for child in children.remove(&node).unwrap_or_default() {
                let Some(count) = waiting_on.get_mut(&child) else {
                    continue;
                };
                *count -= 1;
                if *count == 0 {
                    ordered.push(child.clone());
                    ready.push(child);
                }
            }
        }
        Ok(ordered)
    }

    /// Re-resolves what `env` serves for `config` (if anything) against current bases.
    /// `variables` replaces the environment's stored variables (for planning an update).
    async fn reresolve(
        &self,
        env: &EnvKey,
        config: &ConfigRef,
        fresh: &HashMap<ConfigRef, Resolved>,
        variables: Option<&BTreeMap<String, String>>,
    ) -> ConfigResult<Option<(Resolution, Resolved)>> {
        let entry = match self.delivery.current(env, &config.config).await {
            Ok(entry) => entry,
            Err(ConfigError::NotFound(_)) => return Ok(None),
            Err(other) => return Err(other),
        };
        let Some(release) = self
            .repository
            .release(env, &config.config, entry.served.release)
            .await?
        else {
            return Ok(None);
        };
        let environment = self.environment_of(env).await?;
        let draft = self
            .repository
            .config(&env.tenant, &config.project, &config.config)
            .await?;
        let (schema, rules) = match &draft {
            Some(draft) => (parse_schema(&draft.schema)?, draft.rules.clone()),
            None => (None, Vec::new()),
        };
        let mut known = release.secret_paths;
        known.extend(draft.iter().flat_map(|draft| draft.secret_paths.iter().cloned()));
        let source = Source {
            format: release.format,
            content: release.content,
            overlay: release.overlay,
            extends: release.extends,
            secret_paths: known,
        };
        let variables = variables.unwrap_or(&environment.variables);
        let resolved = self
            .resolve(env, variables, &config.project, &source, schema.as_ref(), fresh)
            .await?;
        let prefix = format!("{} would become invalid: ", config.name());
        validate(schema.as_ref(), &rules, &resolved, &prefix).await?;
        let mut resolution = self
            .resolution(env, &config.config, release.number, release.format, &resolved)
            .await?;
        resolution.requires.push(Precondition {
            env: env.clone(),
            config: config.config.clone(),
            revision: entry.served.revision,
        });
        Ok(Some((resolution, resolved)))
    }

    /// The environment behind an env key (of the key's tenant).
    /// Refuses to change what `config` serves while a deployment moves it to another release:
    /// the deployment decides what its clients get until it completes or is stopped.
    async fn refuse_under_deployment(&self, env: &EnvKey, config: &str) -> ConfigResult<()> {
        match self.delivery.current(env, config).await {
            Ok(entry) if entry.candidate.is_some() => Err(under_deployment(&entry.name)),
            Ok(_) | Err(ConfigError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    pub(super) async fn environment_of(&self, env: &EnvKey) -> ConfigResult<Environment> {
        self.repository
            .environment(&env.tenant, &env.project, &env.environment)
            .await?
            .ok_or_else(|| ConfigError::NotFound(env.resource()))
    }

    /// What everything an environment serves resolves to with `variables`, bases before the
    /// configs extending them, validated; nothing is written.
    pub(super) async fn plan_environment(
        &self,
        caller: Caller<'_>,
        project: &str,
        environment: &str,
        variables: &BTreeMap<String, String>,
    ) -> ConfigResult<Vec<Resolution>> {
        let env = EnvKey::new(caller.tenant(), project, environment);
        let snapshot = self.delivery.snapshot(&env).await?;
        if let Some(entry) = snapshot.entries.iter().find(|entry| entry.candidate.is_some()) {
            return Err(under_deployment(&entry.name));
        }
        let mut pending: Vec<String> = snapshot
            .entries
            .iter()
            .map(|entry| entry.served.config.clone())
            .collect();
        let mut fresh = HashMap::new();
        let mut resolutions = Vec::new();
        // Bases first: a config waits while one of its same-project bases is still pending.
        let mut extends_of: HashMap<String, Vec<ConfigRef>> = HashMap::new();
        for entry in &snapshot.entries {
            let served = &entry.served;
            if let Some(release) = self.repository.release(&env, &served.config, served.release).await? {
                let bases = release
                    .extends
                    .iter()
                    .filter_map(|text| ConfigRef::parse("extends", text, project).ok())
                    .collect();
                extends_of.insert(served.config.clone(), bases);
            }
        }
        while !pending.is_empty() {
            let ready: Vec<String> = pending
                .iter()
                .filter(|config| {
                    extends_of.get(*config).into_iter().flatten().all(|base| {
                        base.project != project || !pending.contains(&base.config) || base.config == **config
                    })
                })
                .cloned()
                .collect();
            let batch = if ready.is_empty() { pending.clone() } else { ready };
            for config in &batch {
                let reference = ConfigRef {
                    project: project.to_owned(),
                    config: config.clone(),
                };
                let planned = self.reresolve(&env, &reference, &fresh, Some(variables)).await?;
                if let Some((resolution, resolved)) = planned {
                    fresh.insert(reference, resolved);
                    resolutions.push(resolution);
                }
            }
            pending.retain(|config| !batch.contains(config));
        }
        Ok(resolutions)
    }

    /// The config's own published texts (the raw view), opened or masked.
    pub async fn raw_texts(
        &self,
        caller: Caller<'_>,
        presented: &Presented,
        reveal: bool,
    ) -> ConfigResult<(String, String)> {
        let served = &presented.entry.served;
        let release = self
            .repository
            .release(&presented.env, &served.config, served.release)
            .await?
            .ok_or_else(|| ConfigError::NotFound(release_name(&presented.env, &served.config, served.release)))?;
        let view = self.release_view(caller, release, reveal).await?;
        Ok((view.release.content, view.release.overlay))
    }

    /// Opens or masks a release's texts and resolved document.
    pub(super) async fn release_view(
        &self,
        caller: Caller<'_>,
        release: Release,
        reveal: bool,
    ) -> ConfigResult<ReleaseView> {
        if reveal {
            caller.require_reveal(&published_resource(&release.env, &release.config))?;
        }
        let mut release = release;
        let paths = release.secret_paths.clone();
        let sealed = [&release.content, &release.overlay]
            .iter()
            .any(|text| secrets::sealed_key_id(text).is_some());
        if !paths.is_empty() || sealed {
            release.content = self
                .present_text(&release.content, release.format, &paths, reveal)
                .await?;
            release.overlay = self
                .present_text(&release.overlay, release.format, &paths, reveal)
                .await?;
        }
        if reveal {
            self.keystore.open_document(&mut release.resolved).await?;
        } else {
            secrets::redact(&mut release.resolved, &paths);
        }
        Ok(ReleaseView { release })
    }

    pub async fn release(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
        number: i64,
        reveal: bool,
    ) -> ConfigResult<ReleaseView> {
        caller.require(Role::Viewer, &published_resource(env, config))?;
        let release = self
            .repository
            .release(env, config, number)
            .await?
            .ok_or_else(|| ConfigError::NotFound(release_name(env, config, number)))?;
        self.release_view(caller, release, reveal).await
    }

    /// Release history, newest first, below `before` (0: from the newest).
    pub async fn releases(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
        before: i64,
        page_size: i32,
    ) -> ConfigResult<Vec<ReleaseView>> {
        caller.require(Role::Viewer, &published_resource(env, config))?;
        self.environment_of(env).await?;
        let limit = self.page_size(page_size);
        let mut views = Vec::new();
        for release in self.repository.list_releases(env, config, before, limit).await? {
            views.push(self.release_view(caller, release, false).await?);
        }
        Ok(views)
    }

    /// Publishes release `number` again as a new release. Its content was validated when it was
    /// first published, so a rollback is not refused by a schema that changed since.
    pub async fn rollback(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
        number: i64,
        message: &str,
    ) -> ConfigResult<ReleaseView> {
        caller.require(Role::Publisher, &published_resource(env, config))?;
        let environment = self.environment_of(env).await?;
        let old = self
            .repository
            .release(env, config, number)
            .await?
            .ok_or_else(|| ConfigError::NotFound(release_name(env, config, number)))?;
        let mut known = old.secret_paths;
        if let Some(draft) = self.repository.config(&env.tenant, &env.project, config).await? {
            known.extend(draft.secret_paths);
        }
        let source = Source {
            format: old.format,
            content: old.content,
            overlay: old.overlay,
            extends: old.extends,
            secret_paths: known,
        };
        let message = if message.is_empty() {
            format!("rollback to release {number}")
        } else {
            message.to_owned()
        };
        let origin = release_name(env, config, number);
        self.publish_source(caller, env, &environment, config, source, None, &message, origin)
            .await
    }

    /// Publishes release `number`'s content to the next environment of the pipeline, with
    /// that environment's overlay, bases and variables, validated like any publication.
    pub async fn promote(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
        number: i64,
        message: &str,
    ) -> ConfigResult<ReleaseView> {
        caller.require(Role::Viewer, &published_resource(env, config))?;
        let environment = self.environment_of(env).await?;
        let pipeline = self
            .repository
            .project(&env.tenant, &env.project)
            .await?
            .map(|project| project.environments)
            .unwrap_or_default();
        let next = pipeline
            .iter()
            .filter(|candidate| candidate.position > environment.position)
            .min_by_key(|candidate| candidate.position)
            .cloned()
            .ok_or_else(|| {
                ConfigError::FailedPrecondition(format!("{} is the last environment of the pipeline", env.resource()))
            })?;
        let target = EnvKey::new(&env.tenant, &env.project, &next.id);
        caller.require(Role::Publisher, &published_resource(&target, config))?;
        let old = self
            .repository
            .release(env, config, number)
            .await?
            .ok_or_else(|| ConfigError::NotFound(release_name(env, config, number)))?;
        let draft = self.draft_for_publisher(&env.tenant, &env.project, config).await?;
        let mut known = old.secret_paths;
        known.extend(draft.secret_paths.iter().cloned());
        let source = Source {
            format: old.format,
            content: old.content,
            overlay: draft.overlays.get(&next.id).cloned().unwrap_or_default(),
            extends: old.extends,
            secret_paths: known,
        };
        let checks = Some((parse_schema(&draft.schema)?, draft.rules.clone()));
        let message = if message.is_empty() {
            format!("promoted from {}", env.environment)
        } else {
            message.to_owned()
        };
        let origin = release_name(env, config, number);
        self.publish_source(caller, &target, &next, config, source, checks, &message, origin)
            .await
    }

    async fn side(&self, caller: Caller<'_>, side: &DiffSide) -> ConfigResult<(Value, Vec<String>)> {
        match side {
            DiffSide::Release { env, config, number } => {
                caller.require(Role::Viewer, &published_resource(env, config))?;
                let release = self
                    .repository
                    .release(env, config, *number)
                    .await?
                    .ok_or_else(|| ConfigError::NotFound(release_name(env, config, *number)))?;
                Ok((release.resolved, release.secret_paths))
            }
            DiffSide::Current { env, config } => {
                caller.require(Role::Viewer, &published_resource(env, config))?;
                let entry = self.delivery.current(env, config).await?;
                Ok((entry.served.resolved.clone(), entry.served.secret_paths.clone()))
            }
        }
    }

    /// The changed paths between two resolved documents; secret values show as masked.
    pub async fn diff(&self, caller: Caller<'_>, from: &DiffSide, to: &DiffSide) -> ConfigResult<Vec<Change>> {
        let (mut before, mut paths) = self.side(caller, from).await?;
        let (mut after, after_paths) = self.side(caller, to).await?;
        paths.extend(after_paths);
        self.keystore.open_document(&mut before).await?;
        self.keystore.open_document(&mut after).await?;
        Ok(diff::diff(&before, &after)
            .into_iter()
            .map(|change| Change {
                before: change.before.map(|value| mask_inside(&change.path, value, &paths)),
                after: change.after.map(|value| mask_inside(&change.path, value, &paths)),
                ..change
            })
            .collect())
    }
}
