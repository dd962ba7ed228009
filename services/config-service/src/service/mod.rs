//! The gRPC face of config-service: maps protobuf requests to use cases and errors to
//! statuses. Nothing here decides anything; `biz::store::ConfigStore` does.

mod api_keys;
mod archive;
mod changes;
mod convert;
mod deliveries;
mod delivery_convert;
mod encoded;
mod figures;
mod governance;
mod requests;

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use switchyard_api::{
    config::v1::{self as pb, config_service_server::ConfigService},
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{
    Shutdown,
    about::About,
    audit::AuditFilter,
    auth::Principal,
    error::{Classify, to_status},
    metrics::Metrics,
    settings::parse_duration,
    shutdown::end_on_shutdown,
};
use tonic::{Request, Response, Status};

use crate::{
    biz::{
        error::ConfigError,
        model::ConfigFilter,
        names::{ConfigRef, parse},
        store::{Caller, ConfigStore},
    },
    data::SqlRepository,
};

pub use api_keys::ApiKeyServiceApi;
pub use deliveries::DeliveryServiceApi;
pub use governance::GovernanceServiceApi;
use requests::{
    audit_filter, client_of, diff_side, draft_ref, env_key, environment_update, next_token, numeric_position,
    page_size, position, published, release_ref, spec_of, subscription,
};

pub type Store = ConfigStore<SqlRepository>;

/// Implements `switchyard.config.v1.ConfigService`.
#[derive(Debug, Clone)]
pub struct ConfigServiceApi {
    about: About,
    store: Arc<Store>,
    shutdown: Shutdown,
    encoded: Arc<encoded::EncodedConfigs>,
    figures: figures::Figures,
}

impl ConfigServiceApi {
    pub fn new(about: About, store: Arc<Store>, shutdown: Shutdown, metrics: &Metrics) -> Self {
        Self {
            about,
            store,
            shutdown,
            encoded: Arc::default(),
            figures: figures::Figures::register(metrics),
        }
    }
}

fn status<E: Classify>(error: E) -> Status {
    to_status(&error)
}

/// The header in which a principal with the `emergency` scope gives its reason for overriding a
/// freeze window (gRPC metadata, or the HTTP header of the same name).
pub const BREAK_GLASS_HEADER: &str = "x-switchyard-break-glass";

/// The authenticated caller, the request id to attribute changes to, and a break-glass reason.
fn caller<T>(request: &Request<T>) -> Result<Caller<'_>, Status> {
    let principal = Principal::of(request).map_err(status)?;
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok());
    let break_glass = request
        .metadata()
        .get(BREAK_GLASS_HEADER)
        .map(|value| value.to_str())
        .transpose()
        .map_err(|_| {
            status(ConfigError::invalid(
                BREAK_GLASS_HEADER,
                "a reason in visible ASCII (HTTP header rules)",
            ))
        })?;
    Ok(Caller {
        principal,
        request_id,
        break_glass,
        change_request: None,
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The longest long-poll wait when the request names none.
const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[tonic::async_trait]
impl ConfigService for ConfigServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let display_name = body
            .project
            .as_ref()
            .map(|project| project.display_name.as_str())
            .unwrap_or("");
        let project = self
            .store
            .create_project(caller, &body.project_id, display_name, &body.environment_ids)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::project(&project)))
    }

    async fn get_project(&self, request: Request<pb::GetProjectRequest>) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&request)?;
        let ids = parse("name", &request.get_ref().name, "projects/*").map_err(status)?;
        let project = self.store.project(caller, &ids[0]).await.map_err(status)?;
        Ok(Response::new(convert::project(&project)))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let after = position(&body.page_token).map_err(status)?;
        let size = page_size(body.page_size).map_err(status)?;
        let projects = self.store.list_projects(caller, &after, size).await.map_err(status)?;
        let full = projects.len() as i64 >= self.store.page_size(body.page_size);
        Ok(Response::new(pb::ListProjectsResponse {
            next_page_token: next_token(full, projects.last().map(|project| project.id.clone())),
            projects: projects.iter().map(convert::project).collect(),
        }))
    }

    async fn create_environment(
        &self,
        request: Request<pb::CreateEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let ids = parse("parent", &body.parent, "projects/*").map_err(status)?;
        let settings = body.environment.clone().unwrap_or_default();
        let variables = settings.variables.into_iter().collect();
        let environment = self
            .store
            .create_environment(
                caller,
                &ids[0],
                &body.environment_id,
                variables,
                settings.public_evaluation,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(convert::environment(&environment)))
    }

    async fn get_environment(
        &self,
        request: Request<pb::GetEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        let caller = caller(&request)?;
        let env = env_key(&caller, "name", &request.get_ref().name).map_err(status)?;
        let environment = self
            .store
            .environment(caller, &env.project, &env.environment)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::environment(&environment)))
    }

    async fn list_environments(
        &self,
        request: Request<pb::ListEnvironmentsRequest>,
    ) -> Result<Response<pb::ListEnvironmentsResponse>, Status> {
        let caller = caller(&request)?;
        let ids = parse("parent", &request.get_ref().parent, "projects/*").map_err(status)?;
        let project = self.store.project(caller, &ids[0]).await.map_err(status)?;
        Ok(Response::new(pb::ListEnvironmentsResponse {
            environments: project.environments.iter().map(convert::environment).collect(),
        }))
    }

    async fn update_environment(
        &self,
        request: Request<pb::UpdateEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = env_key(&caller, "name", &body.name).map_err(status)?;
        let update = environment_update(body).map_err(status)?;
        let environment = self
            .store
            .update_environment(caller, &env.project, &env.environment, update, &body.etag)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::environment(&environment)))
    }

    async fn create_config(&self, request: Request<pb::CreateConfigRequest>) -> Result<Response<pb::Config>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let ids = parse("parent", &body.parent, "projects/*").map_err(status)?;
        let spec = spec_of(body.config.clone().unwrap_or_default());
        let view = self
            .store
            .create_config(caller, &ids[0], &body.config_id, spec)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::config(&view)))
    }

    async fn get_config_draft(
        &self,
        request: Request<pb::GetConfigDraftRequest>,
    ) -> Result<Response<pb::Config>, Status> {
        let caller = caller(&request)?;
        let (project, config) = draft_ref("name", &request.get_ref().name).map_err(status)?;
        let view = self
            .store
            .draft(caller, &project, &config, false)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::config(&view)))
    }

    async fn update_config(&self, request: Request<pb::UpdateConfigRequest>) -> Result<Response<pb::Config>, Status> {
        let caller = caller(&request)?;
        let config = request.get_ref().config.clone().unwrap_or_default();
        let (project, id) = draft_ref("config.name", &config.name).map_err(status)?;
        let etag = config.etag.clone();
        let view = self
            .store
            .update_config(caller, &project, &id, spec_of(config), &etag)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::config(&view)))
    }

    async fn list_configs(
        &self,
        request: Request<pb::ListConfigsRequest>,
    ) -> Result<Response<pb::ListConfigsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let ids = parse("parent", &body.parent, "projects/*").map_err(status)?;
        let mut labels = Vec::new();
        for label in &body.labels {
            let (key, value) = label
                .split_once('=')
                .ok_or_else(|| status(ConfigError::invalid("labels", "each filter is `key=value`")))?;
            labels.push((key.to_owned(), value.to_owned()));
        }
        let limit = self.store.page_size(page_size(body.page_size).map_err(status)?);
        let filter = ConfigFilter {
            name_prefix: body.name_prefix.clone(),
            labels,
            text: body.text.clone(),
            after: position(&body.page_token).map_err(status)?,
            limit,
        };
        let views = self.store.list_configs(caller, &ids[0], filter).await.map_err(status)?;
        let full = views.len() as i64 >= limit;
        Ok(Response::new(pb::ListConfigsResponse {
            next_page_token: next_token(full, views.last().map(|view| view.draft.id.clone())),
            configs: views.iter().map(convert::config).collect(),
        }))
    }

    async fn validate_config(
        &self,
        request: Request<pb::ValidateConfigRequest>,
    ) -> Result<Response<pb::ValidateConfigResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (project, config) = draft_ref("name", &body.name).map_err(status)?;
        let (violations, resolved) = self
            .store
            .validate(caller, &project, &config, Some(&body.environment), body.content.clone())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ValidateConfigResponse {
            valid: violations.is_empty(),
            violations: violations.iter().map(convert::violation).collect(),
            resolved: Some(convert::to_proto_value(&resolved)),
        }))
    }

    async fn publish_config(
        &self,
        request: Request<pb::PublishConfigRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (project, config) = draft_ref("name", &body.name).map_err(status)?;
        let view = self
            .store
            .publish(caller, &project, &config, &body.environment, &body.message, &body.etag)
            .await
            .map_err(status)?;
        self.figures.publications.inc();
        Ok(Response::new(convert::release(&view)))
    }

    async fn list_dependents(
        &self,
        request: Request<pb::ListDependentsRequest>,
    ) -> Result<Response<pb::ListDependentsResponse>, Status> {
        let caller = caller(&request)?;
        let (project, config) = draft_ref("name", &request.get_ref().name).map_err(status)?;
        let dependents = self
            .store
            .dependents(caller, &ConfigRef { project, config })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListDependentsResponse {
            dependents: dependents
                .into_iter()
                .map(|(config, direct)| pb::Dependent {
                    config: config.name(),
                    direct,
                })
                .collect(),
        }))
    }

    async fn get_config(&self, request: Request<pb::GetConfigRequest>) -> Result<Response<pb::ResolvedConfig>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, config) = published(&caller, "name", &body.name).map_err(status)?;
        let client = client_of(&body.client_service, &body.client_instance, &body.client_id).map_err(status)?;
        let presented = self
            .store
            .get(caller, &env, &config, body.reveal_secrets, &client)
            .await
            .map_err(status)?;
        self.figures.reads.inc();
        if body.view != pb::View::Raw as i32 {
            return Ok(Response::new(self.encoded.resolved(&presented).as_ref().clone()));
        }
        let (content, _) = self
            .store
            .raw_texts(caller, &presented, body.reveal_secrets)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::resolved(&presented, Some(content))))
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, config) = published(&caller, "parent", &body.parent).map_err(status)?;
        let before = numeric_position(&body.page_token).map_err(status)?.unwrap_or(0);
        let size = page_size(body.page_size).map_err(status)?;
        let views = self
            .store
            .releases(caller, &env, &config, before, size)
            .await
            .map_err(status)?;
        let full = views.len() as i64 >= self.store.page_size(body.page_size);
        Ok(Response::new(pb::ListReleasesResponse {
            next_page_token: next_token(full, views.last().map(|view| view.release.number.to_string())),
            releases: views.iter().map(convert::release).collect(),
        }))
    }

    async fn get_release(&self, request: Request<pb::GetReleaseRequest>) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, config, number) = release_ref(&caller, "name", &body.name).map_err(status)?;
        let view = self
            .store
            .release(caller, &env, &config, number, body.reveal_secrets)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::release(&view)))
    }

    async fn diff_releases(
        &self,
        request: Request<pb::DiffReleasesRequest>,
    ) -> Result<Response<pb::DiffReleasesResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let from = diff_side(&caller, "from", &body.from).map_err(status)?;
        let to = diff_side(&caller, "to", &body.to).map_err(status)?;
        let changes = self.store.diff(caller, &from, &to).await.map_err(status)?;
        Ok(Response::new(pb::DiffReleasesResponse {
            changes: changes.iter().map(convert::change).collect(),
        }))
    }

    async fn rollback_config(
        &self,
        request: Request<pb::RollbackConfigRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, config) = published(&caller, "name", &body.name).map_err(status)?;
        let number = i64::try_from(body.release)
            .ok()
            .filter(|number| *number > 0)
            .ok_or_else(|| status(ConfigError::invalid("release", "the release number to roll back to")))?;
        let view = self
            .store
            .rollback(caller, &env, &config, number, &body.message)
            .await
            .map_err(status)?;
        self.figures.publications.inc();
        Ok(Response::new(convert::release(&view)))
    }

    async fn promote_release(
        &self,
        request: Request<pb::PromoteReleaseRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, config, number) = release_ref(&caller, "name", &body.name).map_err(status)?;
        let view = self
            .store
            .promote(caller, &env, &config, number, &body.message)
            .await
            .map_err(status)?;
        self.figures.publications.inc();
        Ok(Response::new(convert::release(&view)))
    }

    async fn list_config_clients(
        &self,
        request: Request<pb::ListConfigClientsRequest>,
    ) -> Result<Response<pb::ListConfigClientsResponse>, Status> {
        let caller = caller(&request)?;
        let (env, config) = published(&caller, "name", &request.get_ref().name).map_err(status)?;
        let (clients, fetches, current) = self.store.clients(caller, &env, &config).await.map_err(status)?;
        Ok(Response::new(pb::ListConfigClientsResponse {
            clients: clients.iter().map(|client| convert::client(client, current)).collect(),
            fetch_count: fetches,
            current_release: current.max(0) as u64,
        }))
    }

    type WatchStream = BoxStream<pb::WatchResponse>;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = env_key(&caller, "parent", &body.parent).map_err(status)?;
        let since = i64::try_from(body.since_revision)
            .map_err(|_| status(ConfigError::invalid("since_revision", "too large")))?;
        let client = client_of(&body.client_service, &body.client_instance, &body.client_id).map_err(status)?;
        let batches = self
            .store
            .clone()
            .watch(
                caller,
                subscription(env, since, &body.configs, body.reveal_secrets, client),
            )
            .await
            .map_err(status)?;
        let guard = figures::WatcherGuard::new(&self.figures.watchers);
        let responses = batches.map(move |batch| {
            let _open = &guard;
            batch.map(convert::watch_response).map_err(status)
        });
        Ok(Response::new(Box::pin(end_on_shutdown(
            responses,
            self.shutdown.clone(),
        ))))
    }

    async fn poll_changes(
        &self,
        request: Request<pb::PollChangesRequest>,
    ) -> Result<Response<pb::WatchResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = env_key(&caller, "parent", &body.parent).map_err(status)?;
        let since = i64::try_from(body.since_revision)
            .map_err(|_| status(ConfigError::invalid("since_revision", "too large")))?;
        let wait = match body.wait.as_str() {
            "" => DEFAULT_WAIT,
            text => parse_duration(text)
                .ok_or_else(|| status(ConfigError::invalid("wait", "a duration such as 30s or 500ms")))?,
        };
        let client = client_of(&body.client_service, &body.client_instance, &body.client_id).map_err(status)?;
        let subscription = subscription(env, since, &body.configs, body.reveal_secrets, client);
        let poll = self.store.poll(caller, &subscription, wait);
        let batch = tokio::select! {
            batch = poll => batch.map_err(status)?,
            _ = self.shutdown.cancelled() => return Err(Shutdown::stream_status()),
        };
        Ok(Response::new(convert::watch_response(batch)))
    }

    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<pb::ListAuditRecordsResponse>, Status> {
        let caller = caller(&request)?;
        let mut filter = audit_filter(request.get_ref()).map_err(status)?;
        filter.limit = self.store.page_size(request.get_ref().page_size);
        let records = self.store.audit_records(caller, &filter).await.map_err(status)?;
        let full = records.len() as i64 >= filter.limit;
        Ok(Response::new(pb::ListAuditRecordsResponse {
            next_page_token: next_token(full, records.last().map(|record| record.sequence.to_string())),
            records: records.iter().map(convert::audit_record).collect(),
        }))
    }

    type ExportAuditRecordsStream = BoxStream<pb::AuditRecord>;

    async fn export_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<Self::ExportAuditRecordsStream>, Status> {
        let caller = caller(&request)?;
        let base = audit_filter(request.get_ref()).map_err(status)?;
        let mut after = 0;
        let mut out = Vec::new();
        // Oldest first in pages; the export is bounded by what the caller may read.
        loop {
            let filter = AuditFilter {
                after_sequence: Some(after),
                before_sequence: None,
                limit: 1000,
                ..base.clone()
            };
            let page = self.store.audit_records(caller, &filter).await.map_err(status)?;
            let done = page.len() < 1000;
            after = page.last().map(|record| record.sequence).unwrap_or(after);
            out.extend(page.iter().map(convert::audit_record).map(Ok));
            if done {
                break;
            }
        }
        Ok(Response::new(Box::pin(futures::stream::iter(out))))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let caller = caller(&request)?;
        let report = self.store.verify_audit(caller).await.map_err(status)?;
        let (first_bad_sequence, problem) = report
            .broken
            .map(|(sequence, problem)| (sequence.max(0) as u64, problem))
            .unwrap_or_default();
        Ok(Response::new(pb::VerifyAuditChainResponse {
            intact: problem.is_empty(),
            records_checked: report.records_checked,
            first_bad_sequence,
            problem,
        }))
    }

    async fn export_project(
        &self,
        request: Request<pb::ExportProjectRequest>,
    ) -> Result<Response<pb::ProjectArchive>, Status> {
        let caller = caller(&request)?;
        let ids = parse("name", &request.get_ref().name, "projects/*").map_err(status)?;
        let archive = self.store.export_project(caller, &ids[0]).await.map_err(status)?;
        Ok(Response::new(archive::to_proto(&archive)))
    }

    async fn import_project(
        &self,
        request: Request<pb::ImportProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let archive = archive::from_proto(body.archive.clone().unwrap_or_default()).map_err(status)?;
        let project = self
            .store
            .import_project(caller, archive, &body.project_id)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::project(&project)))
    }

    async fn rotate_secret_keys(
        &self,
        request: Request<pb::RotateSecretKeysRequest>,
    ) -> Result<Response<pb::RotateSecretKeysResponse>, Status> {
        let caller = caller(&request)?;
        let (rewrapped, active_key) = self.store.rotate_keys(caller).await.map_err(status)?;
        Ok(Response::new(pb::RotateSecretKeysResponse { rewrapped, active_key }))
    }
}
