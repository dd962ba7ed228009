//! `/openapi.json`: an OpenAPI 3.0 document generated from the same route table and
//! descriptors the transcoder serves, so the document cannot drift from the API. Every
//! binding (additional ones too) is its own operation; path patterns are expanded into one
//! parameter per id; public methods declare no security; `google.api.field_behavior` marks
//! required and output-only fields; oneofs allow at most one member.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value, json};

use super::{
    routes::{BodyTarget, Route, RouteTable},
    template::PathParameter,
};

/// Query parameters are listed down to this depth of nested messages.
const MAX_QUERY_DEPTH: usize = 3;

/// `google.api.field_behavior` values the document uses.
const REQUIRED: i32 = 2;
const OUTPUT_ONLY: i32 = 3;

/// The document for `table`; `public` says which gRPC paths need no credentials.
pub fn document(title: &str, version: &str, table: &RouteTable, public: &dyn Fn(&str) -> bool) -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut operation_ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in table.routes() {
        let base = format!("{}_{}", route.method.parent_service().name(), route.method.name());
        let seen = operation_ids.entry(base.clone()).or_insert(0);
        let operation_id = if *seen == 0 { base } else { format!("{base}{seen}") };
        *seen += 1;
        let (path, path_parameters) = route.template.openapi_path();
        let secured = !public(&route.grpc_path());
        let operation = operation(route, operation_id, &path_parameters, secured, &mut schemas);
        paths
            .entry(path)
            .or_default()
            .insert(route.http_method.as_str().to_lowercase(), operation);
    }
    schemas.insert("google.rpc.Status".to_owned(), status_schema());
    json!({
        "openapi": "3.0.3",
        "info": { "title": title, "version": version },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A JWT or a Switchyard API key (sy_…)" }
            }
        },
        "security": [{ "bearer": [] }]
    })
}

fn operation(
    route: &Route,
    operation_id: String,
    path_parameters: &[PathParameter],
    secured: bool,
    schemas: &mut BTreeMap<String, Value>,
) -> Value {
    let method = &route.method;
    let input = method.input();
    let bound: Vec<String> = route.template.fields().collect();
    let mut parameters: Vec<Value> = path_parameters
        .iter()
        .map(|parameter| path_parameter(&input, parameter, schemas))
        .collect();
    if route.body == BodyTarget::None || matches!(route.body, BodyTarget::Field(_)) {
        let skip = match &route.body {
            BodyTarget::Field(field) => Some(field.as_str()),
            _ => None,
        };
        query_parameters(&input, "", &bound, skip, 0, schemas, &mut parameters);
    }
    let mut operation = json!({
        "operationId": operation_id,
        "summary": comments(method).unwrap_or_else(|| method.full_name().to_owned()),
        "tags": [method.parent_service().name()],
        "parameters": parameters,
        "responses": responses(route, secured, schemas),
    });
    if !secured {
        operation["security"] = json!([]);
    }
    // An empty body is the empty message, so a body is required only when it must carry a
    // required field.
    let body = match &route.body {
        BodyTarget::None => None,
        BodyTarget::Whole => Some((
            message_ref(&input, schemas),
            input
                .fields()
                .any(|field| has_behavior(&field, REQUIRED) && !bound.contains(&field.name().to_owned())),
        )),
        BodyTarget::Field(field) => input
            .get_field_by_name(field)
            .map(|field| (field_schema(&field, schemas), has_behavior(&field, REQUIRED))),
    };
    if let BodyTarget::Field(field) = &route.body {
        operation["x-body-field"] = json!(field);
    }
    if let Some((schema, required)) = body {
        operation["requestBody"] =
            json!({ "required": required, "content": { "application/json": { "schema": schema } } });
    }
    operation
}

/// A path parameter: the whole field (its own schema), or one id inside a resource name.
fn path_parameter(
    input: &MessageDescriptor,
    parameter: &PathParameter,
    schemas: &mut BTreeMap<String, Value>,
) -> Value {
    if parameter.whole {
        let schema = field_at(input, &parameter.field).map_or(json!({"type": "string"}), |f| field_schema(&f, schemas));
        return json!({
            "name": parameter.name,
            "in": "path",
            "required": true,
            "schema": schema,
            "x-proto-field": parameter.field
        });
    }
    json!({
        "name": parameter.name,
        "in": "path",
        "required": true,
        "description": format!("The `{}` id in `{}`.", parameter.name, parameter.field),
        "schema": { "type": "string", "minLength": 1 },
        "x-proto-field": parameter.field
    })
}

/// What a call can answer: the result, or a `google.rpc.Status` with the HTTP status of its
/// code — 401/403 only where credentials are required.
fn responses(route: &Route, secured: bool, schemas: &mut BTreeMap<String, Value>) -> Value {
    let status = json!({ "application/json": { "schema": { "$ref": "#/components/schemas/google.rpc.Status" } } });
    let mut responses = json!({
        "200": { "description": "OK", "content": { content_type(&route.method): { "schema": response_schema(route, schemas) } } },
        "400": { "description": "Invalid argument (the fields at fault are listed), or a failed precondition: the current state refuses the request (code 9)", "content": status },
        "404": { "description": "Not found", "content": status },
        "409": { "description": "Conflict: changed concurrently or already exists", "content": status },
        "413": { "description": "Request body too large", "content": status },
        "429": { "description": "Rate limited (RetryInfo says when to retry)", "content": status },
        "default": { "description": "Error", "content": status }
    });
    if secured {
        responses["401"] = json!({ "description": "Missing or invalid credentials", "content": status });
        responses["403"] = json!({ "description": "Credentials without the role this needs", "content": status });
    }
    responses
}

fn content_type(method: &MethodDescriptor) -> &'static str {
    if method.is_server_streaming() {
        "application/x-ndjson"
    } else {
        "application/json"
    }
}

fn response_schema(route: &Route, schemas: &mut BTreeMap<String, Value>) -> Value {
    let schema = json_response_schema(route, schemas);
    if !route.proto_field_names {
        return schema;
    }
    super::proto_names::rename(&schema, route.method.parent_pool(), schemas)
}

fn json_response_schema(route: &Route, schemas: &mut BTreeMap<String, Value>) -> Value {
    let output = route.method.output();
    if route.response_body.is_empty() {
        return message_ref(&output, schemas);
    }
    output
        .get_field_by_name(&route.response_body)
        .map_or(json!({}), |f| field_schema(&f, schemas))
}

/// The leading comment of a method in its proto file, when the descriptor kept it.
fn comments(method: &MethodDescriptor) -> Option<String> {
    let file = method.parent_file();
    let path = method.path();
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|location| location.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn field_at(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current.get_field_by_name(part)?;
        if parts.peek().is_none() {
            return Some(field);
        }
        let Kind::Message(next) = field.kind() else { return None };
        current = next;
    }
    None
}

fn query_parameters(
    message: &MessageDescriptor,
    prefix: &str,
    bound: &[String],
    skip: Option<&str>,
    depth: usize,
    schemas: &mut BTreeMap<String, Value>,
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        let path = format!("{prefix}{}", field.name());
        if bound.contains(&path) || (depth == 0 && skip == Some(field.name())) || field.is_map() {
            continue;
        }
        match field.kind() {
            Kind::Message(child) if !field.is_list() && depth < MAX_QUERY_DEPTH && !is_well_known(&child) => {
                query_parameters(&child, &format!("{path}."), bound, None, depth + 1, schemas, out);
            }
            Kind::Message(_) => {}
            _ => out.push(json!({
                "name": path,
                "in": "query",
                "required": depth == 0 && has_behavior(&field, REQUIRED),
                "schema": field_schema(&field, schemas)
            })),
        }
    }
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

fn message_ref(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if let Some(schema) = well_known_schema(message) {
        return schema;
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        schemas.insert(name.clone(), json!({})); // placeholder breaks recursion
        let schema = message_schema(message, schemas);
        schemas.insert(name.clone(), schema);
    }
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn message_schema(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in message.fields() {
        // proto3 JSON reads `null` as the field's default.
        let mut schema = json!({ "allOf": [field_schema(&field, schemas)], "nullable": true });
        if has_behavior(&field, OUTPUT_ONLY) {
            schema["readOnly"] = json!(true);
        }
        if has_behavior(&field, REQUIRED) {
            required.push(field.json_name().to_owned());
        }
        properties.insert(field.json_name().to_owned(), schema);
    }
    let mut schema = json!({ "type": "object", "properties": properties, "additionalProperties": false });
    let mut rules = Vec::new();
    let mut oneofs = Map::new();
    for oneof in message.oneofs().filter(|oneof| !oneof.is_synthetic()) {
        let members: Vec<String> = oneof.fields().map(|field| field.json_name().to_owned()).collect();
        // Members all marked required: exactly one must be there (`oneOf` of "has it"); else
        // at most one (no two together).
        if oneof.fields().all(|field| has_behavior(&field, REQUIRED)) {
            rules.push(json!({ "oneOf": members.iter().map(|m| json!({ "required": [m] })).collect::<Vec<_>>() }));
            required.retain(|name| !members.contains(name));
        } else if members.len() > 1 {
            rules.push(json!({ "not": { "anyOf": pairs(&members) } }));
        }
        oneofs.insert(oneof.name().to_owned(), json!(members));
    }
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if !rules.is_empty() {
        schema["allOf"] = json!(rules);
        schema["x-oneofs"] = Value::Object(oneofs);
    }
    schema
}

/// `{"required": [a, b]}` for every pair of oneof members.
fn pairs(members: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for (index, first) in members.iter().enumerate() {
        for second in &members[index + 1..] {
            out.push(json!({ "required": [first, second] }));
        }
    }
    out
}

/// Whether a field carries `google.api.field_behavior` `behavior`.
fn has_behavior(field: &FieldDescriptor, behavior: i32) -> bool {
    let options = field.options();
    let Some(extension) = field.parent_pool().get_extension_by_name("google.api.field_behavior") else {
        return false;
    };
    if !options.has_extension(&extension) {
        return false;
    }
    match options.get_extension(&extension).as_ref() {
        prost_reflect::Value::List(values) => values
            .iter()
            .any(|value| matches!(value, prost_reflect::Value::EnumNumber(number) if *number == behavior)),
        prost_reflect::Value::EnumNumber(number) => *number == behavior,
        _ => false,
    }
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    // Every list's `page_size`: 0 asks for the default, a negative one is refused.
    if field.name() == "page_size" && matches!(field.kind(), Kind::Int32) {
        return json!({ "type": "integer", "format": "int32", "minimum": 0 });
    }
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return json!({"type": "object"});
        };
        let value = entry.map_entry_value_field();
        return json!({ "type": "object", "additionalProperties": kind_schema(&value.kind(), schemas) });
    }
    let schema = kind_schema(&field.kind(), schemas);
    if field.is_list() {
        json!({ "type": "array", "items": schema })
    } else {
        schema
    }
}

/// The largest integer a JSON number carries exactly (2^53 - 1).
const JSON_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// What proto3 JSON accepts for each kind: 64-bit integers as numbers or decimal strings
/// (written as strings), enums by name or number (written by name).
fn kind_schema(kind: &Kind, schemas: &mut BTreeMap<String, Value>) -> Value {
    match kind {
        Kind::Double => json!({ "type": "number" }),
        Kind::Float => json!({ "type": "number", "minimum": -3.4e38, "maximum": 3.4e38 }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "oneOf": [
            { "type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$" },
            { "type": "integer", "format": "int64", "minimum": -JSON_SAFE_INTEGER, "maximum": JSON_SAFE_INTEGER }
        ] }),
        Kind::Uint64 | Kind::Fixed64 => json!({ "oneOf": [
            { "type": "string", "format": "uint64", "pattern": "^[0-9]{1,19}$" },
            { "type": "integer", "format": "int64", "minimum": 0, "maximum": JSON_SAFE_INTEGER }
        ] }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte" }),
        Kind::Enum(descriptor) => json!({ "oneOf": [
            { "type": "string", "enum": descriptor.values().map(|v| v.name().to_owned()).collect::<Vec<_>>() },
            { "type": "integer", "enum": descriptor.values().map(|v| v.number()).collect::<Vec<_>>() }
        ] }),
        Kind::Message(message) => message_ref(message, schemas),
    }
}

fn well_known_schema(message: &MessageDescriptor) -> Option<Value> {
    if !is_well_known(message) {
        return None;
    }
    Some(match message.name() {
        "Timestamp" => json!({ "type": "string", "format": "date-time" }),
        // proto3 JSON: seconds (within its ±10,000-year range) with up to nine fractional digits,
        // then `s`.
        "Duration" => json!({ "type": "string", "example": "1.5s", "pattern": "^-?[0-9]{1,11}(\\.[0-9]{1,9})?s$" }),
        "FieldMask" => json!({ "type": "string", "example": "name,labels" }),
        "Struct" | "Empty" | "Any" => json!({ "type": "object" }),
        "Value" => json!({}),
        "ListValue" => json!({ "type": "array", "items": {} }),
        "BoolValue" => json!({ "type": "boolean" }),
        "StringValue" => json!({ "type": "string" }),
        "BytesValue" => json!({ "type": "string", "format": "byte" }),
        "Int64Value" | "UInt64Value" => json!({ "type": "string", "format": "int64" }),
        "Int32Value" | "UInt32Value" => json!({ "type": "integer" }),
        "DoubleValue" | "FloatValue" => json!({ "type": "number" }),
        _ => json!({ "type": "object" }),
    })
}

fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "google.rpc.Status: the gRPC code, a message, and typed details.",
        "properties": {
            "code": { "type": "integer", "format": "int32" },
            "message": { "type": "string" },
            "details": { "type": "array", "items": { "type": "object" } }
        }
    })
}
