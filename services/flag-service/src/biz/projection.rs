//! Managed flags in the catalog: each project environment becomes one source, refreshed when
//! the project changes — at once on the replica that wrote, through the change bus on the
//! others, and by comparing revisions periodically in case a bus message was lost.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use flag_engine::{FlagSet, Limits};
use futures::StreamExt;
use switchyard_platform::{Shutdown, bus::ChangeBus};
use tokio::sync::Mutex;

use switchyard_platform::error::FieldViolation;

use super::{
    catalog::{Catalog, SourceFlags},
    error::StoreError,
    model::source_name,
    repository::FlagRepository,
};

/// The bus topic announcing that a project's flags changed; the payload is `tenant/project`.
pub const TOPIC: &str = "flag-service.projects";

/// Keeps the catalog in step with stored flags.
#[derive(Debug)]
pub struct Projection<R> {
    repository: Arc<R>,
    catalog: Arc<Catalog>,
    bus: Arc<dyn ChangeBus>,
    /// Per project: the revision in the catalog and the environments it has sources for.
    /// Held across a refresh, so refreshes never interleave and an older read never
    /// replaces a newer one.
    applied: Mutex<HashMap<(String, String), Applied>>,
}

/// What the catalog holds of one project: its revision and the environments it has sources for.
type Applied = (i64, Vec<String>);

impl<R: FlagRepository> Projection<R> {
    pub fn new(repository: Arc<R>, catalog: Arc<Catalog>, bus: Arc<dyn ChangeBus>) -> Self {
        Self {
            repository,
            catalog,
            bus,
            applied: Mutex::new(HashMap::new()),
        }
    }

    /// Loads every project; called once at start.
    pub async fn load_all(&self) -> Result<(), StoreError> {
        for (tenant, project, _) in self.repository.revisions().await? {
            self.refresh(&tenant, &project).await?;
        }
        Ok(())
    }

    /// Rebuilds a project's sources from storage unless the catalog already has that revision.
    pub async fn refresh(&self, tenant: &str, project: &str) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        let (flags, revision) = self.repository.project(tenant, project).await?;
        let key = (tenant.to_owned(), project.to_owned());
        let previous = applied.get(&key).cloned().unwrap_or_default();
        // Any other revision is news: a smaller one means storage went back (a restore).
        if revision == previous.0 && revision != 0 {
            return Ok(());
        }
        let limits = Limits::default();
        let environments = flags.environments();
        for environment in &environments {
            let name = source_name(project, environment);
            let compile = |document: Result<serde_json::Value, FieldViolation>| {
                document
                    .map_err(|violation| violation.description)
                    .and_then(|document| FlagSet::from_document(&document, &limits).map_err(|error| error.to_string()))
            };
            let compiled = compile(flags.document(project, environment)).and_then(|all| {
                let client = compile(flags.client_document(project, environment))?;
                Ok(SourceFlags {
                    all,
                    client: Some(client),
                })
            });
            match compiled {
                Ok(compiled) => self.catalog.put_source(Some(tenant), &name, compiled),
                // Writes are validated, so this means storage was edited by hand: keep serving
                // what was there.
                Err(error) => {
                    tracing::error!(%tenant, source = %name, %error, "stored flags do not compile; keeping the previous ones")
                }
            }
        }
        for gone in previous
            .1
            .iter()
            .filter(|environment| !environments.contains(environment))
        {
            self.catalog.remove_source(Some(tenant), &source_name(project, gone));
        }
        applied.insert(key, (revision, environments));
        Ok(())
    }

    /// Tells the other replicas that a project changed.
    pub async fn announce(&self, tenant: &str, project: &str) {
        let payload = Bytes::from(format!("{tenant}/{project}"));
        if let Err(error) = self.bus.publish(TOPIC, payload).await {
            tracing::warn!(%error, "announcing a flag change failed; other replicas catch up on their next resync");
        }
    }

    /// Refreshes the projects whose stored revision differs from the catalog's (moved on, or
    /// went back with a restored database).
    pub async fn resync(&self) -> Result<(), StoreError> {
        let stale: Vec<(String, String)> = {
            let applied = self.applied.lock().await;
            self.repository
                .revisions()
                .await?
                .into_iter()
                .filter(|(tenant, project, revision)| {
                    applied
                        .get(&(tenant.clone(), project.clone()))
                        .is_none_or(|(seen, _)| seen != revision)
                })
                .map(|(tenant, project, _)| (tenant, project))
                .collect()
        };
        for (tenant, project) in stale {
            self.refresh(&tenant, &project).await?;
        }
        Ok(())
    }

    /// Follows announcements from other replicas, and resyncs every `interval` and after the
    /// bus comes back, until shutdown.
    pub async fn follow(self: Arc<Self>, interval: Duration, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut messages = match self.bus.subscribe(TOPIC).await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "subscribing to flag announcements failed; resyncing meanwhile");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = ticks.tick() => self.log_resync().await,
                    }
                    continue;
                }
            };
            self.log_resync().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => self.log_resync().await,
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        let text = String::from_utf8_lossy(&message.payload);
                        let Some((tenant, project)) = text.split_once('/') else { continue };
                        if let Err(error) = self.refresh(tenant, project).await {
                            tracing::warn!(%error, %tenant, %project, "refreshing announced flags failed");
                        }
                    }
                }
            }
            tracing::warn!("flag announcements ended; resubscribing");
        }
    }

    async fn log_resync(&self) {
        if let Err(error) = self.resync().await {
            tracing::warn!(%error, "flag resync failed");
        }
    }
}
