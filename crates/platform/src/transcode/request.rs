//! Builds the gRPC request message of a route from the HTTP request: the body (all of it
//! or one field), then path bindings, then query parameters, with proto3 JSON rules.
//! Anything that does not fit — malformed JSON, unknown fields or parameters, values of
//! the wrong type — is an error naming the field, and nothing is called.

use base64::Engine;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use super::{
    routes::{BodyTarget, Route},
    template::{Binding, percent_decode},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON for {message}: {reason}")]
    Body { message: String, reason: String },
    #[error("this route takes no request body")]
    UnexpectedBody,
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("field `{field}`: {reason}")]
    Value { field: String, reason: String },
    #[error("malformed query string")]
    Query,
}

impl RequestError {
    /// The field the error is about, for the `BadRequest` detail.
    pub fn field(&self) -> &str {
        match self {
            RequestError::UnknownField(field) | RequestError::Value { field, .. } => field,
            RequestError::Body { .. } | RequestError::UnexpectedBody => "body",
            RequestError::Query => "query",
        }
    }
}

/// The proto3 JSON reading rules: unknown fields are rejected, enum names accepted.
fn json_options() -> DeserializeOptions {
    DeserializeOptions::new().deny_unknown_fields(true)
}

pub fn build(
    route: &Route,
    bindings: &[Binding],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, RequestError> {
    let input = route.method.input();
    let mut message = match &route.body {
        BodyTarget::None if !body.iter().all(u8::is_ascii_whitespace) => return Err(RequestError::UnexpectedBody),
        BodyTarget::None => DynamicMessage::new(input.clone()),
        BodyTarget::Whole => parse_body(&input, body)?,
        BodyTarget::Field(field) => parse_body_field(&input, field, body)?,
    };
    for binding in bindings {
        set_path(&mut message, &binding.field, &binding.value, false)?;
    }
    let bound: Vec<String> = route.template.fields().collect();
    for (key, value) in parse_query(query.unwrap_or_default())? {
        if bound.contains(&key) {
            return Err(RequestError::Value {
                field: key,
                reason: "is already bound by the path".into(),
            });
        }
        if route.body == BodyTarget::Whole {
            return Err(RequestError::UnknownField(key));
        }
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        set_path(&mut message, &path, &value, true)?;
    }
    Ok(message)
}

fn parse_body(input: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(input.clone()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize_with_options(input.clone(), &mut deserializer, &json_options())
        .and_then(|message| deserializer.end().map(|()| message))
        .map_err(|error| RequestError::Body {
            message: input.full_name().to_owned(),
            reason: error.to_string(),
        })?;
    Ok(message)
}

/// `body: "field"`: read the body as that field's JSON value by wrapping it in an object.
fn parse_body_field(input: &MessageDescriptor, field: &str, body: &[u8]) -> Result<DynamicMessage, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(input.clone()));
    }
    let descriptor = input
        .get_field_by_name(field)
        .ok_or_else(|| RequestError::UnknownField(field.to_owned()))?;
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| RequestError::Body {
        message: input.full_name().to_owned(),
        reason: error.to_string(),
    })?;
    let wrapped = serde_json::json!({ descriptor.json_name(): value });
    DynamicMessage::deserialize_with_options(input.clone(), wrapped, &json_options()).map_err(|error| {
        RequestError::Body {
            message: input.full_name().to_owned(),
            reason: error.to_string(),
        }
    })
}

fn find_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// Sets a dotted field path to a value given as text. Repeated leaves append when
/// `append` is set (query parameters may repeat).
fn set_path(message: &mut DynamicMessage, path: &[String], text: &str, append: bool) -> Result<(), RequestError> {
    let dotted = path.join(".");
    let Some((leaf, parents)) = path.split_last() else {
        return Err(RequestError::UnknownField(dotted));
    };
    let mut current = message;
    for name in parents {
        let field =
            find_field(&current.descriptor(), name).ok_or_else(|| RequestError::UnknownField(dotted.clone()))?;
        if field.is_list() || field.is_map() || !matches!(field.kind(), Kind::Message(_)) {
            return Err(RequestError::Value {
                field: dotted,
                reason: "is not a message field".into(),
            });
        }
        current = match current.get_field_mut(&field) {
            Value::Message(child) => child,
            _ => {
                return Err(RequestError::Value {
                    field: dotted,
                    reason: "is not a message field".into(),
                });
            }
        };
    }
    let field = find_field(&current.descriptor(), leaf).ok_or_else(|| RequestError::UnknownField(dotted.clone()))?;
    if field.is_map() {
        return Err(RequestError::Value {
            field: dotted,
            reason: "map fields cannot be set from the URL".into(),
        });
    }
    let value = scalar(&field.kind(), text).map_err(|reason| RequestError::Value {
        field: dotted.clone(),
        reason,
    })?;
    if !field.is_list() {
        current.set_field(&field, value);
        return Ok(());
    }
    if !append {
        return Err(RequestError::Value {
            field: dotted,
            reason: "repeated fields cannot be bound by the path".into(),
        });
    }
    if let Value::List(list) = current.get_field_mut(&field) {
        list.push(value);
    }
    Ok(())
}

fn scalar(kind: &Kind, text: &str) -> Result<Value, String> {
    let number = |what: &str| format!("`{text}` is not a valid {what}");
    Ok(match kind {
        Kind::String => Value::String(text.to_owned()),
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(number("bool (true or false)")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(text.parse().map_err(|_| number("int32"))?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(text.parse().map_err(|_| number("int64"))?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().map_err(|_| number("uint32"))?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().map_err(|_| number("uint64"))?),
        Kind::Float => Value::F32(text.parse().map_err(|_| number("float"))?),
        Kind::Double => Value::F64(text.parse().map_err(|_| number("double"))?),
        Kind::Bytes => {
            let engine = base64::engine::general_purpose::STANDARD;
            let url_safe = base64::engine::general_purpose::URL_SAFE;
            let bytes = engine
                .decode(text)
                .or_else(|_| url_safe.decode(text))
                .map_err(|_| number("base64 value"))?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(descriptor) => {
            let by_name = descriptor.get_value_by_name(text).map(|value| value.number());
            let by_number = text.parse::<i32>().ok().filter(|n| descriptor.get_value(*n).is_some());
            Value::EnumNumber(by_name.or(by_number).ok_or_else(|| number(descriptor.full_name()))?)
        }
        Kind::Message(descriptor) => return Err(format!("{} cannot be set from the URL", descriptor.full_name())),
    })
}

/// `a=1&b.c=x+y&tags=a&tags=b` → pairs, decoded (`+` is a space).
fn parse_query(query: &str) -> Result<Vec<(String, String)>, RequestError> {
    let mut pairs = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        let decode = |text: &str| percent_decode(&text.replace('+', " ")).ok_or(RequestError::Query);
        pairs.push((decode(key)?, decode(value)?));
    }
    Ok(pairs)
}
