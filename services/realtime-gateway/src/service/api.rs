//! The gRPC server API (`switchyard.realtime.v1.RealtimeService`): maps protobuf to the
//! gateway's use cases and errors to statuses. The caller's tenant comes from its
//! credentials; publishing needs the publisher role, reading needs viewer.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use switchyard_api::{
    realtime::v1::{
        self as pb, BroadcastError, BroadcastRequest, BroadcastResponse, BroadcastResult, ChannelInfo, ChannelsRequest,
        ChannelsResponse, DisconnectRequest, DisconnectResponse, HistoryRemoveRequest, HistoryRemoveResponse,
        HistoryRequest, HistoryResponse, InfoRequest, InfoResponse, NodeInfo, PublishRequest, PublishResponse,
        UnsubscribeRequest, UnsubscribeResponse, event::Kind, realtime_service_server::RealtimeService,
    },
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{
    about::About,
    auth::{AuthError, Principal, Role},
    error::to_status,
    proto_json::{from_proto_value, timestamp, to_proto_value},
};
use tonic::{Request, Response, Status};

use crate::{
    biz::{
        gateway::{Gateway, GatewayError, Outgoing},
        publication::{Publication, StreamPosition},
    },
    data::AnyBroker,
};

/// Most channels one `Broadcast` may name.
const MAX_BROADCAST_CHANNELS: usize = 1_000;

/// Implements `switchyard.realtime.v1.RealtimeService`.
#[derive(Debug, Clone)]
pub struct RealtimeServiceApi {
    about: About,
    gateway: Arc<Gateway<AnyBroker>>,
}

impl RealtimeServiceApi {
    pub fn new(about: About, gateway: Arc<Gateway<AnyBroker>>) -> Self {
        Self { about, gateway }
    }
}

fn auth_status(error: AuthError) -> Status {
    to_status(&error)
}

/// The caller's tenant, once it holds `role` on `resource`.
fn tenant<T>(request: &Request<T>, role: Role, resource: &str) -> Result<String, Status> {
    let principal = Principal::of(request).map_err(auth_status)?;
    principal
        .authorize(&principal.tenant, role, resource)
        .map_err(auth_status)?;
    Ok(principal.tenant.clone())
}

fn channel_resource(channel: &str) -> String {
    format!("realtime/channels/{channel}")
}

fn invalid(field: &str, message: impl Into<String>) -> Status {
    to_status(&GatewayError::invalid(field, message))
}

/// The JSON clients receive: `data` as it is, or a typed event as `{"type": …, …fields}`.
fn payload(data: Option<&pbjson_types::Value>, event: Option<&pb::Event>) -> Result<Bytes, Status> {
    match (data, event) {
        (Some(data), None) => serde_json::to_vec(&from_proto_value(data))
            .map(Bytes::from)
            .map_err(|error| invalid("data", error.to_string())),
        (None, Some(event)) => event_json(event),
        _ => Err(invalid("payload", "exactly one of `data` and `event` is required")),
    }
}

fn event_json(event: &pb::Event) -> Result<Bytes, Status> {
    let (kind, fields) = match &event.kind {
        Some(Kind::ProductPriceChange(e)) => ("product_price_change", serde_json::to_value(e)),
        Some(Kind::ProductStockUpdate(e)) => ("product_stock_update", serde_json::to_value(e)),
        Some(Kind::OrderStatusUpdate(e)) => ("order_status_update", serde_json::to_value(e)),
        Some(Kind::PaymentStatusUpdate(e)) => ("payment_status_update", serde_json::to_value(e)),
        Some(Kind::ShippingUpdate(e)) => ("shipping_update", serde_json::to_value(e)),
        Some(Kind::PriceDropAlert(e)) => ("price_drop_alert", serde_json::to_value(e)),
        Some(Kind::RestockNotification(e)) => ("restock_notification", serde_json::to_value(e)),
        Some(Kind::PromotionAlert(e)) => ("promotion_alert", serde_json::to_value(e)),
        None => return Err(invalid("event", "names no event")),
    };
    let mut fields = match fields {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => return Err(invalid("event", "cannot be encoded")),
    };
    fields.insert("type".to_owned(), kind.into());
    serde_json::to_vec(&fields)
        .map(Bytes::from)
        .map_err(|error| invalid("event", error.to_string()))
}

fn outgoing(data: Bytes, idempotency_key: String, tags: std::collections::HashMap<String, String>) -> Outgoing {
    Outgoing {
        data,
        tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
        idempotency_key: Some(idempotency_key).filter(|key| !key.is_empty()),
    }
}

fn position(position: &StreamPosition) -> pb::StreamPosition {
    pb::StreamPosition {
        offset: position.offset,
        epoch: position.epoch.to_string(),
    }
}

fn publication(publication: &Publication) -> Result<pb::Publication, Status> {
    let data: serde_json::Value =
        serde_json::from_slice(&publication.data).map_err(|_| Status::internal("stored data is not JSON"))?;
    Ok(pb::Publication {
        offset: publication.offset,
        data: Some(to_proto_value(&data)),
        tags: publication.tags.clone().into_iter().collect(),
        time: timestamp(publication.time_ms),
    })
}

#[tonic::async_trait]
impl RealtimeService for RealtimeServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }

    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        let tenant = tenant(&request, Role::Publisher, &channel_resource(&request.get_ref().channel))?;
        let request = request.into_inner();
        let (data, event) = split_payload(request.payload);
        let data = payload(data.as_ref(), event.as_ref())?;
        let published = self
            .gateway
            .publish(
                &tenant,
                &request.channel,
                outgoing(data, request.idempotency_key, request.tags),
            )
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(PublishResponse {
            position: Some(position(&published.position)),
            duplicate: published.duplicate,
        }))
    }

    async fn broadcast(&self, request: Request<BroadcastRequest>) -> Result<Response<BroadcastResponse>, Status> {
        let principal = Principal::of(&request).map_err(auth_status)?.clone();
        let request = request.into_inner();
        if request.channels.is_empty() || request.channels.len() > MAX_BROADCAST_CHANNELS {
            return Err(invalid("channels", format!("1 to {MAX_BROADCAST_CHANNELS} channels")));
        }
        let (data, event) = split_payload(request.payload);
        let data = payload(data.as_ref(), event.as_ref())?;
        let mut results = Vec::with_capacity(request.channels.len());
        for channel in request.channels {
            let allowed = principal.authorize(&principal.tenant, Role::Publisher, &channel_resource(&channel));
            let published = match allowed {
                Err(error) => Err(auth_status(error)),
                Ok(()) => self
                    .gateway
                    .publish(
                        &principal.tenant,
                        &channel,
                        outgoing(data.clone(), request.idempotency_key.clone(), request.tags.clone()),
                    )
                    .await
                    .map_err(|error| to_status(&error)),
            };
            results.push(match published {
                Ok(published) => BroadcastResult {
                    channel,
                    position: Some(position(&published.position)),
                    duplicate: published.duplicate,
                    error: None,
                },
                Err(status) => BroadcastResult {
                    channel,
                    position: None,
                    duplicate: false,
                    error: Some(BroadcastError {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                    }),
                },
            });
        }
        Ok(Response::new(BroadcastResponse { results }))
    }

    async fn unsubscribe(&self, request: Request<UnsubscribeRequest>) -> Result<Response<UnsubscribeResponse>, Status> {
        let tenant = tenant(&request, Role::Publisher, &channel_resource(&request.get_ref().channel))?;
        let request = request.into_inner();
        self.gateway
            .unsubscribe_user(&tenant, &request.user, &request.channel)
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(UnsubscribeResponse {}))
    }

    async fn disconnect(&self, request: Request<DisconnectRequest>) -> Result<Response<DisconnectResponse>, Status> {
        let tenant = tenant(&request, Role::Publisher, "realtime")?;
        let request = request.into_inner();
        self.gateway
            .disconnect_user(&tenant, &request.user, request.reconnect, &request.reason)
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(DisconnectResponse {}))
    }

    async fn history(&self, request: Request<HistoryRequest>) -> Result<Response<HistoryResponse>, Status> {
        let tenant = tenant(&request, Role::Viewer, &channel_resource(&request.get_ref().channel))?;
        let request = request.into_inner();
        let since = request.since.map(|since| StreamPosition {
            offset: since.offset,
            epoch: since.epoch.into(),
        });
        let page = self
            .gateway
            .history(
                &tenant,
                &request.channel,
                request.limit as usize,
                since,
                request.reverse,
            )
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(HistoryResponse {
            publications: page.publications.iter().map(publication).collect::<Result<_, _>>()?,
            position: Some(position(&page.position)),
        }))
    }

    async fn history_remove(
        &self,
        request: Request<HistoryRemoveRequest>,
    ) -> Result<Response<HistoryRemoveResponse>, Status> {
        let tenant = tenant(&request, Role::Publisher, &channel_resource(&request.get_ref().channel))?;
        self.gateway
            .remove_history(&tenant, &request.get_ref().channel)
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(HistoryRemoveResponse {}))
    }

    async fn channels(&self, request: Request<ChannelsRequest>) -> Result<Response<ChannelsResponse>, Status> {
        let tenant = tenant(&request, Role::Viewer, "realtime")?;
        let channels = self
            .gateway
            .channels(&tenant, &request.get_ref().prefix)
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(ChannelsResponse {
            channels: channels
                .into_iter()
                .map(|(channel, subscribers)| ChannelInfo { channel, subscribers })
                .collect(),
        }))
    }

    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        tenant(&request, Role::Viewer, "realtime")?;
        let nodes = self.gateway.nodes().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(InfoResponse {
            nodes: nodes
                .into_iter()
                .map(|node| NodeInfo {
                    id: node.id,
                    version: node.version,
                    connections: node.connections,
                    users: node.users,
                    subscriptions: node.subscriptions,
                    channels: node.topics.len() as u32,
                    started_at: timestamp(node.started_at_ms),
                    updated_at: timestamp(node.updated_at_ms),
                })
                .collect(),
        }))
    }
}

fn split_payload<P: Into<Payload>>(payload: Option<P>) -> (Option<pbjson_types::Value>, Option<pb::Event>) {
    match payload.map(Into::into) {
        Some(Payload::Data(data)) => (Some(data), None),
        Some(Payload::Event(event)) => (None, Some(event)),
        None => (None, None),
    }
}

/// The `payload` oneof of `PublishRequest` and `BroadcastRequest`, which prost generates as
/// two types.
enum Payload {
    Data(pbjson_types::Value),
    Event(pb::Event),
}

impl From<pb::publish_request::Payload> for Payload {
    fn from(payload: pb::publish_request::Payload) -> Self {
        match payload {
            pb::publish_request::Payload::Data(data) => Payload::Data(data),
            pb::publish_request::Payload::Event(event) => Payload::Event(event),
        }
    }
}

impl From<pb::broadcast_request::Payload> for Payload {
    fn from(payload: pb::broadcast_request::Payload) -> Self {
        match payload {
            pb::broadcast_request::Payload::Data(data) => Payload::Data(data),
            pb::broadcast_request::Payload::Event(event) => Payload::Event(event),
        }
    }
}
