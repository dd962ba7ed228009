//! Strategies as resources: `projects/{project}/strategies/{strategy}`, beside the predefined
//! ones every project has. A project's strategy cannot take a predefined name.

use switchyard_platform::auth::Role;

use super::{
    Deployments,
    repository::DeploymentRepository,
    strategy::{self, Strategy},
};
use crate::biz::{
    error::{ConfigError, ConfigResult},
    input::{MAX_DISPLAY_NAME, check_length},
    names,
    repository::{Repository, StoreError, require_project},
    store::Caller,
};

/// A strategy and its version (0 for a predefined one), the etag of updates.
pub type Versioned = (Strategy, i64);

impl<R: Repository + DeploymentRepository> Deployments<R> {
    /// Creates (`etag` empty) or replaces a project's strategy.
    pub async fn put_strategy(
        &self,
        caller: Caller<'_>,
        project: &str,
        strategy: Strategy,
        etag: &str,
    ) -> ConfigResult<Versioned> {
        let resource = format!("projects/{project}/strategies/{}", strategy.id);
        caller.require(Role::Editor, &format!("projects/{project}"))?;
        names::check_id("strategy_id", &strategy.id)?;
        if strategy::find_predefined(&strategy.id).is_some() {
            return Err(ConfigError::invalid("strategy_id", "the name of a predefined strategy"));
        }
        check_length("strategy.description", &strategy.description, MAX_DISPLAY_NAME)?;
        let strategy = strategy.validated()?;
        require_project(self.repository.as_ref(), caller.tenant(), project).await?;
        let expected = match etag {
            "" => 0,
            etag => crate::biz::input::parse_etag(etag)?,
        };
        let action = if expected == 0 {
            "strategy.create"
        } else {
            "strategy.update"
        };
        let audit = caller.audit(action, &resource, None, None);
        let version = self
            .repository
            .put_strategy(caller.tenant(), project, &strategy, expected, &audit)
            .await
            .map_err(|error| match error {
                StoreError::Duplicate => ConfigError::AlreadyExists(resource.clone()),
                StoreError::Conflict => ConfigError::Conflict(resource.clone()),
                other => other.into(),
            })?;
        Ok((strategy, version))
    }

    pub async fn strategy(&self, caller: Caller<'_>, project: &str, id: &str) -> ConfigResult<Versioned> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        if let Some(predefined) = strategy::find_predefined(id) {
            return Ok((predefined, 0));
        }
        self.repository
            .strategy(caller.tenant(), project, id)
            .await?
            .ok_or_else(|| ConfigError::NotFound(format!("projects/{project}/strategies/{id}")))
    }

    /// The predefined strategies, then the project's, by name.
    pub async fn strategies(&self, caller: Caller<'_>, project: &str) -> ConfigResult<Vec<Strategy>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        require_project(self.repository.as_ref(), caller.tenant(), project).await?;
        let mut all = strategy::predefined();
        all.extend(self.repository.list_strategies(caller.tenant(), project).await?);
        Ok(all)
    }

    pub async fn delete_strategy(&self, caller: Caller<'_>, project: &str, id: &str) -> ConfigResult<()> {
        let resource = format!("projects/{project}/strategies/{id}");
        caller.require(Role::Editor, &format!("projects/{project}"))?;
        if strategy::find_predefined(id).is_some() {
            return Err(ConfigError::FailedPrecondition(format!(
                "{id} is predefined and cannot be deleted"
            )));
        }
        let audit = caller.audit("strategy.delete", &resource, None, None);
        self.repository
            .delete_strategy(caller.tenant(), project, id, &audit)
            .await
            .map_err(|error| match error {
                StoreError::Missing => ConfigError::NotFound(resource.clone()),
                other => other.into(),
            })
    }
}
