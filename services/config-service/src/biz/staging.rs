//! Staging: a release that is stored but served to no one yet. Editing a draft, staging it
//! and deploying it are separate steps (and separate rights: editor, then publisher); a
//! deployment then moves clients from the served release to the staged one.

use std::collections::HashMap;

use switchyard_platform::auth::Role;

use super::{
    catalog::parse_schema,
    error::{ConfigError, ConfigResult},
    input::{MAX_MESSAGE, check_length},
    model::{EnvKey, Release},
    publishing::{Source, published_resource, validate},
    repository::Repository,
    store::{Caller, ConfigStore},
};

impl<R: Repository> ConfigStore<R> {
    /// Resolves and validates the draft of `config` for `env`, exactly as a publication would,
    /// and stores it as the next release without serving it.
    ///
    /// A config that other configs extend is refused (see [`ConfigStore::refuse_base`]).
    pub async fn stage(&self, caller: Caller<'_>, env: &EnvKey, config: &str, message: &str) -> ConfigResult<Release> {
        let resource = published_resource(env, config);
        caller.require(Role::Publisher, &resource)?;
        check_length("message", message, MAX_MESSAGE)?;
        let environment = self.environment_of(env).await?;
        let draft = self.draft_for_publisher(&env.tenant, &env.project, config).await?;
        self.refuse_base(env, config).await?;
        let source = Source {
            format: draft.format,
            content: draft.content.clone(),
            overlay: draft.overlays.get(&env.environment).cloned().unwrap_or_default(),
            extends: draft.extends.clone(),
            secret_paths: draft.secret_paths.clone(),
        };
        let schema = parse_schema(&draft.schema)?;
        let resolved = self
            .resolve(
                env,
                &environment.variables,
                &env.project,
                &source,
                schema.as_ref(),
                &HashMap::new(),
            )
            .await?;
        validate(schema.as_ref(), &draft.rules, &resolved, "").await?;
        let resolution = self.resolution(env, config, 0, source.format, &resolved).await?;
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
            resolved: resolution.resolved,
            content_hash: resolution.content_hash.clone(),
            secret_paths: resolution.secret_paths,
            source: String::new(),
            revision: 0,
            imported_author: String::new(),
            imported_ms: 0,
        };
        let audit = caller.audit("config.stage", &resource, None, Some(resolution.content_hash));
        Ok(self.repository.stage_release(&release, &audit).await?)
    }

    /// Refuses a config that other configs extend: they are resolved from what it serves, so
    /// serving two of its releases at once would serve them a mix.
    pub(super) async fn refuse_base(&self, env: &EnvKey, config: &str) -> ConfigResult<()> {
        let dependents = self
            .repository
            .direct_dependents(&env.tenant, &env.project, config)
            .await?;
        let Some((project, dependent)) = dependents.first() else {
            return Ok(());
        };
        Err(ConfigError::FailedPrecondition(format!(
            "projects/{project}/configs/{dependent} extends projects/{}/configs/{config}: a base is published \
             to everyone at once, never deployed progressively",
            env.project
        )))
    }
}
