//! `flagd.evaluation.v2`: typed resolution where an unset value and variant mean "use the
//! caller's default" (disabled flags, flags without a default variant); the provider event
//! stream as in v1. The Python, Java and JavaScript flagd providers speak this version.

use flag_engine::ValueKind;
use serde_json::Value;
use switchyard_api::flagd::evaluation::v2::{
    EventStreamRequest, EventStreamResponse, ResolveBooleanRequest, ResolveBooleanResponse, ResolveFloatRequest,
    ResolveFloatResponse, ResolveIntRequest, ResolveIntResponse, ResolveObjectRequest, ResolveObjectResponse,
    ResolveStringRequest, ResolveStringResponse, service_server::Service,
};
use switchyard_platform::{Shutdown, proto_json::to_proto_struct};
use tonic::{Request, Response, Status};

use super::{
    flagd::{self, EventStream},
    flagd_v1::whole_number,
};
use crate::biz::evaluation::Evaluator;

/// Implements `flagd.evaluation.v2.Service`.
#[derive(Debug, Clone)]
pub struct FlagdV2 {
    evaluator: Evaluator,
    shutdown: Shutdown,
}

impl FlagdV2 {
    pub fn new(evaluator: Evaluator, shutdown: Shutdown) -> Self {
        Self { evaluator, shutdown }
    }
}

#[tonic::async_trait]
impl Service for FlagdV2 {
    async fn resolve_boolean(
        &self,
        request: Request<ResolveBooleanRequest>,
    ) -> Result<Response<ResolveBooleanResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Boolean)?;
        Ok(Response::new(ResolveBooleanResponse {
            value: resolved.value.as_ref().and_then(Value::as_bool),
            variant: resolved.variant,
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    async fn resolve_string(
        &self,
        request: Request<ResolveStringRequest>,
    ) -> Result<Response<ResolveStringResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::String)?;
        Ok(Response::new(ResolveStringResponse {
            value: resolved.value.as_ref().and_then(Value::as_str).map(str::to_owned),
            variant: resolved.variant,
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    async fn resolve_float(
        &self,
        request: Request<ResolveFloatRequest>,
    ) -> Result<Response<ResolveFloatResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Float)?;
        Ok(Response::new(ResolveFloatResponse {
            value: resolved.value.as_ref().and_then(Value::as_f64),
            variant: resolved.variant,
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    async fn resolve_int(&self, request: Request<ResolveIntRequest>) -> Result<Response<ResolveIntResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Integer)?;
        Ok(Response::new(ResolveIntResponse {
            value: resolved.value.as_ref().and_then(whole_number),
            variant: resolved.variant,
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    async fn resolve_object(
        &self,
        request: Request<ResolveObjectRequest>,
    ) -> Result<Response<ResolveObjectResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Object)?;
        Ok(Response::new(ResolveObjectResponse {
            value: resolved.value.as_ref().and_then(Value::as_object).map(to_proto_struct),
            variant: resolved.variant,
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    type EventStreamStream = EventStream<EventStreamResponse>;

    async fn event_stream(
        &self,
        request: Request<EventStreamRequest>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        let stream = flagd::event_stream(&self.evaluator, &request, self.shutdown.clone(), |kind, data| {
            EventStreamResponse {
                r#type: kind.to_owned(),
                data,
            }
        })?;
        Ok(Response::new(stream))
    }
}
