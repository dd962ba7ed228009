//! What flagd's evaluation protocols (v1 and v2) share: the selector header, contexts,
//! metadata, error statuses, and the provider event stream.

use std::{collections::BTreeMap, pin::Pin, sync::Arc};

use flag_engine::{Context, ErrorCode, Resolution, ValueKind};
use futures::{Stream, StreamExt};
use pbjson_types::Struct;
use serde_json::{Map, Value, json};
use switchyard_platform::{
    Shutdown,
    auth::Principal,
    error::to_status,
    proto_json::{proto_struct_entries, to_proto_struct},
    shutdown::end_on_shutdown,
};
use tonic::{Request, Status};

use crate::biz::{
    access::Reader,
    catalog::{Change, View},
    evaluation::Evaluator,
    feeds::{KEEP_ALIVE, ProviderEvent, provider_events},
    selector::Selector,
};

/// The header every flagd provider sends its selector in (gRPC metadata keys are lowercase).
pub const SELECTOR_HEADER: &str = "flagd-selector";

pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Who evaluates and what they select: the caller the auth layer found (or an API key sent as
/// the selector) and the selector from the `Flagd-Selector` header, else from `body` (sync's
/// legacy field, the native API's field), else everything.
pub fn reader<T>(evaluator: &Evaluator, request: &Request<T>, body: &str) -> Result<(Reader, Selector), Status> {
    let text = match request.metadata().get(SELECTOR_HEADER) {
        Some(value) => value
            .to_str()
            .map_err(|_| Status::invalid_argument("the flagd-selector header is not ASCII"))?,
        None => body,
    };
    evaluator
        .reader(Principal::of(request).ok(), text)
        .map_err(|error| to_status(&error))
}

/// What the reader sees of the selection, or why it may not.
pub fn view(evaluator: &Evaluator, reader: &Reader, selector: &Selector) -> Result<Arc<View>, Status> {
    evaluator.view(reader, selector).map_err(|error| to_status(&error))
}

/// A request's evaluation context.
pub fn context(context: Option<&Struct>) -> Context {
    context
        .map(|fields| proto_struct_entries(fields).collect())
        .unwrap_or_default()
}

/// flagd's response metadata: the selector it was asked with, overlaid by the flag's metadata.
pub fn metadata(flag_metadata: &Map<String, Value>, selector: &Selector) -> Struct {
    let mut merged = Map::new();
    if let Some((key, value)) = selector.reflection() {
        merged.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    merged.extend(flag_metadata.iter().map(|(key, value)| (key.clone(), value.clone())));
    to_proto_struct(&merged)
}

/// The status flagd answers an evaluation error with; providers map the code, not the text.
pub fn error_status(code: ErrorCode, message: &str) -> Status {
    match code {
        ErrorCode::FlagNotFound => Status::not_found(message),
        ErrorCode::TypeMismatch => Status::invalid_argument(message),
        ErrorCode::ParseError => Status::data_loss(message),
        ErrorCode::General => Status::unknown(message),
    }
}

/// A successful single-flag resolution, ready for either protocol version.
#[derive(Debug)]
pub struct Resolved {
    /// `None` when the caller's default applies (disabled, or no default variant).
    pub value: Option<Value>,
    pub variant: Option<String>,
    pub reason: String,
    pub metadata: Struct,
}

/// Evaluates the flag a typed Resolve* call names; evaluation errors become statuses.
pub fn resolve<T: FlagRequest>(
    evaluator: &Evaluator,
    request: Request<T>,
    kind: ValueKind,
) -> Result<Resolved, Status> {
    let (reader, selector) = reader(evaluator, &request, "")?;
    let request = request.into_inner();
    let view = view(evaluator, &reader, &selector)?;
    let context = context(request.context());
    let Resolution {
        value,
        variant,
        reason,
        error,
        metadata: flag_metadata,
    } = evaluator.evaluate(&view, request.flag_key(), &context, Some(kind));
    if let Some((code, message)) = error {
        return Err(error_status(code, &message));
    }
    Ok(Resolved {
        value: value.cloned(),
        variant: variant.map(str::to_owned),
        reason: reason.as_str().to_owned(),
        metadata: metadata(flag_metadata, &selector),
    })
}

/// The two fields every typed Resolve* request of v1 and v2 has.
pub trait FlagRequest {
    fn flag_key(&self) -> &str;
    fn context(&self) -> Option<&Struct>;
}

macro_rules! flag_requests {
    ($($request:ty),* $(,)?) => {$(
        impl FlagRequest for $request {
            fn flag_key(&self) -> &str {
                &self.flag_key
            }
            fn context(&self) -> Option<&Struct> {
                self.context.as_ref()
            }
        }
    )*};
}

use switchyard_api::flagd::evaluation::{v1, v2};
flag_requests!(
    v1::ResolveBooleanRequest,
    v1::ResolveStringRequest,
    v1::ResolveFloatRequest,
    v1::ResolveIntRequest,
    v1::ResolveObjectRequest,
    v2::ResolveBooleanRequest,
    v2::ResolveStringRequest,
    v2::ResolveFloatRequest,
    v2::ResolveIntRequest,
    v2::ResolveObjectRequest,
);

/// An event as flagd sends it: a type name and its data.
pub fn event_parts(event: &ProviderEvent) -> (&'static str, Option<Struct>) {
    match event {
        ProviderEvent::Ready => ("provider_ready", Some(Struct::default())),
        ProviderEvent::ConfigurationChange(changes) => ("configuration_change", Some(changed_flags(changes))),
        ProviderEvent::KeepAlive => ("keep_alive", None),
    }
}

fn changed_flags(changes: &BTreeMap<String, Change>) -> Struct {
    let flags: Map<String, Value> = changes
        .iter()
        .map(|(key, change)| (key.clone(), json!({ "type": change.as_str() })))
        .collect();
    let mut data = Map::new();
    data.insert("flags".to_owned(), Value::Object(flags));
    to_proto_struct(&data)
}

/// The provider event stream for one subscriber, ended with a resumable status on shutdown.
pub fn event_stream<R, T, F>(
    evaluator: &Evaluator,
    request: &Request<R>,
    shutdown: Shutdown,
    build: F,
) -> Result<EventStream<T>, Status>
where
    T: Send + 'static,
    F: Fn(&'static str, Option<Struct>) -> T + Send + 'static,
{
    let (reader, selector) = reader(evaluator, request, "")?;
    let selection = evaluator
        .selection(&reader, &selector)
        .map_err(|error| to_status(&error))?;
    let events = provider_events(Arc::clone(evaluator.catalog()), reader, selection, KEEP_ALIVE).map(move |event| {
        let (kind, data) = event_parts(&event);
        Ok(build(kind, data))
    });
    Ok(Box::pin(end_on_shutdown(events, shutdown)))
}
