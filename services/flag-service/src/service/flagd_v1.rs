//! `flagd.evaluation.v1`: typed resolution, ResolveAll and the provider event stream.
//!
//! v1 has no way to say "no value": a disabled flag, or one without a default variant, answers
//! with the type's zero value, an empty variant and reason DISABLED or DEFAULT — the pattern
//! every flagd provider reads as "use the caller's default". (flagd itself answers the second
//! case with NOT_FOUND on v1, which misreports a flag that exists.)

use flag_engine::{FlagState, Reason, ValueKind};
use pbjson_types::Struct;
use serde_json::Value;
use switchyard_api::flagd::evaluation::v1::{
    AnyFlag, EventStreamRequest, EventStreamResponse, ResolveAllRequest, ResolveAllResponse, ResolveBooleanRequest,
    ResolveBooleanResponse, ResolveFloatRequest, ResolveFloatResponse, ResolveIntRequest, ResolveIntResponse,
    ResolveObjectRequest, ResolveObjectResponse, ResolveStringRequest, ResolveStringResponse, any_flag,
    service_server::Service,
};
use switchyard_platform::{Shutdown, proto_json::to_proto_struct};
use tonic::{Request, Response, Status};

use super::flagd::{self, EventStream, Resolved};
use crate::biz::evaluation::Evaluator;

/// Implements `flagd.evaluation.v1.Service`.
#[derive(Debug, Clone)]
pub struct FlagdV1 {
    evaluator: Evaluator,
    shutdown: Shutdown,
}

impl FlagdV1 {
    pub fn new(evaluator: Evaluator, shutdown: Shutdown) -> Self {
        Self { evaluator, shutdown }
    }
}

fn variant(resolved: &Resolved) -> String {
    resolved.variant.clone().unwrap_or_default()
}

#[tonic::async_trait]
impl Service for FlagdV1 {
    async fn resolve_all(&self, request: Request<ResolveAllRequest>) -> Result<Response<ResolveAllResponse>, Status> {
        let (reader, selector) = flagd::reader(&self.evaluator, &request, "")?;
        let context = flagd::context(request.get_ref().context.as_ref());
        let view = flagd::view(&self.evaluator, &reader, &selector)?;
        let mut flags = std::collections::HashMap::new();
        for flag in view.flags().flags() {
            let resolution = self.evaluator.evaluate(&view, flag.key(), &context, None);
            // Like flagd, a flag that only has the caller's default to give is left out.
            if resolution.value.is_none() && resolution.reason == Reason::Default {
                continue;
            }
            let disabled = flag.state() == FlagState::Disabled;
            let value = match resolution.value {
                Some(value) if !disabled => any_value(value),
                _ => zero_any_value(flag.kind()),
            };
            flags.insert(
                flag.key().to_owned(),
                AnyFlag {
                    reason: resolution.reason.as_str().to_owned(),
                    variant: resolution.variant.unwrap_or_default().to_owned(),
                    metadata: Some(flagd::metadata(resolution.metadata, &selector)),
                    value: Some(value),
                },
            );
        }
        let metadata = flagd::metadata(&serde_json::Map::new(), &selector);
        Ok(Response::new(ResolveAllResponse {
            flags,
            metadata: Some(metadata),
        }))
    }

    async fn resolve_boolean(
        &self,
        request: Request<ResolveBooleanRequest>,
    ) -> Result<Response<ResolveBooleanResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Boolean)?;
        Ok(Response::new(ResolveBooleanResponse {
            value: resolved.value.as_ref().and_then(Value::as_bool).unwrap_or_default(),
            variant: variant(&resolved),
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
            value: resolved
                .value
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            variant: variant(&resolved),
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
            value: resolved.value.as_ref().and_then(Value::as_f64).unwrap_or_default(),
            variant: variant(&resolved),
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    async fn resolve_int(&self, request: Request<ResolveIntRequest>) -> Result<Response<ResolveIntResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Integer)?;
        Ok(Response::new(ResolveIntResponse {
            value: resolved.value.as_ref().and_then(whole_number).unwrap_or_default(),
            variant: variant(&resolved),
            reason: resolved.reason,
            metadata: Some(resolved.metadata),
        }))
    }

    async fn resolve_object(
        &self,
        request: Request<ResolveObjectRequest>,
    ) -> Result<Response<ResolveObjectResponse>, Status> {
        let resolved = flagd::resolve(&self.evaluator, request, ValueKind::Object)?;
        let value = match &resolved.value {
            Some(Value::Object(fields)) => to_proto_struct(fields),
            _ => Struct::default(),
        };
        Ok(Response::new(ResolveObjectResponse {
            value: Some(value),
            variant: variant(&resolved),
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

/// A JSON number as i64, when it is whole (the engine's type check guarantees it for Int).
pub fn whole_number(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|n| n.fract() == 0.0).map(|n| n as i64))
}

fn any_value(value: &Value) -> any_flag::Value {
    match value {
        Value::Bool(flag) => any_flag::Value::BoolValue(*flag),
        Value::String(text) => any_flag::Value::StringValue(text.clone()),
        Value::Number(number) => any_flag::Value::DoubleValue(number.as_f64().unwrap_or_default()),
        Value::Object(fields) => any_flag::Value::ObjectValue(to_proto_struct(fields)),
        Value::Null | Value::Array(_) => any_flag::Value::ObjectValue(Struct::default()),
    }
}

/// The zero value of a flag's type, which v1 sends where it has no value.
fn zero_any_value(kind: ValueKind) -> any_flag::Value {
    match kind {
        ValueKind::Boolean => any_flag::Value::BoolValue(false),
        ValueKind::String => any_flag::Value::StringValue(String::new()),
        ValueKind::Integer | ValueKind::Float => any_flag::Value::DoubleValue(0.0),
        ValueKind::Object => any_flag::Value::ObjectValue(Struct::default()),
    }
}
