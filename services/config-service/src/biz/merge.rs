//! Configs inherit: an environment's document is its parent's with an overlay merged on top, and
//! `${name}` references are then filled in from variables. This module holds both steps so every
//! caller resolves a document the same way.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::json_path;

/// Merges `overlay` onto `base`: objects merge key by key recursively, arrays and scalars replace, an explicit
/// `null` in the overlay deletes the key from the base. A non-object overlay replaces the base entirely.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    let Value::Object(overlay_map) = overlay else {
        *base = overlay.clone();
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    let Value::Object(base_map) = base else {
        return;
    };
    for (key, value) in overlay_map {
        if value.is_null() {
            base_map.remove(key);
            continue;
        }
        deep_merge(base_map.entry(key.clone()).or_insert(Value::Null), value);
    }
}

/// A `${name}` reference with no variable and no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedVariable {
    pub path: String,
    pub variable: String,
}

/// Replaces `${name}` in every string (object keys are left alone) with variables[name]; `${name:-default}` uses
/// the default when the variable is missing; `$${` is an escaped literal `${`. A string that is exactly one
/// `${name}` still becomes a string. Every reference to a missing variable is reported with its JSON path and
/// left as written; all other references are still replaced.
pub fn interpolate(value: &mut Value, variables: &BTreeMap<String, String>) -> Result<(), Vec<UnresolvedVariable>> {
    let mut unresolved = Vec::new();
    interpolate_at(json_path::ROOT, value, variables, &mut unresolved);
    if unresolved.is_empty() {
        return Ok(());
    }
    Err(unresolved)
}

fn interpolate_at(
    path: &str,
    value: &mut Value,
    variables: &BTreeMap<String, String>,
    unresolved: &mut Vec<UnresolvedVariable>,
) {
    match value {
        Value::String(text) => {
            if let Some(replaced) = substitute(path, text, variables, unresolved) {
                *text = replaced;
            }
        }
        Value::Array(items) => {
            for (at, item) in items.iter_mut().enumerate() {
                interpolate_at(&json_path::index(path, at), item, variables, unresolved);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                interpolate_at(&json_path::child(path, key), item, variables, unresolved);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` with its references replaced, or `None` when it has nothing to replace.
fn substitute(
    path: &str,
    text: &str,
    variables: &BTreeMap<String, String>,
    unresolved: &mut Vec<UnresolvedVariable>,
) -> Option<String> {
    if !text.contains("${") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(after) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(end) = after.find('}') else {
            break;
        };
        let reference = &after[..end];
        match resolve(reference, variables) {
            Some(resolved) => out.push_str(resolved),
            None => {
                unresolved.push(UnresolvedVariable {
                    path: path.to_owned(),
                    variable: reference.to_owned(),
                });
                out.push_str(&rest[..end + 3]);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The text for the inside of `${...}`: the variable, else the `:-` default, else `None`.
fn resolve<'a>(reference: &'a str, variables: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    variables.get(name).map(String::as_str).or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(mut base: Value, overlay: Value) -> Value {
        deep_merge(&mut base, &overlay);
        base
    }

    fn variables(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn interpolated(mut value: Value, pairs: &[(&str, &str)]) -> Value {
        interpolate(&mut value, &variables(pairs)).unwrap();
        value
    }

    #[test]
    fn objects_merge_recursively() {
        assert_eq!(
            merged(
                json!({"db": {"host": "a", "pool": {"min": 1, "max": 5}}, "name": "x"}),
                json!({"db": {"pool": {"max": 10}, "user": "u"}, "extra": true})
            ),
            json!({"db": {"host": "a", "pool": {"min": 1, "max": 10}, "user": "u"}, "name": "x", "extra": true})
        );
    }

    #[test]
    fn arrays_replace() {
        assert_eq!(merged(json!({"a": [1, 2, 3]}), json!({"a": [4]})), json!({"a": [4]}));
        assert_eq!(merged(json!({"a": {"b": 1}}), json!({"a": [4]})), json!({"a": [4]}));
    }

    #[test]
    fn null_deletes_and_missing_null_is_a_no_op() {
        assert_eq!(
            merged(
                json!({"a": 1, "b": {"c": 2, "d": 3}}),
                json!({"a": null, "b": {"c": null}})
            ),
            json!({"b": {"d": 3}})
        );
        assert_eq!(merged(json!({"a": 1}), json!({"zzz": null})), json!({"a": 1}));
        assert_eq!(
            merged(json!({"a": 1}), json!({"n": {"m": null, "k": 2}})),
            json!({"a": 1, "n": {"k": 2}})
        );
    }

    #[test]
    fn scalars_replace_objects_and_objects_replace_scalars() {
        assert_eq!(merged(json!({"a": {"b": 1}}), json!({"a": 5})), json!({"a": 5}));
        assert_eq!(merged(json!({"a": 5}), json!({"a": {"b": 1}})), json!({"a": {"b": 1}}));
        assert_eq!(merged(json!({"a": 1}), json!("whole")), json!("whole"));
        assert_eq!(merged(json!({"a": 1}), Value::Null), Value::Null);
        assert_eq!(merged(json!([1]), json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn interpolation_replaces_variables_and_defaults() {
        let value = json!({
            "url": "postgres://${host}:${port:-5432}/db",
            "only": "${port}",
            "fallback": "${missing:-none}",
            "empty_default": "[${missing:-}]",
            "list": ["${host}", 3, null, true],
            "${host}": "keys stay",
        });
        assert_eq!(
            interpolated(value, &[("host", "db.local"), ("port", "6000")]),
            json!({
                "url": "postgres://db.local:6000/db",
                "only": "6000",
                "fallback": "none",
                "empty_default": "[]",
                "list": ["db.local", 3, null, true],
                "${host}": "keys stay",
            })
        );
    }

    #[test]
    fn interpolation_handles_escapes_and_unterminated_references() {
        assert_eq!(
            interpolated(
                json!(["$${host}", "$$${host}", "cost $5 ${host}", "a ${host", "${x}}"]),
                &[("host", "h"), ("x", "X")]
            ),
            json!(["${host}", "$${host}", "cost $5 h", "a ${host", "X}"])
        );
    }

    #[test]
    fn interpolation_does_not_recurse_into_values() {
        assert_eq!(
            interpolated(json!("${a}"), &[("a", "${b}"), ("b", "no")]),
            json!("${b}")
        );
    }

    #[test]
    fn missing_variables_are_reported_with_paths() {
        let mut value = json!({"db": {"url": "${host}/${name}", "user": "${user}"}, "hosts": ["${host}", "ok"]});
        let errors = interpolate(&mut value, &variables(&[("user", "admin")])).unwrap_err();
        let reported: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.variable.as_str())).collect();
        assert_eq!(
            reported,
            vec![("$.db.url", "host"), ("$.db.url", "name"), ("$.hosts[0]", "host")]
        );
        assert_eq!(value["db"]["user"], json!("admin"));
        assert_eq!(value["db"]["url"], json!("${host}/${name}"));
    }
}
