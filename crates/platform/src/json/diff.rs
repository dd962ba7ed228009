//! Reviewers and audit logs need to see what a new config version changes, not two whole documents.
//! This module compares two canonical values and lists the differences by JSON path.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::path as json_path;

/// How a path differs between two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    /// The lowercase name used in APIs.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One difference: `before` is `None` for additions, `after` is `None` for removals.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Only the changed paths, deepest point of difference: objects compared key by key (sorted), arrays index by
/// index (extra elements added/removed), type changes or scalar changes reported as Changed at that path. Equal
/// documents give an empty list.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_at(json_path::ROOT, before, after, &mut changes);
    changes
}

fn diff_at(path: &str, before: &Value, after: &Value, changes: &mut Vec<Change>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => diff_objects(path, old, new, changes),
        (Value::Array(old), Value::Array(new)) => diff_arrays(path, old, new, changes),
        _ => changes.push(Change {
            path: path.to_owned(),
            kind: ChangeKind::Changed,
            before: Some(before.clone()),
            after: Some(after.clone()),
        }),
    }
}

fn diff_objects(path: &str, old: &Map<String, Value>, new: &Map<String, Value>, changes: &mut Vec<Change>) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let child = json_path::child(path, key);
        slot_change(child, old.get(key), new.get(key), changes);
    }
}

fn diff_arrays(path: &str, old: &[Value], new: &[Value], changes: &mut Vec<Change>) {
    for at in 0..old.len().max(new.len()) {
        slot_change(json_path::index(path, at), old.get(at), new.get(at), changes);
    }
}

/// Compares one key or index that may be missing on either side.
fn slot_change(path: String, before: Option<&Value>, after: Option<&Value>, changes: &mut Vec<Change>) {
    let kind = match (before, after) {
        (Some(old), Some(new)) => return diff_at(&path, old, new, changes),
        (None, None) => return,
        (None, Some(_)) => ChangeKind::Added,
        (Some(_), None) => ChangeKind::Removed,
    };
    changes.push(Change {
        path,
        kind,
        before: before.cloned(),
        after: after.cloned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(path: &str, kind: ChangeKind, before: Option<Value>, after: Option<Value>) -> Change {
        Change {
            path: path.to_owned(),
            kind,
            before,
            after,
        }
    }

    #[test]
    fn kind_names() {
        assert_eq!(ChangeKind::Added.name(), "added");
        assert_eq!(ChangeKind::Removed.name(), "removed");
        assert_eq!(ChangeKind::Changed.name(), "changed");
    }

    #[test]
    fn equal_documents_have_no_changes() {
        let value = json!({"a": [1, {"b": null}], "c": "x"});
        assert!(diff(&value, &value.clone()).is_empty());
        assert!(diff(&json!(null), &json!(null)).is_empty());
    }

    #[test]
    fn object_keys_added_removed_and_changed_in_sorted_order() {
        let before = json!({"z": 1, "a": {"keep": true, "old": 1, "n": 2}, "gone": "x"});
        let after = json!({"z": 1, "a": {"keep": true, "n": 3, "new": [1]}, "added": null});
        assert_eq!(
            diff(&before, &after),
            vec![
                change("$.a.n", ChangeKind::Changed, Some(json!(2)), Some(json!(3))),
                change("$.a.new", ChangeKind::Added, None, Some(json!([1]))),
                change("$.a.old", ChangeKind::Removed, Some(json!(1)), None),
                change("$.added", ChangeKind::Added, None, Some(json!(null))),
                change("$.gone", ChangeKind::Removed, Some(json!("x")), None),
            ]
        );
    }

    #[test]
    fn arrays_compare_index_by_index() {
        assert_eq!(
            diff(&json!({"l": [1, 2, 3]}), &json!({"l": [1, 5]})),
            vec![
                change("$.l[1]", ChangeKind::Changed, Some(json!(2)), Some(json!(5))),
                change("$.l[2]", ChangeKind::Removed, Some(json!(3)), None),
            ]
        );
        assert_eq!(
            diff(&json!([{"a": 1}]), &json!([{"a": 2}, "x"])),
            vec![
                change("$[0].a", ChangeKind::Changed, Some(json!(1)), Some(json!(2))),
                change("$[1]", ChangeKind::Added, None, Some(json!("x"))),
            ]
        );
    }

    #[test]
    fn type_changes_are_reported_where_they_happen() {
        assert_eq!(
            diff(&json!({"a": {"b": 1}}), &json!({"a": [1]})),
            vec![change(
                "$.a",
                ChangeKind::Changed,
                Some(json!({"b": 1})),
                Some(json!([1]))
            )]
        );
        assert_eq!(
            diff(&json!({"a": "1"}), &json!({"a": 1})),
            vec![change("$.a", ChangeKind::Changed, Some(json!("1")), Some(json!(1)))]
        );
        assert_eq!(
            diff(&json!(1), &json!({"a": 1})),
            vec![change("$", ChangeKind::Changed, Some(json!(1)), Some(json!({"a": 1})))]
        );
    }

    #[test]
    fn odd_keys_use_quoted_paths() {
        assert_eq!(
            diff(&json!({"a.b": 1}), &json!({"a.b": 2})),
            vec![change("$['a.b']", ChangeKind::Changed, Some(json!(1)), Some(json!(2)))]
        );
    }
}
