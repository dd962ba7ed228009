//! OFREP, the OpenFeature Remote Evaluation Protocol, on the HTTP port.
//!
//! `POST /ofrep/v1/evaluate/flags/{key}` evaluates one flag and `POST /ofrep/v1/evaluate/flags`
//! all of a selection, each for the `context` in the JSON body. A value the caller must supply
//! itself (disabled flag, no default variant) is left out of the answer, as flagd does. Bulk
//! answers carry an ETag over the flag definitions, the selector and the context: a client that
//! sends it back in `If-None-Match` gets `304 Not Modified` until one of them changes.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use flag_engine::{Context, ErrorCode, Resolution};
use serde_json::{Map, Value, json};
use switchyard_platform::{
    auth::Authenticator,
    error::{Classify, http_status},
};

use crate::biz::{access::AccessError, catalog::View, evaluation::Evaluator, selector::Selector};

use super::flagd::SELECTOR_HEADER;

/// What the OFREP handlers share.
#[derive(Debug, Clone)]
pub struct Ofrep {
    evaluator: Evaluator,
    authenticator: Arc<Authenticator>,
}

/// The OFREP routes, with request bodies limited to `max_body` bytes. A bearer token (an SDK
/// key, API key or JWT) selects its tenant's flags; without one the caller is anonymous and
/// sees flag files and public environments only.
pub fn routes(evaluator: Evaluator, authenticator: Arc<Authenticator>, max_body: usize) -> Router {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate_one))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_all))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(Ofrep {
            evaluator,
            authenticator,
        })
}

/// Who evaluates, what they select and what they see, checked before anything else is read:
/// bad credentials, a selector naming an environment the caller cannot see, or a malformed
/// selector answer at once (401, 403, 400).
fn access(ofrep: &Ofrep, headers: &HeaderMap) -> Result<(Selector, Arc<View>), (StatusCode, String)> {
    let refuse = |status: StatusCode, details: String| (status, details);
    let principal = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| refuse(StatusCode::UNAUTHORIZED, "the authorization header is not ASCII".into()))?;
            let principal = ofrep
                .authenticator
                .authenticate(value)
                .map_err(|error| refuse(StatusCode::UNAUTHORIZED, error.to_string()))?;
            Some(principal)
        }
    };
    let selector = match headers.get(SELECTOR_HEADER) {
        Some(value) => value
            .to_str()
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the Flagd-Selector header is not ASCII".into()))?,
        None => "",
    };
    let refused = |error: AccessError| refuse(http_status(error.kind().code()), error.to_string());
    let (reader, selector) = ofrep.evaluator.reader(principal.as_ref(), selector).map_err(refused)?;
    let view = ofrep.evaluator.view(&reader, &selector).map_err(refused)?;
    Ok((selector, view))
}

async fn evaluate_one(
    State(ofrep): State<Ofrep>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (selector, view) = match access(&ofrep, &headers) {
        Ok(access) => access,
        Err((status, details)) => return failure(status, Some(&key), "GENERAL", &details),
    };
    let context = match context(&body) {
        Ok(context) => context,
        Err(details) => return failure(StatusCode::BAD_REQUEST, Some(&key), "INVALID_CONTEXT", &details),
    };
    let resolution = ofrep.evaluator.evaluate(&view, &key, &context, None);
    let status = match &resolution.error {
        None => StatusCode::OK,
        Some((ErrorCode::FlagNotFound, _)) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
    };
    (status, axum::Json(item(&key, &resolution, &selector))).into_response()
}

async fn evaluate_all(State(ofrep): State<Ofrep>, headers: HeaderMap, body: Bytes) -> Response {
    let (selector, view) = match access(&ofrep, &headers) {
        Ok(access) => access,
        Err((status, details)) => return failure(status, None, "GENERAL", &details),
    };
    let context = match context(&body) {
        Ok(context) => context,
        Err(details) => return failure(StatusCode::BAD_REQUEST, None, "INVALID_CONTEXT", &details),
    };
    let evaluator = &ofrep.evaluator;
    let etag = etag(&view.document(), &selector, &context);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|sent| sent.as_bytes() == etag.as_bytes());
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, header_value(&etag))]).into_response();
    }
    let mut keys: Vec<&str> = view.flags().flags().map(|flag| flag.key()).collect();
    keys.sort_unstable();
    let flags: Vec<Value> = keys
        .into_iter()
        .map(|key| item(key, &evaluator.evaluate(&view, key, &context, None), &selector))
        .collect();
    let body = json!({ "flags": flags, "metadata": selector_metadata(&selector) });
    (StatusCode::OK, [(header::ETAG, header_value(&etag))], axum::Json(body)).into_response()
}

/// One flag's answer: a success (value and variant left out when the caller's default applies)
/// or an error item.
fn item(key: &str, resolution: &Resolution<'_>, selector: &Selector) -> Value {
    let mut metadata = selector_metadata(selector);
    metadata.extend(
        resolution
            .metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    let mut item = Map::new();
    item.insert("key".into(), key.into());
    if let Some((code, details)) = &resolution.error {
        item.insert("errorCode".into(), code.as_str().into());
        item.insert("errorDetails".into(), details.to_string().into());
        item.insert("metadata".into(), Value::Object(metadata));
        return Value::Object(item);
    }
    item.insert("reason".into(), resolution.reason.as_str().into());
    if let Some(variant) = resolution.variant {
        item.insert("variant".into(), variant.into());
    }
    if let Some(value) = resolution.value {
        item.insert("value".into(), value.clone());
    }
    item.insert("metadata".into(), Value::Object(metadata));
    Value::Object(item)
}

fn selector_metadata(selector: &Selector) -> Map<String, Value> {
    selector
        .reflection()
        .map(|(key, value)| (key.to_owned(), Value::from(value)))
        .into_iter()
        .collect()
}

fn failure(status: StatusCode, key: Option<&str>, code: &str, details: &str) -> Response {
    let mut body = json!({ "errorCode": code, "errorDetails": details });
    if let Some(key) = key {
        body["key"] = key.into();
    }
    (status, axum::Json(body)).into_response()
}

/// The `context` of an OFREP request body; an empty body is an empty context.
fn context(body: &[u8]) -> Result<Context, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::new());
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not valid JSON: {error}"))?;
    let context = match request {
        Value::Object(mut fields) => fields.remove("context"),
        _ => None,
    };
    match context {
        None | Some(Value::Null) => Ok(Context::new()),
        Some(Value::Object(context)) => Ok(Context::from(context)),
        Some(_) => Err("\"context\" must be a JSON object".to_owned()),
    }
}

fn etag(document: &str, selector: &Selector, context: &Context) -> String {
    let mut hasher = DefaultHasher::new();
    document.hash(&mut hasher);
    selector.hash(&mut hasher);
    Value::Object(context.to_map()).to_string().hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

fn header_value(etag: &str) -> HeaderValue {
    HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}
