//! Projects, environments and configuration drafts: everything that is edited before it is
//! published. A draft's structured content is parsed on every write, so a draft that is
//! stored always parses; its secret values are sealed before it reaches storage.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use switchyard_platform::{audit::AuditEntry, auth::Role};

use super::{
    document::{self, Format},
    error::{ConfigError, ConfigResult},
    json_path,
    model::{ConfigDraft, ConfigFilter, Environment, Project, now_ms},
    names::{ConfigRef, check_id},
    repository::{Publication, Repository, StoreError},
    secrets,
    store::{Caller, ConfigStore, digest_text},
    validation::{Rule, Validator},
};

/// Limits on what a draft may carry.
pub const MAX_EXTENDS: usize = 16;
pub const MAX_LABELS: usize = 64;
pub const MAX_VARIABLES: usize = 256;
pub const MAX_ENVIRONMENTS: usize = 32;
const MAX_INHERITANCE_DEPTH: usize = 16;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest release message, in characters.
pub const MAX_MESSAGE: usize = 2000;

/// Refuses text longer than `max` characters instead of silently cutting it.
pub fn check_length(field: &str, text: &str, max: usize) -> ConfigResult<()> {
    if text.chars().nth(max).is_none() {
        return Ok(());
    }
    Err(ConfigError::invalid(field, format!("at most {max} characters")))
}

/// What a caller writes when creating or replacing a config.
#[derive(Debug, Clone, Default)]
pub struct ConfigSpec {
    pub format: Option<Format>,
    pub content: String,
    pub overlays: BTreeMap<String, String>,
    pub extends: Vec<String>,
    pub schema: String,
    pub rules: Vec<Rule>,
    pub labels: BTreeMap<String, String>,
}

/// A draft as a caller sees it: texts opened, or rendered with secrets masked.
#[derive(Debug, Clone)]
pub struct DraftView {
    pub draft: ConfigDraft,
}

/// A draft's texts parsed: the content, each overlay, and the schema.
#[derive(Debug, Clone)]
pub struct ParsedDraft {
    pub content: Value,
    pub overlays: BTreeMap<String, Value>,
    pub schema: Option<Value>,
}

impl ParsedDraft {
    /// Secret paths from the schema's annotations and the documents' `$secret` markers.
    pub fn secret_paths(&self) -> Vec<String> {
        let mut paths: BTreeSet<String> = secrets::secret_paths(self.schema.as_ref(), &self.content)
            .into_iter()
            .collect();
        for overlay in self.overlays.values() {
            paths.extend(secrets::secret_paths(self.schema.as_ref(), overlay));
        }
        paths.into_iter().collect()
    }
}

/// Parses a document, naming the field in the error.
pub fn parse_document(field: &str, format: Format, text: &str) -> ConfigResult<Value> {
    document::parse(format, text).map_err(|error| ConfigError::invalid(field, error.to_string()))
}

/// Parses and checks everything a spec carries.
pub fn parse_spec(spec: &ConfigSpec, format: Format, environments: &[Environment]) -> ConfigResult<ParsedDraft> {
    let content = parse_document("content", format, &spec.content)?;
    let known: BTreeSet<&str> = environments.iter().map(|environment| environment.id.as_str()).collect();
    let mut overlays = BTreeMap::new();
    for (environment, text) in &spec.overlays {
        if !known.contains(environment.as_str()) {
            return Err(ConfigError::invalid(
                &format!("overlays[{environment}]"),
                "no such environment in this project",
            ));
        }
        overlays.insert(
            environment.clone(),
            parse_document(&format!("overlays[{environment}]"), format, text)?,
        );
    }
    if format == Format::Text && (!spec.extends.is_empty() || !overlays.is_empty()) {
        return Err(ConfigError::invalid(
            "extends",
            "plain-text configs cannot extend templates or have overlays",
        ));
    }
    let schema = parse_schema(&spec.schema)?;
    let validator = Validator::compile(schema.as_ref(), &spec.rules).map_err(ConfigError::Validation)?;
    let costly = validator.costly_rules(&content);
    if !costly.is_empty() {
        return Err(ConfigError::Validation(costly));
    }
    check_map("labels", &spec.labels, MAX_LABELS)?;
    if spec.extends.len() > MAX_EXTENDS {
        return Err(ConfigError::invalid("extends", format!("at most {MAX_EXTENDS} bases")));
    }
    Ok(ParsedDraft {
        content,
        overlays,
        schema,
    })
}

/// A config's JSON Schema text, `None` when empty.
pub fn parse_schema(text: &str) -> ConfigResult<Option<Value>> {
    match text.trim() {
        "" => Ok(None),
        text => Ok(Some(
            serde_json::from_str(text).map_err(|error| ConfigError::invalid("schema", error.to_string()))?,
        )),
    }
}

/// Checks a string map: bounded size, keys of a safe alphabet.
pub fn check_map(field: &str, map: &BTreeMap<String, String>, max: usize) -> ConfigResult<()> {
    if map.len() > max {
        return Err(ConfigError::invalid(field, format!("at most {max} entries")));
    }
    for key in map.keys() {
        let valid = !key.is_empty()
            && key.len() <= 128
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
        if !valid {
            return Err(ConfigError::invalid(
                &format!("{field}[{key}]"),
                "keys are 1-128 of A-Z a-z 0-9 _ - . /",
            ));
        }
    }
    Ok(())
}

/// The lower-cased, secret-free text that content search reads.
fn search_text(id: &str, format: Format, parsed: &ParsedDraft, paths: &[String]) -> String {
    let mut masked = parsed.content.clone();
    secrets::unwrap_markers(&mut masked);
    secrets::redact(&mut masked, paths);
    let text = match format {
        Format::Text => masked.as_str().map(str::to_owned).unwrap_or_default(),
        _ => masked.to_string(),
    };
    format!("{id}\n{text}").to_lowercase()
}

impl<R: Repository> ConfigStore<R> {
    pub async fn create_project(
        &self,
        caller: Caller<'_>,
        id: &str,
        display_name: &str,
        environment_ids: &[String],
    ) -> ConfigResult<Project> {
        check_id("project_id", id)?;
        check_length("project.display_name", display_name, MAX_DISPLAY_NAME)?;
        caller.require(Role::Admin, &format!("projects/{id}"))?;
        if environment_ids.len() > MAX_ENVIRONMENTS {
            return Err(ConfigError::invalid(
                "environment_ids",
                format!("at most {MAX_ENVIRONMENTS}"),
            ));
        }
        let mut seen = BTreeSet::new();
        for environment in environment_ids {
            check_id("environment_ids", environment)?;
            if !seen.insert(environment) {
                return Err(ConfigError::invalid(
                    "environment_ids",
                    format!("`{environment}` is listed twice"),
                ));
            }
        }
        let project = Project {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            created_ms: now_ms(),
            environments: environment_ids
                .iter()
                .enumerate()
                .map(|(position, environment)| new_environment(id, environment, position as i64, BTreeMap::new()))
                .collect(),
        };
        let resource = format!("projects/{id}");
        let audit = caller.audit("project.create", &resource, None, Some(digest_text(&resource)));
        match self.repository.create_project(caller.tenant(), &project, &audit).await {
            Err(StoreError::Duplicate) => Err(ConfigError::AlreadyExists(resource)),
            other => Ok(other.map(|()| project)?),
        }
    }

    /// A project of the caller's tenant; other tenants' projects are reported as missing.
    pub async fn project(&self, caller: Caller<'_>, id: &str) -> ConfigResult<Project> {
        let resource = format!("projects/{id}");
        caller.require(Role::Viewer, &resource)?;
        self.repository
            .project(caller.tenant(), id)
            .await?
            .ok_or(ConfigError::NotFound(resource))
    }

    pub async fn list_projects(&self, caller: Caller<'_>, after: &str, page_size: i32) -> ConfigResult<Vec<Project>> {
        caller.require(Role::Viewer, "projects")?;
        let limit = self.page_size(page_size);
        Ok(self.repository.list_projects(caller.tenant(), after, limit).await?)
    }

    pub async fn create_environment(
        &self,
        caller: Caller<'_>,
        project: &str,
        id: &str,
        variables: BTreeMap<String, String>,
        public_evaluation: bool,
    ) -> ConfigResult<Environment> {
        check_id("environment_id", id)?;
        check_map("variables", &variables, MAX_VARIABLES)?;
        caller.require(Role::Admin, &format!("projects/{project}"))?;
        let existing = self.project(caller, project).await?;
        if existing.environments.len() >= MAX_ENVIRONMENTS {
            return Err(ConfigError::FailedPrecondition(format!(
                "a project has at most {MAX_ENVIRONMENTS} environments"
            )));
        }
        let position = existing
            .environments
            .iter()
            .map(|environment| environment.position + 1)
            .max()
            .unwrap_or(0);
        let environment = Environment {
            public_evaluation,
            ..new_environment(project, id, position, variables)
        };
        let resource = format!("projects/{project}/environments/{id}");
        let audit = caller.audit("environment.create", &resource, None, Some(digest_text(&resource)));
        match self
            .repository
            .create_environment(caller.tenant(), &environment, &audit)
            .await
        {
            Err(StoreError::Duplicate) => Err(ConfigError::AlreadyExists(resource)),
            Err(other) => Err(other.into()),
            Ok(()) => {
                if environment.public_evaluation {
                    self.access_changed.notify_one();
                }
                Ok(environment)
            }
        }
    }

    pub async fn environment(&self, caller: Caller<'_>, project: &str, id: &str) -> ConfigResult<Environment> {
        let resource = format!("projects/{project}/environments/{id}");
        caller.require(Role::Viewer, &resource)?;
        self.repository
            .environment(caller.tenant(), project, id)
            .await?
            .ok_or(ConfigError::NotFound(resource))
    }

    /// Replaces an environment's variables when `etag` matches, then re-resolves what it serves.
    /// Changes what `update` names. New variables re-resolve what the environment serves;
    /// making its flags public (or private again) takes an admin.
    pub async fn update_environment(
        &self,
        caller: Caller<'_>,
        project: &str,
        id: &str,
        update: EnvironmentUpdate,
        etag: &str,
    ) -> ConfigResult<Environment> {
        if let Some(variables) = &update.variables {
            check_map("variables", variables, MAX_VARIABLES)?;
        }
        let resource = format!("projects/{project}/environments/{id}");
        caller.require(Role::Publisher, &resource)?;
        if update.public_evaluation.is_some() {
            caller.require(Role::Admin, &resource)?;
        }
        let version = parse_etag(etag)?;
        let current = self.environment(caller, project, id).await?;
        if version != current.version {
            return Err(ConfigError::Conflict(resource));
        }
        let access_changes = update
            .public_evaluation
            .is_some_and(|public| public != current.public_evaluation);
        let updated = Environment {
            variables: update.variables.clone().unwrap_or_else(|| current.variables.clone()),
            public_evaluation: update.public_evaluation.unwrap_or(current.public_evaluation),
            ..current.clone()
        };
        let audit = caller.audit(
            "environment.update",
            &resource,
            Some(environment_digest(&current)),
            Some(environment_digest(&updated)),
        );
        let stored = self
            .write_environment(caller, updated, update.variables.is_some(), &audit)
            .await?;
        if access_changes {
            self.access_changed.notify_one();
        }
        Ok(stored)
    }

    /// Writes an updated environment with, when its variables changed, everything it serves
    /// re-resolved with them, in one transaction: a refused update changes nothing.
    async fn write_environment(
        &self,
        caller: Caller<'_>,
        updated: Environment,
        reresolve: bool,
        audit: &AuditEntry,
    ) -> ConfigResult<Environment> {
        let (project, id) = (updated.project.clone(), updated.id.clone());
        let resource = format!("projects/{project}/environments/{id}");
        // Resolve and validate everything the environment serves with the new variables
        // first; the variables and the new documents are then written in one transaction,
        // so a refused update changes nothing.
        let env = super::model::EnvKey::new(caller.tenant(), &project, &id);
        let mut attempt = 1;
        loop {
            let resolutions = match reresolve {
                true => self.plan_environment(caller, &project, &id, &updated.variables).await?,
                false => Vec::new(),
            };
            let publication = Publication {
                env: env.clone(),
                release: None,
                resolutions,
                retain_changes: self.delivery.retain(),
            };
            let written = self
                .repository
                .update_environment(caller.tenant(), &updated, audit, &publication)
                .await;
            match written {
                Err(StoreError::Conflict) => return Err(ConfigError::Conflict(resource)),
                Err(StoreError::Stale) if attempt < super::publishing::MAX_ATTEMPTS => {
                    attempt += 1;
                    self.delivery.catch_up().await;
                }
                Err(other) => return Err(other.into()),
                Ok((stored, served)) => {
                    self.delivery.applied(&env, served).await;
                    return Ok(stored);
                }
            }
        }
    }

    pub async fn create_config(
        &self,
        caller: Caller<'_>,
        project: &str,
        id: &str,
        spec: ConfigSpec,
    ) -> ConfigResult<DraftView> {
        check_id("config_id", id)?;
        let resource = format!("projects/{project}/configs/{id}");
        caller.require(Role::Editor, &resource)?;
        let owner = self.project(caller, project).await?;
        let format = spec.format.unwrap_or(Format::Json);
        let parsed = parse_spec(&spec, format, &owner.environments)?;
        self.check_extends(caller, project, id, &spec.extends).await?;
        let draft = self.seal_draft(caller, project, id, format, spec, &parsed, 1).await?;
        let audit = caller.audit(
            "config.create",
            &resource,
            None,
            Some(document::digest(&parsed.content)),
        );
        match self.repository.create_config(caller.tenant(), &draft, &audit).await {
            Err(StoreError::Duplicate) => Err(ConfigError::AlreadyExists(resource)),
            other => {
                other?;
                self.draft_view(caller, draft, false).await
            }
        }
    }

    /// Builds the stored form of a draft: secret-holding texts sealed, search text masked.
    #[allow(clippy::too_many_arguments)]
    async fn seal_draft(
        &self,
        caller: Caller<'_>,
        project: &str,
        id: &str,
        format: Format,
        spec: ConfigSpec,
        parsed: &ParsedDraft,
        version: i64,
    ) -> ConfigResult<ConfigDraft> {
        let secret_paths = parsed.secret_paths();
        refuse_masked_secrets(parsed, &secret_paths)?;
        let search_text = search_text(id, format, parsed, &secret_paths);
        let (content, overlays) = if secret_paths.is_empty() {
            (spec.content, spec.overlays)
        } else {
            let content = self.keystore.seal_text(caller.tenant(), &spec.content).await?;
            let mut overlays = BTreeMap::new();
            for (environment, text) in spec.overlays {
                overlays.insert(environment, self.keystore.seal_text(caller.tenant(), &text).await?);
            }
            (content, overlays)
        };
        Ok(ConfigDraft {
            project: project.to_owned(),
            id: id.to_owned(),
            format,
            content,
            overlays,
            extends: spec.extends,
            schema: spec.schema,
            rules: spec.rules,
            labels: spec.labels,
            secret_paths,
            search_text,
            version,
            updated_by: caller.principal.subject.clone(),
            updated_ms: now_ms(),
        })
    }

    /// Rejects bases that do not exist or that lead back to the config itself.
    async fn check_extends(&self, caller: Caller<'_>, project: &str, id: &str, extends: &[String]) -> ConfigResult<()> {
        let me = ConfigRef {
            project: project.to_owned(),
            config: id.to_owned(),
        };
        let mut stack: Vec<(ConfigRef, Vec<String>)> = Vec::new();
        for (position, text) in extends.iter().enumerate() {
            let base = ConfigRef::parse(&format!("extends[{position}]"), text, project)?;
            // Extending a config exposes its content through this one: the caller must be
            // able to read it.
            caller.require(Role::Viewer, &base.name())?;
            if base == me {
                return Err(ConfigError::invalid("extends", "a config cannot extend itself"));
            }
            stack.push((base, vec![me.name()]));
        }
        let mut depth_of: HashMap<ConfigRef, usize> = HashMap::new();
        while let Some((base, trail)) = stack.pop() {
            if trail.len() > MAX_INHERITANCE_DEPTH {
                return Err(ConfigError::invalid(
                    "extends",
                    format!("inheritance deeper than {MAX_INHERITANCE_DEPTH}"),
                ));
            }
            let Some(found) = self
                .repository
                .config(caller.tenant(), &base.project, &base.config)
                .await?
            else {
                return Err(ConfigError::invalid(
                    "extends",
                    format!("{} does not exist", base.name()),
                ));
            };
            if depth_of
                .insert(base.clone(), trail.len())
                .is_some_and(|seen| seen <= trail.len())
            {
                continue;
            }
            let mut path = trail.clone();
            path.push(base.name());
            for text in &found.extends {
                let next = ConfigRef::parse("extends", text, &base.project)?;
                if next == me {
                    path.push(me.name());
                    return Err(ConfigError::invalid(
                        "extends",
                        format!("inheritance cycle: {}", path.join(" -> ")),
                    ));
                }
                stack.push((next, path.clone()));
            }
        }
        Ok(())
    }

    /// The stored draft, unopened.
    pub(super) async fn stored_draft(&self, caller: Caller<'_>, project: &str, id: &str) -> ConfigResult<ConfigDraft> {
        let resource = format!("projects/{project}/configs/{id}");
        caller.require(Role::Viewer, &resource)?;
        self.repository
            .config(caller.tenant(), project, id)
            .await?
            .ok_or(ConfigError::NotFound(resource))
    }

    pub async fn draft(&self, caller: Caller<'_>, project: &str, id: &str, reveal: bool) -> ConfigResult<DraftView> {
        let draft = self.stored_draft(caller, project, id).await?;
        self.draft_view(caller, draft, reveal).await
    }

    /// Opens a stored draft's texts, or masks its secrets when `reveal` is not granted.
    pub(super) async fn draft_view(
        &self,
        caller: Caller<'_>,
        draft: ConfigDraft,
        reveal: bool,
    ) -> ConfigResult<DraftView> {
        if draft.secret_paths.is_empty() {
            return Ok(DraftView { draft });
        }
        if reveal {
            caller.require_reveal(&format!("projects/{}/configs/{}", draft.project, draft.id))?;
        }
        let mut draft = draft;
        draft.content = self
            .present_text(&draft.content, draft.format, &draft.secret_paths, reveal)
            .await?;
        let mut overlays = BTreeMap::new();
        for (environment, text) in &draft.overlays {
            overlays.insert(
                environment.clone(),
                self.present_text(text, draft.format, &draft.secret_paths, reveal)
                    .await?,
            );
        }
        draft.overlays = overlays;
        Ok(DraftView { draft })
    }

    /// A sealed text opened, or re-rendered in its format with secret values masked.
    pub(super) async fn present_text(
        &self,
        text: &str,
        format: Format,
        paths: &[String],
        reveal: bool,
    ) -> ConfigResult<String> {
        let plain = self.keystore.open_text(text).await?;
        if reveal || text.is_empty() {
            return Ok(plain);
        }
        let mut value =
            document::parse(format, &plain).map_err(|error| ConfigError::FailedPrecondition(error.to_string()))?;
        // The text's own `$secret` markers count too: an overlay may have removed them from
        // the resolved document whose paths were passed in.
        let mut all = secrets::secret_paths(None, &value);
        all.extend(paths.iter().cloned());
        secrets::unwrap_markers(&mut value);
        secrets::redact(&mut value, &all);
        document::render(format, &value).map_err(|error| ConfigError::FailedPrecondition(error.to_string()))
    }

    /// The draft with every text opened, for resolution and validation.
    pub(super) async fn opened_draft(&self, draft: &ConfigDraft) -> ConfigResult<(String, BTreeMap<String, String>)> {
        let content = self.keystore.open_text(&draft.content).await?;
        let mut overlays = BTreeMap::new();
        for (environment, text) in &draft.overlays {
            overlays.insert(environment.clone(), self.keystore.open_text(text).await?);
        }
        Ok((content, overlays))
    }

    /// Replaces a draft when `etag` matches the stored one.
    pub async fn update_config(
        &self,
        caller: Caller<'_>,
        project: &str,
        id: &str,
        spec: ConfigSpec,
        etag: &str,
    ) -> ConfigResult<DraftView> {
        let resource = format!("projects/{project}/configs/{id}");
        caller.require(Role::Editor, &resource)?;
        let current = self.stored_draft(caller, project, id).await?;
        let expected = parse_etag(etag)?;
        if expected != current.version {
            return Err(ConfigError::Conflict(resource));
        }
        let owner = self.project(caller, project).await?;
        let format = spec.format.unwrap_or(current.format);
        let parsed = parse_spec(&spec, format, &owner.environments)?;
        self.check_extends(caller, project, id, &spec.extends).await?;
        let (before_text, _) = self.opened_draft(&current).await?;
        let draft = self
            .seal_draft(caller, project, id, format, spec, &parsed, current.version)
            .await?;
        let audit = caller.audit(
            "config.update",
            &resource,
            Some(digest_text(&before_text)),
            Some(document::digest(&parsed.content)),
        );
        let stored = match self
            .repository
            .update_config(caller.tenant(), &draft, expected, &audit)
            .await
        {
            Err(StoreError::Conflict) => return Err(ConfigError::Conflict(resource)),
            other => other?,
        };
        self.draft_view(caller, stored, false).await
    }

    /// Lists drafts by name prefix, labels and content text.
    pub async fn list_configs(
        &self,
        caller: Caller<'_>,
        project: &str,
        filter: ConfigFilter,
    ) -> ConfigResult<Vec<DraftView>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        self.project(caller, project).await?;
        let filter = ConfigFilter {
            text: filter.text.to_lowercase(),
            limit: filter.limit.clamp(1, self.limits.max_page_size),
            ..filter
        };
        let drafts = self.repository.list_configs(caller.tenant(), project, &filter).await?;
        let mut views = Vec::with_capacity(drafts.len());
        for draft in drafts {
            views.push(self.draft_view(caller, draft, false).await?);
        }
        Ok(views)
    }

    /// Every config of the tenant that extends `target`, directly or through other bases,
    /// nearest first (breadth-first over the stored inheritance graph).
    pub async fn dependents(&self, caller: Caller<'_>, target: &ConfigRef) -> ConfigResult<Vec<(ConfigRef, bool)>> {
        caller.require(Role::Viewer, &target.name())?;
        let mut out: Vec<(ConfigRef, bool)> = Vec::new();
        let mut seen = BTreeSet::from([target.clone()]);
        let mut frontier = vec![target.clone()];
        let mut direct = true;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for base in frontier {
                let children = self
                    .repository
                    .direct_dependents(caller.tenant(), &base.project, &base.config)
                    .await?;
                for (project, config) in children {
                    let child = ConfigRef { project, config };
                    if seen.insert(child.clone()) {
                        out.push((child.clone(), direct));
                        next.push(child);
                    }
                }
            }
            frontier = next;
            direct = false;
        }
        Ok(out)
    }
}

/// A draft read without the reveal permission shows secrets as a mask; writing that mask back
/// would replace the secret with it, so it is refused.
fn refuse_masked_secrets(parsed: &ParsedDraft, paths: &[String]) -> ConfigResult<()> {
    let documents = std::iter::once(("content".to_owned(), &parsed.content)).chain(
        parsed
            .overlays
            .iter()
            .map(|(environment, overlay)| (format!("overlays[{environment}]"), overlay)),
    );
    for (field, document) in documents {
        let mut plain = document.clone();
        secrets::unwrap_markers(&mut plain);
        for path in paths {
            if json_path::lookup(&plain, path).and_then(Value::as_str) == Some(secrets::REDACTED) {
                return Err(ConfigError::invalid(
                    &field,
                    format!(
                        "{path} holds the mask `{}`: send the secret itself (read it with reveal) or leave it out",
                        secrets::REDACTED
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What an environment update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentUpdate {
    pub variables: Option<BTreeMap<String, String>>,
    pub public_evaluation: Option<bool>,
}

/// The audit digest of an environment's settings.
fn environment_digest(environment: &Environment) -> String {
    let settings = serde_json::json!({
        "variables": environment.variables,
        "publicEvaluation": environment.public_evaluation,
    });
    digest_text(&settings.to_string())
}

fn new_environment(project: &str, id: &str, position: i64, variables: BTreeMap<String, String>) -> Environment {
    Environment {
        project: project.to_owned(),
        id: id.to_owned(),
        position,
        variables,
        revision: 0,
        compacted: 0,
        version: 1,
        public_evaluation: false,
    }
}

/// Etags are the stored version as text.
pub fn parse_etag(etag: &str) -> ConfigResult<i64> {
    let text = etag.trim_matches('"');
    if text.is_empty() {
        return Err(ConfigError::invalid("etag", "required: the etag from the last read"));
    }
    text.parse().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        ConfigError::invalid(
            "etag",
            format!("`{shown}` is not an etag this service issued: send the etag from the last read"),
        )
    })
}

/// The etag of a stored version.
pub fn etag_of(version: i64) -> String {
    version.to_string()
}

/// Whether `path` is, or lies under, one of `paths`.
pub fn under_any(path: &str, paths: &[String]) -> bool {
    paths.iter().any(|secret| {
        path == secret
            || path
                .strip_prefix(secret.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// Keeps the paths that still point at a value in `document`.
pub fn existing_paths(document: &Value, paths: impl IntoIterator<Item = String>) -> Vec<String> {
    let unique: BTreeSet<String> = paths
        .into_iter()
        .filter(|path| json_path::lookup(document, path).is_some())
        .collect();
    unique.into_iter().collect()
}
