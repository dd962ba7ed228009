//! presence-service as `$presence` channels read it: the channel's members, and a
//! `WatchPresence` of the channel, with the services' shared credential acting for the
//! channel's tenant.

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use serde_json::json;
use switchyard_api::presence::v1::{self as pb, presence_event::Kind, presence_service_client::PresenceServiceClient};
use tonic::{Request, metadata::AsciiMetadataValue, transport::Channel};

use crate::biz::presence_feed::{Member, PresenceDirectory, Watched};

/// Members listed at subscribe time at most.
const SNAPSHOT_MEMBERS: i32 = 1_000;

#[derive(Debug, Clone)]
pub struct GrpcPresenceDirectory {
    client: PresenceServiceClient<Channel>,
    authorization: AsciiMetadataValue,
}

impl GrpcPresenceDirectory {
    pub fn new(channel: Channel, authorization: AsciiMetadataValue) -> Self {
        Self {
            client: PresenceServiceClient::new(channel),
            authorization,
        }
    }

    fn request<T>(&self, tenant: &str, message: T) -> Result<Request<T>, String> {
        let mut request = Request::new(message);
        let tenant: AsciiMetadataValue = tenant.parse().map_err(|_| format!("tenant `{tenant}` is not ASCII"))?;
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request.metadata_mut().insert("x-switchyard-tenant", tenant);
        Ok(request)
    }
}

fn status(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn member(member: pb::ChannelMember) -> Member {
    Member {
        user_id: member.user_id,
        connections: member.connections,
        status: member.status,
    }
}

/// What subscribers of `$presence:{channel}` receive for one change.
fn diff_json(diff: &pb::PresenceDiff) -> Bytes {
    let presence = diff.presence.clone().unwrap_or_default();
    let value = json!({
        "type": diff.r#type,
        "user_id": diff.user_id,
        "sequence": diff.sequence,
        "status": presence.status,
        "device_count": presence.device_count,
        "current_page": presence.current_page,
    });
    Bytes::from(value.to_string())
}

fn watched(event: pb::PresenceEvent) -> Option<Watched> {
    match event.kind? {
        Kind::Snapshot(snapshot) => Some(Watched::Snapshot {
            cursor: event.cursor,
            members: snapshot
                .channels
                .into_iter()
                .flat_map(|channel| channel.members)
                .map(member)
                .collect(),
        }),
        Kind::Diff(diff) => Some(Watched::Diff {
            data: diff_json(&diff),
            user: diff.user_id,
            cursor: event.cursor,
        }),
    }
}

#[async_trait::async_trait]
impl PresenceDirectory for GrpcPresenceDirectory {
    async fn members(&self, tenant: &str, channel: &str) -> Result<Vec<Member>, String> {
        let request = self.request(
            tenant,
            pb::GetChannelPresenceRequest {
                channel: channel.to_owned(),
                page_size: SNAPSHOT_MEMBERS,
                page_token: String::new(),
            },
        )?;
        let response = self
            .client
            .clone()
            .get_channel_presence(request)
            .await
            .map_err(status)?;
        Ok(response.into_inner().members.into_iter().map(member).collect())
    }

    async fn watch(
        &self,
        tenant: &str,
        channel: &str,
        resume: Option<String>,
    ) -> Result<BoxStream<'static, Result<Watched, String>>, String> {
        let request = self.request(
            tenant,
            pb::WatchPresenceRequest {
                user_ids: Vec::new(),
                channels: vec![channel.to_owned()],
                resume_cursor: resume.unwrap_or_default(),
            },
        )?;
        let stream = self.client.clone().watch_presence(request).await.map_err(status)?;
        Ok(stream
            .into_inner()
            .filter_map(|event| async move {
                match event {
                    Ok(event) => watched(event).map(Ok),
                    Err(error) => Some(Err(status(error))),
                }
            })
            .boxed())
    }
}
