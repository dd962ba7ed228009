//! Wiring: the platform host, then this service's parts on top of it.

use std::{sync::Arc, time::Duration};

use flag_engine::Limits;
use switchyard_api::{
    flagd::{
        evaluation::{
            v1::service_server::ServiceServer as FlagdV1Server, v2::service_server::ServiceServer as FlagdV2Server,
        },
        sync::v1::flag_sync_service_server::FlagSyncServiceServer,
    },
    flags::v1::flag_service_server::FlagServiceServer,
};
use switchyard_platform::{
    GrpcServices, Host, Running, Shutdown, StartError, settings::SettingsError, storage::StorageError,
};

use crate::{
    biz::{
        catalog::Catalog,
        evaluation::Evaluator,
        management::Manager,
        projection::Projection,
        schedule,
        usage::{self, Usage},
    },
    conf::{IDENTITY, Settings},
    data::{MIGRATIONS, exposures::BusExposures, flag_files::FlagFiles, repository::SqlRepository},
    service::{FlagServiceApi, flagd_sync::FlagdSync, flagd_v1::FlagdV1, flagd_v2::FlagdV2, ofrep},
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.flags.v1.FlagService/GetServiceInfo"];

/// Evaluation answers from memory on every request a caller handles: it needs no management
/// credentials (as with flagd) and is not rate limited per caller.
const EVALUATION: &[&str] = &[
    "/switchyard.flags.v1.FlagService/Evaluate",
    "/switchyard.flags.v1.FlagService/EvaluateAll",
];
const FLAGD_SERVICES: &[&str] = &[
    "flagd.evaluation.v1.Service",
    "flagd.evaluation.v2.Service",
    "flagd.sync.v1.FlagSyncService",
];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let default_source = Some(host.settings.service.default_selector.clone()).filter(|name| !name.is_empty());
    let access = host.authenticator.directory().clone();
    let catalog = Arc::new(Catalog::with_access(default_source, access));
    tokio::spawn(catalog.clone().follow_access(host.shutdown.clone()));
    let files =
        FlagFiles::load(&host.settings.service.flags_files, catalog.clone(), Limits::default()).map_err(|error| {
            StartError::Settings(SettingsError::Invalid {
                key: "service.flags_files".to_owned(),
                reason: error.to_string(),
            })
        })?;
    let poll = Duration::from_millis(host.settings.service.flags_file_poll_ms.max(1));
    tokio::spawn(files.watch(poll, host.shutdown.clone()));

    let anonymous = Some(host.settings.service.anonymous_tenant.clone()).filter(|tenant| !tenant.is_empty());
    let own = &host.settings.service;
    let (usage, exposures) = Usage::new(own.exposure_queue);
    let evaluator = Evaluator::new(catalog.clone(), anonymous, usage.clone(), host.authenticator.clone())
        .with_static_context(own.static_context.clone());
    let repository = Arc::new(SqlRepository::new(host.database.pool.clone()));
    tokio::spawn(Usage::deliver_exposures(
        exposures,
        BusExposures::new(host.bus.clone()),
        own.exposure_batch,
        Duration::from_millis(own.exposure_linger_ms.max(1)),
        host.shutdown.clone(),
    ));
    let flush = Duration::from_millis(own.usage_flush_ms.max(10));
    tokio::spawn(usage::flush_every(
        usage,
        repository.clone(),
        flush,
        host.shutdown.clone(),
    ));
    let projection = Arc::new(Projection::new(repository.clone(), catalog, host.bus.clone()));
    projection
        .load_all()
        .await
        .map_err(|error| StartError::Storage(StorageError::Query(sqlx::Error::Protocol(error.to_string()))))?;
    let resync = Duration::from_millis(host.settings.service.resync_interval_ms.max(10));
    tokio::spawn(projection.clone().follow(resync, host.shutdown.clone()));
    let manager = Arc::new(Manager::new(repository, projection));
    let poll = Duration::from_millis(host.settings.service.schedule_poll_ms.max(10));
    tokio::spawn(schedule::apply_due_every(manager.clone(), poll, host.shutdown.clone()));
    let max_message = host.settings.limits.max_request_bytes;
    let api = FlagServiceServer::new(FlagServiceApi::new(host.about.clone(), evaluator.clone(), manager))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let v1 = FlagdV1Server::new(FlagdV1::new(evaluator.clone(), host.shutdown.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let v2 = FlagdV2Server::new(FlagdV2::new(evaluator.clone(), host.shutdown.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let sync = FlagSyncServiceServer::new(FlagdSync::new(evaluator.clone(), host.shutdown.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);

    let mut services = GrpcServices::new()
        .with_service(api)
        .with_service(v1)
        .with_service(v2)
        .with_service(sync)
        .with_http_routes(ofrep::routes(evaluator, host.authenticator.clone(), max_message));
    for path in PUBLIC.iter().chain(EVALUATION) {
        services = services.public(path);
    }
    for service in FLAGD_SERVICES {
        services = services.public_service(service).unmetered_service(service);
    }
    host.serve(services).await
}
