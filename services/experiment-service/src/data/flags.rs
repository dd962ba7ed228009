//! [`GrpcFlags`]: flag-service over gRPC (found through discovery), read-modify-write of a
//! flag's environments with its etag, retried when someone else changed it meanwhile.

use serde_json::Value;
use switchyard_api::flags::v1::{self as pb, flag_service_client::FlagServiceClient};
use switchyard_platform::{
    discovery::Discovery,
    proto_json::{from_proto_struct, to_proto_struct, to_proto_value},
};
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};

use switchyard_platform::auth::ACT_FOR_TENANT_HEADER;

use crate::biz::flags::{FlagCredentials, FlagView, Flags, FlagsError, TargetingChange};

/// Attempts of one rewrite when the flag keeps moving under it.
const ATTEMPTS: usize = 5;
/// The metadata key flag-service binds exposures with.
const EXPERIMENT_METADATA: &str = "experiment";

#[derive(Debug, Clone)]
pub struct GrpcFlags {
    discovery: Discovery,
}

impl GrpcFlags {
    pub fn new(discovery: Discovery) -> Self {
        Self { discovery }
    }

    fn client(&self) -> Result<FlagServiceClient<Channel>, FlagsError> {
        let channel = self
            .discovery
            .channel("flag-service")
            .map_err(|error| FlagsError::Unavailable(error.to_string()))?;
        Ok(FlagServiceClient::new(channel))
    }
}

fn authorized<T>(credentials: FlagCredentials<'_>, message: T) -> Result<Request<T>, FlagsError> {
    let bad = |_| FlagsError::Refused("bad credentials".into());
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(credentials.authorization).map_err(bad)?;
    request.metadata_mut().insert("authorization", value);
    if let Some(tenant) = credentials.act_for_tenant {
        let value = MetadataValue::try_from(tenant).map_err(bad)?;
        request.metadata_mut().insert(ACT_FOR_TENANT_HEADER, value);
    }
    Ok(request)
}

fn failed(flag: &str, status: Status) -> FlagsError {
    match status.code() {
        Code::NotFound => FlagsError::Missing(flag.to_owned()),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => {
            FlagsError::Unavailable(status.message().to_owned())
        }
        Code::PermissionDenied | Code::Unauthenticated => FlagsError::Denied(status.message().to_owned()),
        _ => FlagsError::Refused(status.message().to_owned()),
    }
}

fn view_of(flag: &pb::Flag) -> FlagView {
    FlagView {
        variants: flag
            .variants
            .as_ref()
            .map(|variants| variants.fields.keys().cloned().collect())
            .unwrap_or_default(),
        targeting: flag
            .environments
            .iter()
            .map(|(environment, rules)| {
                let targeting = rules
                    .targeting
                    .as_ref()
                    .map(|rule| Value::Object(from_proto_struct(rule)));
                (environment.clone(), targeting)
            })
            .collect(),
    }
}

impl GrpcFlags {
    async fn get(&self, credentials: FlagCredentials<'_>, project: &str, flag: &str) -> Result<pb::Flag, FlagsError> {
        let request = authorized(
            credentials,
            pb::GetFlagRequest {
                name: format!("projects/{project}/flags/{flag}"),
            },
        )?;
        self.client()?
            .get_flag(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| failed(flag, status))
    }
}

impl Flags for GrpcFlags {
    async fn read(&self, credentials: FlagCredentials<'_>, project: &str, flag: &str) -> Result<FlagView, FlagsError> {
        Ok(view_of(&self.get(credentials, project, flag).await?))
    }

    async fn rewrite(
        &self,
        credentials: FlagCredentials<'_>,
        project: &str,
        flag: &str,
        change: &TargetingChange,
    ) -> Result<FlagView, FlagsError> {
        let mut last = FlagsError::Unavailable("no attempt made".into());
        for _ in 0..ATTEMPTS {
            let mut current = self.get(credentials, project, flag).await?;
            let before = view_of(&current);
            apply(&mut current, change);
            let etag = current.etag.clone();
            let request = authorized(
                credentials,
                pb::UpdateFlagRequest {
                    flag: Some(current),
                    etag,
                    message: change.message.clone(),
                },
            )?;
            match self.client()?.update_flag(request).await {
                Ok(_) => return Ok(before),
                Err(status) if status.code() == Code::Aborted => last = failed(flag, status),
                Err(status) => return Err(failed(flag, status)),
            }
        }
        Err(last)
    }
}

/// The change applied to a flag read from flag-service.
fn apply(flag: &mut pb::Flag, change: &TargetingChange) {
    for (environment, targeting) in &change.targeting {
        let rules = flag
            .environments
            .entry(environment.clone())
            .or_insert_with(|| pb::EnvironmentRules {
                enabled: true,
                ..pb::EnvironmentRules::default()
            });
        rules.targeting = targeting.as_ref().and_then(Value::as_object).map(to_proto_struct);
    }
    let metadata = flag.metadata.get_or_insert_with(Default::default);
    match &change.experiment {
        Some(key) => {
            metadata.fields.insert(
                EXPERIMENT_METADATA.to_owned(),
                to_proto_value(&Value::String(key.clone())),
            );
        }
        None => {
            metadata.fields.remove(EXPERIMENT_METADATA);
        }
    }
}
