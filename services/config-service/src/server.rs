//! Wiring: the platform host, then this service's parts on top of it.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use switchyard_api::config::v1::{
    api_key_service_server::ApiKeyServiceServer, config_service_server::ConfigServiceServer,
    delivery_service_server::DeliveryServiceServer, governance_service_server::GovernanceServiceServer,
};
use switchyard_platform::{
    GrpcServices, Host, Running, Shutdown, StartError, announce::Announcer, discovery::ConsulClient,
};

use crate::{
    biz::{
        api_keys::ApiKeys,
        changes::Changes,
        delivery::Delivery,
        deployments::Deployments,
        governance::Governance,
        keystore::Keystore,
        mirror::Mirror,
        secrets::Keyring,
        store::{ConfigStore, StoreLimits},
        webhooks::Hooks,
    },
    conf::{ConfigServiceSettings, IDENTITY, Settings},
    data::{MIGRATIONS, SqlRepository, consul_kv::ConsulKv, hooks::AnnouncerHooks, prometheus::PrometheusHttp},
    service::{ApiKeyServiceApi, ConfigServiceApi, DeliveryServiceApi, GovernanceServiceApi},
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.config.v1.ConfigService/GetServiceInfo"];

/// How often each replica looks for scheduled change requests that are due.
const SCHEDULER_INTERVAL: Duration = Duration::from_secs(1);

/// The key file used when no key-encryption key is configured.
const GENERATED_KEY_FILE: &str = "secrets.kek";

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let embedded = settings.storage_url(IDENTITY.name).starts_with("sqlite:");
    let keyring = keyring(&settings.service, &settings.data_dir, embedded)?;
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let own = &host.settings.service;
    let repository = Arc::new(SqlRepository::new(host.database.pool.clone()));
    let keystore = Arc::new(Keystore::new(repository.clone(), keyring));
    let mut delivery = Delivery::new(
        repository.clone(),
        host.bus.clone(),
        own.recent_changes,
        own.retained_changes.max(1),
    );
    if let (Some(prefix), Some(consul)) = (&own.consul_kv_prefix, &host.settings.consul) {
        let sink = Arc::new(ConsulKv::new(ConsulClient::new(consul)));
        delivery = delivery.with_mirror(Mirror::start(sink, prefix, host.shutdown.clone()));
    }
    let delivery = Arc::new(delivery);
    tokio::spawn(delivery.clone().follow_bus(host.shutdown.clone()));
    let interval = Duration::from_millis(own.resync_interval_ms.max(10));
    tokio::spawn(delivery.clone().resync_every(interval, host.shutdown.clone()));
    let api_keys = Arc::new(ApiKeys::new(
        repository.clone(),
        host.authenticator.directory().clone(),
        host.bus.clone(),
    ));
    if let Err(error) = api_keys.reload().await {
        tracing::warn!(%error, "loading API keys; retrying at the next resync");
    }
    let hooks: Arc<dyn Hooks> = Arc::new(AnnouncerHooks::new(Announcer::new(
        host.discovery.clone(),
        host.settings.auth.key_sync_credential.clone(),
    )));
    let governance = Arc::new(Governance::new(repository.clone(), hooks.clone()));
    let store = Arc::new(ConfigStore::new(
        repository.clone(),
        keystore,
        delivery,
        governance.clone(),
        StoreLimits::default(),
    ));
    let deployments = Arc::new(Deployments::new(
        store.clone(),
        repository.clone(),
        Arc::new(PrometheusHttp::default()),
        hooks,
        own.deployments.to_domain(),
    ));
    // Each replica's driver leases deployments under its own id.
    let driver = format!("{}-{}", host.about.instance_id, uuid::Uuid::new_v4().simple());
    tokio::spawn(deployments.clone().drive(driver, host.shutdown.clone()));
    let changes = Arc::new(Changes::new(
        store.clone(),
        deployments.clone(),
        governance.clone(),
        repository.clone(),
    ));
    tokio::spawn(changes.clone().run_scheduler(SCHEDULER_INTERVAL, host.shutdown.clone()));
    tokio::spawn(
        api_keys
            .clone()
            .follow(interval, store.access_changes(), host.shutdown.clone()),
    );
    tokio::spawn(api_keys.clone().store_uses(interval, host.shutdown.clone()));
    let max_message = host.settings.limits.max_request_bytes;
    let api = ConfigServiceServer::new(ConfigServiceApi::new(
        host.about.clone(),
        store,
        host.shutdown.clone(),
        &host.metrics,
    ))
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(max_message);
    let keys = ApiKeyServiceServer::new(ApiKeyServiceApi::new(api_keys, host.shutdown.clone()));
    let delivery_api = DeliveryServiceServer::new(DeliveryServiceApi::new(deployments, host.shutdown.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let governance_api = GovernanceServiceServer::new(GovernanceServiceApi::new(governance, changes));
    let services = PUBLIC.iter().fold(
        GrpcServices::new()
            .with_service(api)
            .with_service(keys)
            .with_service(delivery_api)
            .with_service(governance_api),
        |services, path| services.public(path),
    );
    host.serve(services).await
}

/// The key-encryption keys from settings. Without any, an embedded (SQLite) node generates
/// one into its data directory; a node on shared storage runs without one and refuses
/// secrets, because replicas that each generated their own key could not open each other's.
fn keyring(
    settings: &ConfigServiceSettings,
    data_dir: &std::path::Path,
    embedded: bool,
) -> Result<Option<Keyring>, StartError> {
    let invalid = |message: String| {
        StartError::Settings(switchyard_platform::settings::SettingsError::Invalid {
            key: "service.secret_keys".to_owned(),
            reason: message,
        })
    };
    if settings.secret_keys.is_empty() && !embedded {
        tracing::warn!("no [service] secret_keys: configs holding secrets will be refused");
        return Ok(None);
    }
    if settings.secret_keys.is_empty() {
        let material = generated_key(data_dir)
            .map_err(|error| invalid(format!("cannot create a key in {}: {error}", data_dir.display())))?;
        let keyring = Keyring::new(vec![("generated".to_owned(), material)], "generated");
        return keyring.map(Some).map_err(|error| invalid(error.to_string()));
    }
    let mut keys = Vec::new();
    for (id, encoded) in &settings.secret_keys {
        let material = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid(format!("key `{id}` is not base64")))?;
        keys.push((id.clone(), material));
    }
    let active = match settings.active_secret_key.as_str() {
        "" if keys.len() == 1 => keys[0].0.clone(),
        "" => return Err(invalid("set service.active_secret_key to one of the keys".to_owned())),
        active => active.to_owned(),
    };
    Keyring::new(keys, &active)
        .map(Some)
        .map_err(|error| invalid(error.to_string()))
}

/// Reads `<data_dir>/secrets.kek`, creating it (0600) with 32 random bytes on first use.
fn generated_key(data_dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let path = data_dir.join(GENERATED_KEY_FILE);
    if let Ok(material) = std::fs::read(&path) {
        return Ok(material);
    }
    std::fs::create_dir_all(data_dir)?;
    let material: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    std::io::Write::write_all(&mut file, &material)?;
    file.sync_all()?;
    Ok(material.to_vec())
}
