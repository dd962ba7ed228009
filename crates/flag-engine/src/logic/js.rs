//! JavaScript's coercion rules, which JSON Logic (and so every flagd evaluator) inherits.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

/// JSON Logic truthiness: `false`, `null`, `0`, `""` and `[]` are false; everything else is true.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(_) => true,
    }
}

/// `Number(value)`: NaN when the value has no numeric reading.
pub(crate) fn to_number(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Bool(flag) => f64::from(u8::from(*flag)),
        Value::Number(number) => number.as_f64().unwrap_or(f64::NAN),
        Value::String(text) => parse_number(text),
        Value::Array(items) => match items.as_slice() {
            [] => 0.0,
            [only] => parse_number(&to_text(only)),
            _ => f64::NAN,
        },
        Value::Object(_) => f64::NAN,
    }
}

fn parse_number(text: &str) -> f64 {
    let text = text.trim();
    if text.is_empty() {
        return 0.0;
    }
    // Rust accepts "inf", "nan" and "infinity", which JavaScript's Number() does not.
    if text
        .bytes()
        .any(|byte| byte.is_ascii_alphabetic() && !matches!(byte, b'e' | b'E'))
    {
        return f64::NAN;
    }
    text.parse().unwrap_or(f64::NAN)
}

/// `String(value)` as `Array.prototype.join` applies it: null becomes the empty string.
pub(crate) fn to_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Null => Cow::Borrowed(""),
        Value::Bool(flag) => Cow::Borrowed(if *flag { "true" } else { "false" }),
        Value::Number(number) => Cow::Owned(number_text(number)),
        Value::String(text) => Cow::Borrowed(text),
        Value::Array(items) => Cow::Owned(items.iter().map(|item| to_text(item)).collect::<Vec<_>>().join(",")),
        Value::Object(_) => Cow::Borrowed("[object Object]"),
    }
}

/// A number as JavaScript prints it: whole numbers without a fraction.
pub(crate) fn number_text(number: &Number) -> String {
    match number.as_f64() {
        Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 1e21 => format!("{float:.0}"),
        _ => number.to_string(),
    }
}

/// A computed number as a JSON value: whole numbers become integers, NaN and infinities null.
pub(crate) fn number_value(number: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if number.fract() == 0.0 && number.abs() <= EXACT {
        // Whole and within ±2^53, so the conversion is exact.
        return Value::Number(Number::from(number as i64));
    }
    Number::from_f64(number).map_or(Value::Null, Value::Number)
}

/// `==`: JavaScript's abstract equality, except that arrays and objects compare by content.
pub(crate) fn loose_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(_), Value::Number(_)) => to_number(left) == to_number(right),
        (Value::Array(_) | Value::Object(_), Value::Array(_) | Value::Object(_)) => left == right,
        (Value::Array(_) | Value::Object(_), _) => loose_equal(&Value::String(to_text(left).into_owned()), right),
        (_, Value::Array(_) | Value::Object(_)) => loose_equal(left, &Value::String(to_text(right).into_owned())),
        _ => to_number(left) == to_number(right),
    }
}

/// `===`: same type and same value.
pub(crate) fn strict_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        // The common case (`in` over a list of strings), without the generic comparison.
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Number(_), Value::Number(_)) => to_number(left) == to_number(right),
        _ => left == right,
    }
}

/// `<` and friends: strings compare as text, anything else as numbers; NaN compares to nothing.
pub(crate) fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    if let (Value::String(a), Value::String(b)) = (left, right) {
        return Some(a.cmp(b));
    }
    to_number(left).partial_cmp(&to_number(right))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn truthiness_matches_json_logic() {
        for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!(""), json!([])] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for true_value in [json!(true), json!(1), json!(-0.5), json!("0"), json!([0]), json!({})] {
            assert!(truthy(&true_value), "{true_value}");
        }
    }

    #[test]
    fn abstract_equality() {
        assert!(loose_equal(&json!(1), &json!("1")));
        assert!(loose_equal(&json!(1), &json!(1.0)));
        assert!(loose_equal(&json!(true), &json!(1)));
        assert!(loose_equal(&json!(0), &json!("")));
        assert!(loose_equal(&json!([1]), &json!("1")));
        assert!(!loose_equal(&json!(null), &json!(0)));
        assert!(!loose_equal(&json!("a"), &json!("b")));
        assert!(!strict_equal(&json!(1), &json!("1")));
        assert!(strict_equal(&json!(1), &json!(1.0)));
    }

    #[test]
    fn numbers_print_like_javascript() {
        assert_eq!(to_text(&json!(1.0)), "1");
        assert_eq!(to_text(&json!(1.5)), "1.5");
        assert_eq!(to_text(&json!(-3)), "-3");
        assert_eq!(to_text(&json!([1, null, "a"])), "1,,a");
        assert_eq!(number_value(2.0), json!(2));
        assert_eq!(number_value(0.25), json!(0.25));
        assert_eq!(number_value(f64::NAN), json!(null));
        assert!(to_number(&json!("inf")).is_nan());
        assert_eq!(to_number(&json!(" 12 ")), 12.0);
    }
}
