//! Projects and configuration drafts: everything that is edited before it is
//! published. A draft's structured content is parsed on every write, so a draft that is
//! stored always parses; its secret values are sealed before it reaches storage.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use switchyard_platform::auth::Role;

use super::{
    document::{self, Format},
    environments::{MAX_ENVIRONMENTS, new_environment},
    error::{ConfigError, ConfigResult},
    input::{MAX_DISPLAY_NAME, check_length, check_map, parse_etag},
    json_path,
    model::{ConfigDraft, ConfigFilter, Environment, Project, now_ms},
    names::{ConfigRef, check_id},
    repository::{Repository, StoreError},
    secrets,
    store::{Caller, ConfigStore, digest_text},
    validation::{Rule, Validator},
};

/// Limits on what a draft may carry.
pub const MAX_EXTENDS: usize = 16;
pub const MAX_LABELS: usize = 64;
const MAX_INHERITANCE_DEPTH: usize = 16;
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
