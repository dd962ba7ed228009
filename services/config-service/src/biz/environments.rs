//! Environments: their place in a project's pipeline, their variables (a change re-resolves
//! everything the environment serves, in the same transaction) and whether their flags
//! evaluate without a key.

use std::collections::BTreeMap;

use switchyard_platform::{audit::AuditEntry, auth::Role};

use super::{
    error::{ConfigError, ConfigResult},
    input::{check_map, parse_etag},
    model::Environment,
    names::check_id,
    repository::{Publication, Repository, StoreError},
    store::{Caller, ConfigStore, digest_text},
};

/// Variables per environment, and environments per project.
pub const MAX_VARIABLES: usize = 256;
pub const MAX_ENVIRONMENTS: usize = 32;

impl<R: Repository> ConfigStore<R> {
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
        if update
            .variables
            .as_ref()
            .is_some_and(|variables| *variables != current.variables)
        {
            let env = super::model::EnvKey::new(caller.tenant(), project, id);
            self.admission
                .admit(caller, &env, "environment.update", &resource)
                .await?;
        }
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

/// A new environment of `project` at `position` of its pipeline; keys are required to
/// evaluate its flags until an admin makes it public.
pub fn new_environment(project: &str, id: &str, position: i64, variables: BTreeMap<String, String>) -> Environment {
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
