//! What an instance says about itself in `GetServiceInfo`: the same message for every
//! service, filled from the running instance.

use std::time::SystemTime;

use switchyard_api::runtime::v1::ServiceInfo;

use crate::storage::{Database, StorageError};

#[derive(Debug, Clone)]
pub struct About {
    pub name: &'static str,
    pub instance_id: String,
    pub started_at: SystemTime,
    pub grpc_port: u16,
    pub http_port: u16,
    pub change_bus: &'static str,
    pub discovery: &'static str,
    pub database: Database,
}

impl About {
    /// The current answer; reads the schema version from the database.
    pub async fn service_info(&self) -> Result<ServiceInfo, StorageError> {
        Ok(ServiceInfo {
            name: self.name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            instance_id: self.instance_id.clone(),
            started_at: Some(timestamp(self.started_at)),
            grpc_port: u32::from(self.grpc_port),
            http_port: u32::from(self.http_port),
            storage_backend: self.database.backend.name().to_owned(),
            schema_version: self.database.schema_version().await?,
            change_bus: self.change_bus.to_owned(),
            discovery: self.discovery.to_owned(),
        })
    }
}

impl crate::error::Classify for StorageError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Internal
    }
}

fn timestamp(time: SystemTime) -> pbjson_types::Timestamp {
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}
