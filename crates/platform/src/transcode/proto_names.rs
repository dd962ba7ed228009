//! The OpenAPI schemas of routes that answer with proto field names (the ecosystem's
//! `/api/` routes, see `routes::ECOSYSTEM_PREFIX`): a copy of each referenced message
//! schema (`<message>.proto_names`) whose property names, required lists and oneof member
//! lists use the proto names instead of lowerCamelCase.

use std::collections::BTreeMap;

use prost_reflect::DescriptorPool;
use serde_json::{Map, Value, json};

const REF_PREFIX: &str = "#/components/schemas/";
const SUFFIX: &str = ".proto_names";

/// `schema` with every message it references replaced by its proto-named copy.
pub fn rename(schema: &Value, pool: &DescriptorPool, schemas: &mut BTreeMap<String, Value>) -> Value {
    match schema {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                return json!({ "$ref": renamed_ref(reference, pool, schemas) });
            }
            let renamed: Map<String, Value> = object
                .iter()
                .map(|(key, value)| (key.clone(), rename(value, pool, schemas)))
                .collect();
            Value::Object(renamed)
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| rename(item, pool, schemas)).collect()),
        other => other.clone(),
    }
}

fn renamed_ref(reference: &str, pool: &DescriptorPool, schemas: &mut BTreeMap<String, Value>) -> String {
    let Some(name) = reference.strip_prefix(REF_PREFIX) else {
        return reference.to_owned();
    };
    let Some(message) = pool.get_message_by_name(name) else {
        // Not a message of ours (google.rpc.Status): its names are the same either way.
        return reference.to_owned();
    };
    let copy = format!("{name}{SUFFIX}");
    if !schemas.contains_key(&copy) {
        schemas.insert(copy.clone(), json!({})); // placeholder breaks recursion
        let names: BTreeMap<String, String> = message
            .fields()
            .map(|field| (field.json_name().to_owned(), field.name().to_owned()))
            .collect();
        let original = schemas.get(name).cloned().unwrap_or_default();
        let schema = rename(&with_names(&original, &names), pool, schemas);
        schemas.insert(copy.clone(), schema);
    }
    format!("{REF_PREFIX}{copy}")
}

/// One message's schema with its own field names changed (nested messages are references).
fn with_names(schema: &Value, names: &BTreeMap<String, String>) -> Value {
    let proto = |name: &str| names.get(name).cloned().unwrap_or_else(|| name.to_owned());
    match schema {
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, value) in object {
                let value = match key.as_str() {
                    "properties" => Value::Object(
                        value
                            .as_object()
                            .map(|properties| {
                                properties
                                    .iter()
                                    .map(|(name, property)| (proto(name), property.clone()))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    "required" => json!(
                        value
                            .as_array()
                            .map(|items| items.iter().filter_map(Value::as_str).map(proto).collect::<Vec<_>>())
                            .unwrap_or_default()
                    ),
                    "x-oneofs" => Value::Object(
                        value
                            .as_object()
                            .map(|oneofs| {
                                oneofs
                                    .iter()
                                    .map(|(oneof, members)| {
                                        (
                                            oneof.clone(),
                                            with_names(&json!({"required": members}), names)["required"].clone(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    _ => with_names(value, names),
                };
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| with_names(item, names)).collect()),
        other => other.clone(),
    }
}
