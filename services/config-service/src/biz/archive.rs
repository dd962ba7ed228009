//! Backup and restore: a whole project as one portable archive. Archives carry texts and
//! documents in clear — data keys are per instance — so exporting needs the admin role, and
//! an import seals every secret again under the importing tenant's key.

use std::collections::BTreeMap;

use serde_json::Value;
use switchyard_platform::auth::Role;

use super::{
    catalog::{ConfigSpec, parse_spec},
    document::{self, Format},
    error::{ConfigError, ConfigResult},
    model::{ConfigDraft, EnvKey, Project, Release, Served, now_ms},
    names::check_id,
    repository::{ProjectImage, Repository, StoreError},
    store::{Caller, ConfigStore, digest_text},
};

/// The archive layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A draft in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedConfig {
    pub id: String,
    pub spec: ConfigSpec,
    pub format: Format,
    pub updated_by: String,
    pub updated_ms: i64,
}

/// A release in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedRelease {
    pub environment: String,
    pub config: String,
    pub number: i64,
    pub author: String,
    pub message: String,
    pub created_ms: i64,
    pub format: Format,
    pub content: String,
    pub overlay: String,
    pub extends: Vec<String>,
    pub resolved: Value,
    pub content_hash: String,
    pub secret_paths: Vec<String>,
    pub source: String,
    pub revision: i64,
}

/// What an environment serves, in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedServed {
    pub environment: String,
    pub served: Served,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub format_version: u32,
    pub project: Project,
    pub configs: Vec<ArchivedConfig>,
    pub releases: Vec<ArchivedRelease>,
    pub current: Vec<ArchivedServed>,
}

impl PartialEq for ConfigSpec {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.format,
            &self.content,
            &self.overlays,
            &self.extends,
            &self.schema,
            &self.rules,
            &self.labels,
        ) == (
            &other.format,
            &other.content,
            &other.overlays,
            &other.extends,
            &other.schema,
            &other.rules,
            &other.labels,
        )
    }
}

impl<R: Repository> ConfigStore<R> {
    pub async fn export_project(&self, caller: Caller<'_>, id: &str) -> ConfigResult<Archive> {
        caller.require(Role::Admin, &format!("projects/{id}"))?;
        let project = self.project(caller, id).await?;
        let mut configs = Vec::new();
        let filter = super::model::ConfigFilter {
            limit: i64::MAX,
            ..Default::default()
        };
        for draft in self.repository.list_configs(caller.tenant(), id, &filter).await? {
            let (content, overlays) = self.opened_draft(&draft).await?;
            configs.push(ArchivedConfig {
                id: draft.id,
                format: draft.format,
                spec: ConfigSpec {
                    format: Some(draft.format),
                    content,
                    overlays,
                    extends: draft.extends,
                    schema: draft.schema,
                    rules: draft.rules,
                    labels: draft.labels,
                },
                updated_by: draft.updated_by,
                updated_ms: draft.updated_ms,
            });
        }
        let mut releases = Vec::new();
        for release in self.repository.project_releases(caller.tenant(), id).await? {
            releases.push(self.archived_release(release).await?);
        }
        let mut current = Vec::new();
        for environment in &project.environments {
            let env = EnvKey::new(caller.tenant(), id, &environment.id);
            let (_, served) = self.repository.served(&env).await?;
            for mut served in served {
                self.keystore.open_document(&mut served.resolved).await?;
                current.push(ArchivedServed {
                    environment: environment.id.clone(),
                    served,
                });
            }
        }
        Ok(Archive {
            format_version: FORMAT_VERSION,
            project,
            configs,
            releases,
            current,
        })
    }

    async fn archived_release(&self, release: Release) -> ConfigResult<ArchivedRelease> {
        let mut resolved = release.resolved;
        self.keystore.open_document(&mut resolved).await?;
        // An imported release goes out with the history it came in with, so an archive
        // survives export → import → export unchanged; each import records its importer.
        let (author, created_ms) = match release.imported_author.is_empty() {
            true => (release.author, release.created_ms),
            false => (release.imported_author, release.imported_ms),
        };
        Ok(ArchivedRelease {
            environment: release.env.environment,
            config: release.config,
            number: release.number,
            author,
            message: release.message,
            created_ms,
            format: release.format,
            content: self.keystore.open_text(&release.content).await?,
            overlay: self.keystore.open_text(&release.overlay).await?,
            extends: release.extends,
            resolved,
            content_hash: release.content_hash,
            secret_paths: release.secret_paths,
            source: release.source,
            revision: release.revision,
        })
    }

    /// Imports an archive as project `project_id` (the archive's id when empty) of the
    /// caller's tenant, in one transaction. Drafts are validated as on creation.
    pub async fn import_project(
        &self,
        caller: Caller<'_>,
        archive: Archive,
        project_id: &str,
    ) -> ConfigResult<Project> {
        if archive.format_version != FORMAT_VERSION {
            return Err(ConfigError::invalid(
                "archive.format_version",
                format!("this build reads archive version {FORMAT_VERSION}"),
            ));
        }
        let id = if project_id.is_empty() {
            archive.project.id.clone()
        } else {
            project_id.to_owned()
        };
        check_id("project_id", &id)?;
        let resource = format!("projects/{id}");
        caller.require(Role::Admin, &resource)?;
        let mut project = archive.project.clone();
        project.id = id.clone();
        for environment in &mut project.environments {
            check_id("archive.project.environments", &environment.id)?;
            environment.project = id.clone();
        }
        let tenant = caller.tenant();
        let mut configs = Vec::new();
        for config in &archive.configs {
            configs.push(self.imported_draft(caller, &project, config).await?);
        }
        let mut releases = Vec::new();
        let imported_at = now_ms();
        for release in &archive.releases {
            let importer = (caller.principal.subject.as_str(), imported_at);
            releases.push(
                self.imported_release(tenant, &archive.project.id, &id, release, importer)
                    .await?,
            );
        }
        let mut current = Vec::new();
        for environment in &mut project.environments {
            let rows: Vec<&ArchivedServed> = archive
                .current
                .iter()
                .filter(|row| row.environment == environment.id)
                .collect();
            // The served rows keep their place at the top of the environment's history (a
            // hand-made archive with too small a revision gets one that fits them).
            environment.revision = environment.revision.max(rows.len() as i64);
            let first = environment.revision - rows.len() as i64 + 1;
            environment.compacted = first - 1;
            for (offset, row) in rows.into_iter().enumerate() {
                let mut served = row.served.clone();
                served.revision = first + offset as i64;
                self.keystore
                    .seal_document(tenant, &mut served.resolved, &served.secret_paths)
                    .await?;
                current.push((environment.id.clone(), served));
            }
        }
        let image = ProjectImage {
            project: project.clone(),
            configs,
            releases,
            current,
        };
        let audit = caller.audit("project.import", &resource, None, Some(digest_text(&resource)));
        match self.repository.import_project(tenant, &image, &audit).await {
            Err(StoreError::Duplicate) => Err(ConfigError::AlreadyExists(resource)),
            Err(other) => Err(other.into()),
            Ok(()) => {
                if project
                    .environments
                    .iter()
                    .any(|environment| environment.public_evaluation)
                {
                    self.access_changed.notify_one();
                }
                Ok(project)
            }
        }
    }

    async fn seal_if(&self, tenant: &str, secret: bool, text: &str) -> ConfigResult<String> {
        if !secret || text.is_empty() {
            return Ok(text.to_owned());
        }
        self.keystore.seal_text(tenant, text).await
    }

    async fn imported_draft(
        &self,
        caller: Caller<'_>,
        project: &Project,
        config: &ArchivedConfig,
    ) -> ConfigResult<ConfigDraft> {
        check_id("archive.configs", &config.id)?;
        let parsed = parse_spec(&config.spec, config.format, &project.environments)?;
        let paths = parsed.secret_paths();
        let secret = !paths.is_empty();
        let content = self.seal_if(caller.tenant(), secret, &config.spec.content).await?;
        let mut overlays = BTreeMap::new();
        for (environment, text) in &config.spec.overlays {
            overlays.insert(environment.clone(), self.seal_if(caller.tenant(), secret, text).await?);
        }
        let mut masked = parsed.content.clone();
        super::secrets::unwrap_markers(&mut masked);
        super::secrets::redact(&mut masked, &paths);
        Ok(ConfigDraft {
            project: project.id.clone(),
            id: config.id.clone(),
            format: config.format,
            content,
            overlays,
            extends: config.spec.extends.clone(),
            schema: config.spec.schema.clone(),
            rules: config.spec.rules.clone(),
            labels: config.spec.labels.clone(),
            search_text: format!("{}\n{}", config.id, masked).to_lowercase(),
            secret_paths: paths.clone(),
            version: 1,
            updated_by: config.updated_by.clone(),
            updated_ms: if config.updated_ms > 0 {
                config.updated_ms
            } else {
                now_ms()
            },
        })
    }

    async fn imported_release(
        &self,
        tenant: &str,
        archive_project: &str,
        project: &str,
        release: &ArchivedRelease,
        (importer, imported_at): (&str, i64),
    ) -> ConfigResult<Release> {
        let secret = !release.secret_paths.is_empty();
        let mut resolved = release.resolved.clone();
        self.keystore
            .seal_document(tenant, &mut resolved, &release.secret_paths)
            .await?;
        let expected = document::digest(&release.resolved);
        if expected != release.content_hash {
            return Err(ConfigError::invalid(
                "archive.releases",
                format!(
                    "release {} of {} does not match its content hash",
                    release.number, release.config
                ),
            ));
        }
        Ok(Release {
            env: EnvKey::new(tenant, project, &release.environment),
            config: release.config.clone(),
            number: release.number,
            // The archive's word for who published and when is kept, but not as ours: the
            // history says who brought the release in.
            author: importer.to_owned(),
            message: release.message.clone(),
            created_ms: imported_at,
            imported_author: release.author.clone(),
            imported_ms: release.created_ms,
            format: release.format,
            content: self.seal_if(tenant, secret, &release.content).await?,
            overlay: self.seal_if(tenant, secret, &release.overlay).await?,
            extends: release.extends.clone(),
            resolved,
            content_hash: release.content_hash.clone(),
            secret_paths: release.secret_paths.clone(),
            source: rehome(&release.source, archive_project, project),
            revision: release.revision,
        })
    }
}

/// A release name of the archived project, renamed into the imported one.
fn rehome(source: &str, from: &str, to: &str) -> String {
    let prefix = format!("projects/{from}/");
    match source.strip_prefix(&prefix) {
        Some(rest) => format!("projects/{to}/{rest}"),
        None => source.to_owned(),
    }
}
