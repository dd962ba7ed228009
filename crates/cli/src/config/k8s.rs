//! `switchyard config render --k8s`: a resolved config as Kubernetes manifests, for workloads
//! that read configuration from mounted files or environment variables instead of the API.
//! Secret values go only into a Secret; the ConfigMap never holds them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

/// What the manifests are named and annotated with.
#[derive(Debug)]
pub struct Target<'a> {
    /// The config id; also names the `<config>.json` key.
    pub config: &'a str,
    /// The ConfigMap's (and Secret's) name.
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub release: u64,
    pub etag: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a Metadata,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    secret_type: Option<&'static str>,
    data: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct Metadata {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The ConfigMap, then (when the document has secrets) a `---` and the Secret, as YAML.
pub fn render(target: &Target<'_>, mut document: Value, secret_paths: &[String]) -> anyhow::Result<String> {
    let secrets = take_secrets(&mut document, secret_paths);
    let metadata = metadata(target);
    let config_map = Manifest {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: &metadata,
        secret_type: None,
        data: config_map_data(target.config, &document)?,
    };
    let mut yaml = serde_norway::to_string(&config_map)?;
    if secrets.is_empty() {
        return Ok(yaml);
    }
    let secret = Manifest {
        api_version: "v1",
        kind: "Secret",
        metadata: &metadata,
        secret_type: Some("Opaque"),
        data: secrets,
    };
    yaml.push_str("---\n");
    yaml.push_str(&serde_norway::to_string(&secret)?);
    Ok(yaml)
}

fn metadata(target: &Target<'_>) -> Metadata {
    Metadata {
        name: target.name.to_owned(),
        namespace: target.namespace.map(str::to_owned),
        labels: BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), "switchyard".to_owned())]),
        annotations: BTreeMap::from([
            ("switchyard.dev/release".to_owned(), target.release.to_string()),
            ("switchyard.dev/etag".to_owned(), target.etag.to_owned()),
        ]),
    }
}

/// One key per top-level field (nested values as compact JSON) and `<config>.json` with the
/// whole document.
fn config_map_data(config: &str, document: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let mut data = BTreeMap::new();
    if let Value::Object(fields) = document {
        for (key, value) in fields {
            data.insert(key_name(key), scalar_text(value));
        }
    }
    data.insert(format!("{config}.json"), serde_json::to_string_pretty(document)?);
    Ok(data)
}

/// Strings as themselves, everything else as compact JSON.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Removes every secret value from `document` and returns them base64-encoded, keyed by path.
/// Later array positions go first, so removing one never shifts another that is still to come.
fn take_secrets(document: &mut Value, secret_paths: &[String]) -> BTreeMap<String, String> {
    let mut parsed: Vec<(Vec<Segment>, &String)> = secret_paths
        .iter()
        .filter_map(|path| Some((segments(path)?, path)))
        .collect();
    parsed.sort();
    let mut secrets = BTreeMap::new();
    for (segments, path) in parsed.into_iter().rev() {
        let Some(value) = remove(document, &segments) else {
            continue;
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(scalar_text(&value));
        secrets.insert(secret_key(path), encoded);
    }
    secrets
}

/// `$.db.password` → `db_password`: the path without `$.`, with `.`, `[` and `]` as `_`.
fn secret_key(path: &str) -> String {
    let bare = path
        .strip_prefix("$.")
        .or_else(|| path.strip_prefix('$'))
        .unwrap_or(path);
    let mapped: String = bare
        .chars()
        .map(|c| if matches!(c, '.' | '[' | ']') { '_' } else { c })
        .collect();
    key_name(&mapped)
}

/// A valid ConfigMap/Secret key: characters outside `[-._a-zA-Z0-9]` become `_`.
fn key_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One step of a JSON path as config-service writes them (`$.a.b[2]['odd.key']`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Option<Vec<Segment>> {
    let mut rest = path.strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let (key, remaining) = quoted(after)?;
            out.push(Segment::Key(key));
            rest = remaining;
        } else if let Some(after) = rest.strip_prefix('[') {
            let (number, remaining) = after.split_once(']')?;
            out.push(Segment::Index(number.parse().ok()?));
            rest = remaining;
        } else {
            let after = rest.strip_prefix('.')?;
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out.push(Segment::Key(after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    Some(out)
}

/// A quoted key up to `']` (with `\` escapes), and the text after it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut key = String::new();
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if escaped {
            key.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '\'' {
            return text[at..].strip_prefix("']").map(|rest| (key, rest));
        } else {
            key.push(c);
        }
    }
    None
}

/// Takes the value at `segments` out of `document`; `None` when it is not there (or is the root).
fn remove(document: &mut Value, segments: &[Segment]) -> Option<Value> {
    let (last, parents) = segments.split_last()?;
    let mut parent = document;
    for segment in parents {
        parent = match segment {
            Segment::Key(key) => parent.get_mut(key.as_str())?,
            Segment::Index(position) => parent.get_mut(*position)?,
        };
    }
    match (parent, last) {
        (Value::Object(fields), Segment::Key(key)) => fields.remove(key),
        (Value::Array(items), Segment::Index(position)) if *position < items.len() => Some(items.remove(*position)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn paths_parse_into_segments() {
        assert_eq!(
            segments("$.a[2]['b.c\\'d'].e"),
            Some(vec![
                Segment::Key("a".into()),
                Segment::Index(2),
                Segment::Key("b.c'd".into()),
                Segment::Key("e".into()),
            ])
        );
        assert_eq!(segments("a.b"), None);
        assert_eq!(segments("$['open"), None);
    }

    #[test]
    fn secret_keys_map_path_punctuation_to_underscores() {
        assert_eq!(secret_key("$.db.password"), "db_password");
        assert_eq!(secret_key("$.hosts[1].token"), "hosts_1__token");
        assert_eq!(secret_key("$['api key']"), "__api_key__");
    }

    #[test]
    fn secrets_leave_the_document_without_shifting_later_ones() {
        let mut document = json!({"list": ["a", "b", "c"], "db": {"password": "pw", "host": "h"}});
        let paths = [
            "$.list[0]".to_owned(),
            "$.list[2]".to_owned(),
            "$.db.password".to_owned(),
        ];
        let secrets = take_secrets(&mut document, &paths);
        assert_eq!(document, json!({"list": ["b"], "db": {"host": "h"}}));
        let decoded = |key: &str| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&secrets[key]).unwrap()).unwrap()
        };
        assert_eq!(decoded("list_0_"), "a");
        assert_eq!(decoded("list_2_"), "c");
        assert_eq!(decoded("db_password"), "pw");
    }

    #[test]
    fn config_map_flattens_top_level_fields() {
        let data = config_map_data("app", &json!({"port": 8080, "name": "x", "db": {"pool": 5}})).unwrap();
        assert_eq!(data["port"], "8080");
        assert_eq!(data["name"], "x");
        assert_eq!(data["db"], r#"{"pool":5}"#);
        assert!(data["app.json"].contains("\"pool\": 5"));
    }
}
