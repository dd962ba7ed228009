//! Wiring: the platform host, then this service's parts on top of it.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use switchyard_api::experiments::v1::experiment_service_server::ExperimentServiceServer;
use switchyard_platform::{GrpcServices, Host, Running, Shutdown, StartError};

use crate::{
    biz::{
        aggregator,
        guardrails::{self, GuardrailSettings},
        id_retention,
        ingest::Ingestion,
        management::Manager,
    },
    conf::{IDENTITY, Settings},
    data::{MIGRATIONS, exposure_bus, flags::GrpcFlags, notices::RealtimeNotifier, repository::SqlRepository},
    service::ExperimentServiceApi,
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.experiments.v1.ExperimentService/GetServiceInfo"];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let max_message = host.settings.limits.max_request_bytes;
    let repository = SqlRepository::new(&host.database);
    let own = &host.settings.service;
    let limits = own.ingest_limits();
    let stored = Arc::new(Notify::new());
    let ingestion = Arc::new(Ingestion::new(repository.clone(), limits, stored.clone()));
    let (folded, folds) = tokio::sync::watch::channel(0);
    tokio::spawn(aggregator::run(
        repository.clone(),
        stored,
        folded,
        host.shutdown.clone(),
    ));
    tokio::spawn(id_retention::run(repository.clone(), limits, host.shutdown.clone()));
    let exposures = exposure_bus::subscribe(&host.bus).await?;
    tokio::spawn(follow_flag_exposures(
        exposures,
        ingestion.clone(),
        host.shutdown.clone(),
    ));
    let manager = Arc::new(Manager::new(repository, GrpcFlags::new(host.discovery.clone())));
    let credential = host.settings.auth.key_sync_credential.clone();
    let guard = GuardrailSettings {
        interval: Duration::from_secs(own.guardrail_check_seconds.max(1)),
        credential: credential.clone(),
    };
    let notifier = RealtimeNotifier::new(host.discovery.clone(), credential);
    tokio::spawn(guardrails::run(manager.clone(), notifier, guard, host.shutdown.clone()));
    let api = ExperimentServiceServer::new(ExperimentServiceApi::new(host.about.clone(), manager, ingestion, folds))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let services = PUBLIC
        .iter()
        .fold(GrpcServices::new().with_service(api), |services, path| {
            services.public(path)
        });
    host.serve(services).await
}

/// Feeds flag-service's exposures into ingestion until shutdown.
async fn follow_flag_exposures(
    exposures: impl futures::Stream<Item = Vec<crate::biz::ingest::FlagExposure>>,
    ingestion: Arc<Ingestion<SqlRepository>>,
    shutdown: Shutdown,
) {
    let mut exposures = std::pin::pin!(exposures);
    loop {
        let batch = tokio::select! {
            batch = futures::StreamExt::next(&mut exposures) => batch,
            () = shutdown.cancelled() => return,
        };
        let Some(batch) = batch else { return };
        if let Err(error) = ingestion
            .ingest_flag_exposures(batch, switchyard_platform::clock::now_ms())
            .await
        {
            tracing::warn!(%error, "storing exposures from flag-service failed");
        }
    }
}
