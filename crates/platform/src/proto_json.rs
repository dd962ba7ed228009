//! JSON values ↔ `google.protobuf.Value` / `Struct`, for APIs that carry free-form documents
//! (configuration content, evaluation contexts, flag values), and stored Unix-millisecond times
//! as `google.protobuf.Timestamp`.

use pbjson_types::{ListValue, Struct, Timestamp, Value as ProtoValue, value::Kind};
use serde_json::{Map, Value};

/// A JSON value as a `google.protobuf.Value`. Integers beyond 2^53 lose precision, as they
/// do in every proto3 JSON mapping.
pub fn to_proto_value(value: &Value) -> ProtoValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(*flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_proto_value).collect(),
        }),
        Value::Object(fields) => Kind::StructValue(to_proto_struct(fields)),
    };
    ProtoValue { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn to_proto_struct(fields: &Map<String, Value>) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(key, value)| (key.clone(), to_proto_value(value)))
            .collect(),
    }
}

/// A `google.protobuf.Value` as JSON; whole numbers come back as integers.
pub fn from_proto_value(value: &ProtoValue) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(flag)) => Value::Bool(*flag),
        Some(Kind::NumberValue(number)) => number_of(*number),
        Some(Kind::StringValue(text)) => Value::String(text.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(from_proto_value).collect()),
        Some(Kind::StructValue(fields)) => Value::Object(from_proto_struct(fields)),
    }
}

/// A `google.protobuf.Struct` as a JSON object.
pub fn from_proto_struct(fields: &Struct) -> Map<String, Value> {
    proto_struct_entries(fields).collect()
}

/// A `google.protobuf.Struct`'s fields as JSON, for collecting into another map type.
pub fn proto_struct_entries(fields: &Struct) -> impl Iterator<Item = (String, Value)> + '_ {
    fields
        .fields
        .iter()
        .map(|(key, value)| (key.clone(), from_proto_value(value)))
}

/// A time in Unix milliseconds as a `google.protobuf.Timestamp`.
pub fn timestamp(ms: i64) -> Option<Timestamp> {
    // The remainder is below 1000, so the nanoseconds fit an i32.
    Some(Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// A `google.protobuf.Timestamp` in Unix milliseconds (sub-millisecond parts dropped).
pub fn timestamp_ms(time: &Timestamp) -> i64 {
    time.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(time.nanos) / 1_000_000)
}

fn number_of(number: f64) -> Value {
    let whole = number.fract() == 0.0 && number.abs() < 9.007_199_254_740_992e15;
    if whole {
        // Whole and below 2^53: the conversion is exact.
        return Value::from(number as i64);
    }
    serde_json::Number::from_f64(number)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_values_survive_the_round_trip_through_protobuf() {
        let document = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        assert_eq!(from_proto_value(&to_proto_value(&document)), document);
    }
}
