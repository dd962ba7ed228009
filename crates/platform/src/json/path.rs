//! JSON paths (`$.server.port`, `$.hosts[2]`, `$['a.b']`): the one way every part of this
//! service (validation, secrets, diffs, interpolation) names a place in a document.

/// The path of the whole document.
pub const ROOT: &str = "$";

/// `path` extended by an object key; keys that are not plain identifiers are quoted.
pub fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        return format!("{path}.{key}");
    }
    format!("{path}['{}']", key.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `path` extended by an array index.
pub fn index(path: &str, position: usize) -> String {
    format!("{path}[{position}]")
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Splits a path written by [`child`] and [`index`] back into segments; `None` when malformed.
pub fn segments(path: &str) -> Option<Vec<Segment>> {
    let mut rest = path.strip_prefix(ROOT)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let (key, consumed) = quoted_key(after)?;
            out.push(Segment::Key(key));
            rest = &after[consumed..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            out.push(Segment::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out.push(Segment::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// Reads a quoted key up to its closing `']`; returns the key and the bytes consumed.
fn quoted_key(text: &str) -> Option<(String, usize)> {
    let mut key = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => key.push(chars.next()?.1),
            '\'' => return text[at..].starts_with("']").then_some((key, at + 2)),
            other => key.push(other),
        }
    }
    None
}

/// The value at `path`, if there is one.
pub fn lookup<'a>(document: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    segments(path)?
        .iter()
        .try_fold(document, |value, segment| match segment {
            Segment::Key(key) => value.get(key.as_str()),
            Segment::Index(position) => value.get(*position),
        })
}

/// The value at `path`, mutably.
pub fn lookup_mut<'a>(document: &'a mut serde_json::Value, path: &str) -> Option<&'a mut serde_json::Value> {
    segments(path)?
        .iter()
        .try_fold(document, |value, segment| match segment {
            Segment::Key(key) => value.get_mut(key.as_str()),
            Segment::Index(position) => value.get_mut(*position),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_round_trip_through_segments() {
        let path = index(&child(&child(ROOT, "db"), "it's.odd"), 3);
        assert_eq!(path, "$.db['it\\'s.odd'][3]");
        assert_eq!(
            segments(&path),
            Some(vec![
                Segment::Key("db".into()),
                Segment::Key("it's.odd".into()),
                Segment::Index(3)
            ])
        );
    }

    #[test]
    fn lookup_finds_nested_values() {
        let document = json!({"a": {"b": [1, {"c": true}]}});
        assert_eq!(lookup(&document, "$.a.b[1].c"), Some(&json!(true)));
        assert_eq!(lookup(&document, "$.a.x"), None);
        assert_eq!(lookup(&document, "a.b"), None);
    }
}
