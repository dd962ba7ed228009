//! HTTP/JSON → gRPC transcoding for every service, driven by descriptors alone. A request
//! is matched against the `google.api.http` routes, turned into the method's protobuf
//! message, and sent through the very same gRPC service stack a gRPC client reaches
//! (auth, limits and metrics included) — in process, without a socket. The reply comes
//! back as proto3 JSON; failures as a `google.rpc.Status` JSON body with the HTTP status
//! of the gRPC code. Server-streaming methods answer with one JSON object per line.

mod frame;
pub mod openapi;
mod proto_names;
mod request;
pub mod routes;
pub mod template;

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use axum::{body::Body as AxumBody, extract::ConnectInfo, response::Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions};
use serde_json::json;
use tonic::{Code, Status, body::Body as GrpcBody};
use tonic_types::StatusExt;
use tower::{ServiceExt, util::BoxCloneSyncService};

use crate::auth::{Admitted, AuthLayer};

pub use routes::{Lookup, Route, RouteTable};

/// The gRPC service stack, as the transcoder calls it.
pub type GrpcStack = BoxCloneSyncService<http::Request<GrpcBody>, http::Response<GrpcBody>, Infallible>;

/// Everything the transcoding handler needs, shared by all requests.
#[derive(Clone)]
pub struct Transcoder {
    routes: Arc<RouteTable>,
    grpc: GrpcStack,
    max_body_bytes: usize,
    auth: Option<AuthLayer>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("routes", &self.routes.routes().len())
            .finish_non_exhaustive()
    }
}

/// Headers passed from the HTTP request to the gRPC call, besides every `x-*` header.
const FORWARDED: &[&str] = &[
    "authorization",
    "traceparent",
    "tracestate",
    "baggage",
    "grpc-timeout",
    "user-agent",
];

impl Transcoder {
    pub fn new(routes: Arc<RouteTable>, grpc: GrpcStack, max_body_bytes: usize) -> Self {
        Self {
            routes,
            grpc,
            max_body_bytes,
            auth: None,
        }
    }

    /// Checks credentials before a body is read, as the gRPC stack's auth layer will.
    pub fn with_auth(mut self, auth: AuthLayer) -> Self {
        self.auth = Some(auth);
        self
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Whether gRPC `path` answers without credentials (everything does without an auth layer).
    pub fn is_public(&self, path: &str) -> bool {
        self.auth.as_ref().is_none_or(|auth| auth.is_public(path))
    }

    /// Serves one HTTP request (used as the HTTP router's fallback).
    pub async fn handle(&self, request: axum::extract::Request) -> Response {
        let (parts, body) = request.into_parts();
        let (route, bindings) = match self.routes.lookup(&parts.method, parts.uri.path()) {
            Lookup::Found(route, bindings) => (route, bindings),
            Lookup::WrongMethod(allowed) => return method_not_allowed(&allowed),
            Lookup::NotFound => {
                let message = format!("no route for {} {}", parts.method, parts.uri.path());
                return status_response(&Status::not_found(message));
            }
        };
        let admitted = match &self.auth {
            None => None,
            Some(auth) => match auth.admit(&route.grpc_path(), &parts.headers) {
                Ok(principal) => Some(Admitted(principal)),
                Err(status) => return status_response(&status),
            },
        };
        let body = match http_body_util::Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                let message = format!("request body exceeds {} bytes", self.max_body_bytes);
                return error_response(StatusCode::PAYLOAD_TOO_LARGE, &Status::resource_exhausted(message));
            }
        };
        let messages = match messages(route, &bindings, &parts.headers, parts.uri.query(), &body) {
            Ok(messages) => messages,
            Err(status) => return status_response(&status),
        };
        let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
        let mut grpc_request = grpc_request(route, &parts.headers, remote, &messages);
        if let Some(admitted) = admitted {
            grpc_request.extensions_mut().insert(admitted);
        }
        let response = match self.grpc.clone().oneshot(grpc_request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let Some(status) = frame::failure(response.headers()) {
            return status_response(&status);
        }
        let output = route.method.output();
        let render = Render {
            response_body: route.response_body.clone(),
            proto_field_names: route.proto_field_names,
        };
        if route.method.is_server_streaming() {
            return stream_response(response.into_body(), output, render);
        }
        unary_response(response.into_body(), &output, &render).await
    }
}

/// The request's messages: one, or for a client-streaming method sent as NDJSON
/// (`application/x-ndjson`), one per non-blank line, each with the path's bindings.
fn messages(
    route: &Route,
    bindings: &[template::Binding],
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<DynamicMessage>, Status> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-ndjson"));
    if !(ndjson && route.method.is_client_streaming()) {
        return request::build(route, bindings, query, body)
            .map(|message| vec![message])
            .map_err(|error| invalid_argument(&error));
    }
    body.split(|byte| *byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(index, line)| {
            request::build(route, bindings, query, line).map_err(|error| {
                let mut status = invalid_argument(&error);
                status = Status::with_details(
                    status.code(),
                    format!("line {}: {}", index + 1, status.message()),
                    status.details().to_vec().into(),
                );
                status
            })
        })
        .collect()
}

fn invalid_argument(error: &request::RequestError) -> Status {
    let mut details = tonic_types::ErrorDetails::new();
    details.add_bad_request_violation(error.field(), error.to_string());
    Status::with_error_details(Code::InvalidArgument, error.to_string(), details)
}

fn grpc_request(
    route: &Route,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    messages: &[DynamicMessage],
) -> http::Request<GrpcBody> {
    let payload: Bytes = messages
        .iter()
        .flat_map(|message| frame::encode(&message.encode_to_vec()))
        .collect();
    let mut request = http::Request::new(GrpcBody::new(http_body_util::Full::new(payload)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = route.grpc_path().parse().unwrap_or_default();
    *request.version_mut() = http::Version::HTTP_2;
    let out = request.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    out.insert(header::TE, HeaderValue::from_static("trailers"));
    for (name, value) in headers {
        let forwarded = FORWARDED.contains(&name.as_str()) || name.as_str().starts_with("x-");
        if forwarded {
            out.append(name.clone(), value.clone());
        }
    }
    request
        .extensions_mut()
        .insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: remote,
        });
    request
}

/// How a route renders its responses.
#[derive(Debug, Clone)]
struct Render {
    /// `response_body`: empty for the whole response message.
    response_body: String,
    proto_field_names: bool,
}

fn json_options(proto_field_names: bool) -> SerializeOptions {
    SerializeOptions::new()
        .skip_default_fields(false)
        .use_proto_field_name(proto_field_names)
}

/// Writes `8080.0` as `8080`, as Go's protojson and Google's own transcoders do: a
/// `google.protobuf.Value` carries every number as a double, and JSON readers expect the
/// integers they wrote to come back as integers.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) => {
            let whole = number
                .as_f64()
                .filter(|float| number.is_f64() && float.fract() == 0.0 && float.abs() < 9.007_199_254_740_992e15);
            if let Some(float) = whole {
                *number = serde_json::Number::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// Renders a response message (or its `response_body` field) as JSON.
fn to_json(message: &DynamicMessage, render: &Render) -> Result<serde_json::Value, Status> {
    let mut value = message
        .serialize_with_options(serde_json::value::Serializer, &json_options(render.proto_field_names))
        .map_err(|error| Status::internal(format!("cannot render the response: {error}")))?;
    whole_numbers_as_integers(&mut value);
    if render.response_body.is_empty() {
        return Ok(value);
    }
    let json_name = message.descriptor().get_field_by_name(&render.response_body).map(|f| {
        if render.proto_field_names {
            f.name().to_owned()
        } else {
            f.json_name().to_owned()
        }
    });
    Ok(json_name
        .and_then(|name| value.get(&name).cloned())
        .unwrap_or(serde_json::Value::Null))
}

async fn unary_response(body: GrpcBody, output: &MessageDescriptor, render: &Render) -> Response {
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(status) => return status_response(&Status::unavailable(format!("call failed: {status}"))),
    };
    if let Some(status) = collected.trailers().and_then(frame::failure) {
        return status_response(&status);
    }
    let mut data = bytes::BytesMut::from(collected.to_bytes());
    let message = match frame::decode_next(&mut data) {
        Ok(Some(bytes)) => DynamicMessage::decode(output.clone(), bytes),
        Ok(None) => return status_response(&Status::internal("the call returned no message")),
        Err(error) => return status_response(&Status::internal(error.to_string())),
    };
    let json = message
        .map_err(|error| Status::internal(error.to_string()))
        .and_then(|m| to_json(&m, render));
    match json {
        Ok(json) => json_response(StatusCode::OK, &json),
        Err(status) => status_response(&status),
    }
}

/// Server-streaming: one JSON object per line as messages arrive; a failure after the
/// first message becomes a final `{"error": <google.rpc.Status>}` line.
fn stream_response(body: GrpcBody, output: MessageDescriptor, render: Render) -> Response {
    let lines = frame::messages(body).map(move |item| {
        let line = match item {
            Ok(bytes) => DynamicMessage::decode(output.clone(), bytes)
                .map_err(|error| Status::internal(error.to_string()))
                .and_then(|message| to_json(&message, &render))
                .unwrap_or_else(|status| json!({ "error": status_json(&status) })),
            Err(status) => json!({ "error": status_json(&status) }),
        };
        let mut text = line.to_string();
        text.push('\n');
        Ok::<_, Infallible>(Bytes::from(text))
    });
    let mut response = Response::new(AxumBody::from_stream(lines));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    response
}

fn json_response(status: StatusCode, json: &serde_json::Value) -> Response {
    let mut response = Response::new(AxumBody::from(json.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `google.rpc.Status` JSON body with the HTTP status of its code.
pub fn status_response(status: &Status) -> Response {
    error_response(crate::error::http_status(status.code()), status)
}

fn error_response(http: StatusCode, status: &Status) -> Response {
    json_response(http, &status_json(status))
}

fn method_not_allowed(allowed: &[http::Method]) -> Response {
    let list = allowed.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
    let status = Status::unimplemented(format!("method not allowed; this path accepts {list}"));
    let mut response = error_response(StatusCode::METHOD_NOT_ALLOWED, &status);
    if let Ok(value) = HeaderValue::from_str(&list) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// `{"code", "message", "details"}` as google.rpc.Status is rendered in proto3 JSON; the
/// standard error details Switchyard sends are rendered with their `@type`.
pub fn status_json(status: &Status) -> serde_json::Value {
    let details = status.get_error_details();
    let mut rendered = Vec::new();
    if let Some(bad_request) = details.bad_request() {
        let violations: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| json!({ "field": v.field, "description": v.description }))
            .collect();
        rendered.push(json!({ "@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations }));
    }
    if let Some(info) = details.error_info() {
        rendered.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": info.reason, "domain": info.domain, "metadata": info.metadata,
        }));
    }
    if let Some(retry) = details.retry_info().and_then(|retry| retry.retry_delay) {
        rendered.push(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}s", retry.as_secs_f64()),
        }));
    }
    json!({ "code": status.code() as i32, "message": status.message(), "details": rendered })
}
