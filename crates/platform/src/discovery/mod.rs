//! How services find each other. With Consul configured, each instance registers itself
//! (gRPC port, HTTP port in meta, a gRPC health check) and callers follow the healthy
//! instances of a service with blocking queries; without it, peers come from settings.
//! Either way a caller asks [`Discovery::channel`] for a gRPC channel that balances over
//! whatever instances exist now.

pub mod consul;
#[cfg(feature = "testing")]
pub mod fake_consul;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use tonic::transport::{Channel, Endpoint, channel::Change};

pub use consul::{ConsulClient, ConsulError, Instance, Registration};

use crate::{settings::ConsulSettings, shutdown::Shutdown};

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no static peers are configured for `{0}` (set `peers.{0}`)")]
    NoPeers(String),
    #[error("peer address `{0}` is not a valid URI")]
    BadAddress(String),
    #[error(transparent)]
    Consul(#[from] ConsulError),
}

/// Where peers come from.
#[derive(Clone, Debug)]
pub enum Discovery {
    Consul(Arc<ConsulDiscovery>),
    Static { peers: BTreeMap<String, Vec<String>> },
}

/// Consul-backed discovery: one watched, balanced channel per peer service.
#[derive(Debug)]
pub struct ConsulDiscovery {
    client: ConsulClient,
    settings: ConsulSettings,
    channels: Mutex<HashMap<String, Channel>>,
    shutdown: Shutdown,
}

impl Discovery {
    pub fn new(consul: Option<&ConsulSettings>, peers: &BTreeMap<String, Vec<String>>, shutdown: Shutdown) -> Self {
        match consul {
            Some(settings) => Discovery::Consul(Arc::new(ConsulDiscovery {
                client: ConsulClient::new(settings),
                settings: settings.clone(),
                channels: Mutex::default(),
                shutdown,
            })),
            None => Discovery::Static { peers: peers.clone() },
        }
    }

    /// `consul` or `static`, for `GetServiceInfo`.
    pub fn kind(&self) -> &'static str {
        match self {
            Discovery::Consul(_) => "consul",
            Discovery::Static { .. } => "static",
        }
    }

    /// The registration this instance announces, with its gRPC health check.
    pub fn registration(
        &self,
        id: &str,
        name: &str,
        address: std::net::IpAddr,
        grpc_port: u16,
        http_port: u16,
    ) -> Option<Registration> {
        let Discovery::Consul(consul) = self else {
            return None;
        };
        let settings = &consul.settings;
        let mut meta = BTreeMap::new();
        meta.insert("http_port".to_owned(), http_port.to_string());
        meta.insert("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        Some(Registration {
            id: id.to_owned(),
            name: name.to_owned(),
            address: address.to_string(),
            port: grpc_port,
            tags: settings.tags.clone(),
            meta,
            check: consul::HealthCheck {
                grpc: std::net::SocketAddr::new(address, grpc_port).to_string(),
                grpc_use_tls: false,
                interval: settings.check_interval.clone(),
                deregister_critical_service_after: settings.deregister_critical_after.clone(),
            },
        })
    }

    pub async fn register(&self, registration: &Registration) -> Result<(), DiscoveryError> {
        if let Discovery::Consul(consul) = self {
            consul.client.register(registration).await?;
        }
        Ok(())
    }

    pub async fn deregister(&self, id: &str) -> Result<(), DiscoveryError> {
        if let Discovery::Consul(consul) = self {
            consul.client.deregister(id).await?;
        }
        Ok(())
    }

    /// A channel to `service` balancing over its instances. With Consul the set follows
    /// the healthy instances as they come and go; channels are shared per service.
    pub fn channel(&self, service: &str) -> Result<Channel, DiscoveryError> {
        match self {
            Discovery::Static { peers } => {
                let addresses = peers
                    .get(service)
                    .filter(|list| !list.is_empty())
                    .ok_or_else(|| DiscoveryError::NoPeers(service.to_owned()))?;
                let endpoints = addresses
                    .iter()
                    .map(|address| {
                        Endpoint::from_shared(address.clone()).map_err(|_| DiscoveryError::BadAddress(address.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Channel::balance_list(endpoints.into_iter()))
            }
            Discovery::Consul(consul) => {
                let mut channels = consul.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(channel) = channels.get(service) {
                    return Ok(channel.clone());
                }
                let instances = consul::watch_healthy(
                    consul.client.clone(),
                    service.to_owned(),
                    consul.settings.watch_wait.clone(),
                    consul.shutdown.clone(),
                );
                let channel = balanced_channel(instances);
                channels.insert(service.to_owned(), channel.clone());
                Ok(channel)
            }
        }
    }
}

/// Feeds a tonic balancing channel from a changing set of instances.
pub fn balanced_channel(mut instances: tokio::sync::watch::Receiver<Vec<Instance>>) -> Channel {
    let (channel, changes) = Channel::balance_channel::<String>(64);
    tokio::spawn(async move {
        let mut current: BTreeMap<String, Instance> = BTreeMap::new();
        loop {
            let latest: BTreeMap<String, Instance> = instances
                .borrow_and_update()
                .iter()
                .map(|i| (i.id.clone(), i.clone()))
                .collect();
            for id in current.keys().filter(|id| !latest.contains_key(*id)) {
                if changes.send(Change::Remove(id.clone())).await.is_err() {
                    return;
                }
            }
            for (id, instance) in latest.iter().filter(|(id, i)| current.get(*id) != Some(i)) {
                let Ok(endpoint) = Endpoint::from_shared(format!("http://{}", instance.address)) else {
                    continue;
                };
                if changes.send(Change::Insert(id.clone(), endpoint)).await.is_err() {
                    return;
                }
            }
            current = latest;
            if instances.changed().await.is_err() {
                return;
            }
        }
    });
    channel
}
