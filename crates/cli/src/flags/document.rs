//! Files the operator writes — flag and segment definitions, targeting rules, evaluation
//! contexts — in JSON or YAML (told apart by the extension). Definitions are read through the
//! messages' proto3 JSON, so a `get --output json` edited by hand is a valid file, and a
//! misspelt field is an error here rather than silently dropped.

use std::path::Path;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::output::read;

/// The file's content as JSON, parsed as JSON or YAML according to its extension.
pub fn read_value(path: &Path) -> anyhow::Result<Value> {
    let text = read(path)?;
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display())),
        Some("yaml" | "yml") => {
            serde_norway::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
        }
        _ => anyhow::bail!(
            "cannot tell the format of {} from its extension: use .json, .yaml or .yml",
            path.display()
        ),
    }
}

/// A protobuf message from a file holding its proto3 JSON (or the same as YAML); `what` names
/// the expected content in errors, such as "a flag definition".
pub fn read_message<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let value = read_value(path)?;
    if !value.is_object() {
        anyhow::bail!("{} is not {what}: expected an object of fields", path.display());
    }
    serde_json::from_value(value).with_context(|| format!("{} is not {what}", path.display()))
}

/// A JSON object as a protobuf Struct (targeting rules, evaluation contexts).
pub fn object(value: Value, what: &str) -> anyhow::Result<pbjson_types::Struct> {
    match value {
        Value::Object(fields) => Ok(switchyard_platform::proto_json::to_proto_struct(&fields)),
        other => anyhow::bail!("{what} must be a JSON object, not {}", kind(&other)),
    }
}

/// A Struct from a JSON or YAML file holding one object.
pub fn read_object(path: &Path, what: &str) -> anyhow::Result<pbjson_types::Struct> {
    object(read_value(path)?, what).with_context(|| format!("cannot use {}", path.display()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::flags::v1 as pb;

    fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn yaml_and_json_definitions_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = file(
            &dir,
            "flag.yml",
            "description: d\nlifecycle: LIFECYCLE_DEPRECATED\nvariants: {on: true, off: false}\n\
             environments:\n  prod: {enabled: true, defaultVariant: off}\n",
        );
        let json = file(
            &dir,
            "flag.json",
            r#"{"description": "d", "lifecycle": "LIFECYCLE_DEPRECATED", "variants": {"on": true, "off": false},
                "environments": {"prod": {"enabled": true, "defaultVariant": "off"}}}"#,
        );
        let from_yaml: pb::Flag = read_message(&yaml, "a flag definition").unwrap();
        let from_json: pb::Flag = read_message(&json, "a flag definition").unwrap();
        assert_eq!(from_yaml, from_json);
        assert_eq!(from_yaml.lifecycle, pb::Lifecycle::Deprecated as i32);
        assert_eq!(from_yaml.environments["prod"].default_variant, "off");
    }

    #[test]
    fn misspelt_fields_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let typo = file(&dir, "flag.json", r#"{"descripton": "d"}"#);
        let error = read_message::<pb::Flag>(&typo, "a flag definition").unwrap_err();
        assert!(format!("{error:#}").contains("descripton"), "{error:#}");
        let list = file(&dir, "list.json", "[1]");
        assert!(read_message::<pb::Flag>(&list, "a flag definition").is_err());
        let toml = file(&dir, "flag.toml", "a = 1");
        assert!(read_value(&toml).is_err());
    }

    #[test]
    fn contexts_must_be_objects() {
        assert!(object(serde_json::json!({"a": 1}), "the context").is_ok());
        let error = object(serde_json::json!([1]), "the context").unwrap_err();
        assert_eq!(error.to_string(), "the context must be a JSON object, not an array");
    }
}
