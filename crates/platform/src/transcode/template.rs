//! `google.api.http` path templates: parsing, and matching a request path against them.
//!
//! Grammar (from the HttpRule specification):
//! `Template = "/" Segments [ ":" Verb ]`, `Segment = "*" | "**" | LITERAL | Variable`,
//! `Variable = "{" FieldPath [ "=" Segments ] "}"`. `{name}` is `{name=*}`; `**` matches
//! the rest of the path and may only come last.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    Any,
    /// `**`: zero or more segments, only at the end.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Segment(Segment),
    Variable { field: Vec<String>, pattern: Vec<Segment> },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    parts: Vec<Part>,
    verb: Option<String>,
}

/// A value captured by a variable: the dotted field path and the matched text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub field: Vec<String>,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template `{template}`: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let error = |reason| TemplateError {
            template: template.to_owned(),
            reason,
        };
        let rest = template.strip_prefix('/').ok_or_else(|| error("must start with /"))?;
        let (path, verb) = split_verb(rest);
        let mut parts = Vec::new();
        for raw in split_segments(path).map_err(error)? {
            if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                let (field, pattern) = match inner.split_once('=') {
                    Some((field, pattern)) => (field, pattern.split('/').map(parse_segment).collect()),
                    None => (inner, vec![Segment::Any]),
                };
                if field.is_empty() || field.split('.').any(|p| p.is_empty()) {
                    return Err(error("empty field path in variable"));
                }
                parts.push(Part::Variable {
                    field: field.split('.').map(str::to_owned).collect(),
                    pattern,
                });
            } else {
                parts.push(Part::Segment(parse_segment(raw)));
            }
        }
        let template = PathTemplate {
            parts,
            verb: verb.map(str::to_owned),
        };
        if !template.rest_only_last() {
            return Err(error("`**` may only be the last segment"));
        }
        Ok(template)
    }

    fn rest_only_last(&self) -> bool {
        let flat: Vec<&Segment> = self
            .parts
            .iter()
            .flat_map(|part| match part {
                Part::Segment(segment) => vec![segment],
                Part::Variable { pattern, .. } => pattern.iter().collect(),
            })
            .collect();
        flat.iter().rev().skip(1).all(|segment| **segment != Segment::Rest)
    }

    /// The dotted field paths this template binds.
    pub fn fields(&self) -> impl Iterator<Item = String> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable { field, .. } => Some(field.join(".")),
            Part::Segment(_) => None,
        })
    }

    /// Matches a request path (not yet percent-decoded) and returns the bindings.
    pub fn matches(&self, path: &str) -> Option<Vec<Binding>> {
        let rest = path.strip_prefix('/')?;
        let (path, verb) = split_verb(rest);
        if verb != self.verb.as_deref() {
            return None;
        }
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let mut bindings = Vec::new();
        let mut position = 0;
        for part in &self.parts {
            match part {
                Part::Segment(segment) => {
                    position = match_segments(std::slice::from_ref(segment), &segments, position)?;
                }
                Part::Variable { field, pattern } => {
                    let end = match_segments(pattern, &segments, position)?;
                    let value = segments[position..end]
                        .iter()
                        .map(|s| percent_decode(s))
                        .collect::<Option<Vec<_>>>()?;
                    bindings.push(Binding {
                        field: field.clone(),
                        value: value.join("/"),
                    });
                    position = end;
                }
            }
        }
        (position == segments.len()).then_some(bindings)
    }

    /// The OpenAPI form, with every pattern expanded to concrete segments so that each id is
    /// its own parameter: `/v1/{name=projects/*/configs/*}` becomes
    /// `/v1/projects/{project}/configs/{config}`. A plain variable keeps its field as the
    /// parameter name, dots made underscores (`{item.name}` → `{item_name}`), since OpenAPI
    /// tools do not take dotted names.
    pub fn openapi_path(&self) -> (String, Vec<PathParameter>) {
        let mut out = String::new();
        let mut parameters: Vec<PathParameter> = Vec::new();
        let mut add = |out: &mut String, wanted: String, field: &[String], whole: bool| {
            let mut name = wanted.clone();
            let mut suffix = 2;
            while parameters.iter().any(|parameter| parameter.name == name) {
                name = format!("{wanted}{suffix}");
                suffix += 1;
            }
            out.push('{');
            out.push_str(&name);
            out.push('}');
            parameters.push(PathParameter {
                name,
                field: field.join("."),
                whole,
            });
        };
        for part in &self.parts {
            match part {
                Part::Segment(Segment::Literal(text)) => {
                    out.push('/');
                    out.push_str(text);
                }
                Part::Segment(_) => {
                    out.push('/');
                    out.push('*');
                }
                Part::Variable { field, pattern } if pattern == &[Segment::Any] => {
                    out.push('/');
                    add(&mut out, field.join("_"), field, true);
                }
                Part::Variable { field, pattern } => {
                    let mut previous: Option<&str> = None;
                    for segment in pattern {
                        out.push('/');
                        match segment {
                            Segment::Literal(text) => {
                                out.push_str(text);
                                previous = Some(text);
                            }
                            Segment::Any => add(&mut out, singular(previous, field), field, false),
                            Segment::Rest => add(&mut out, field.join("_"), field, false),
                        }
                    }
                }
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        (out, parameters)
    }

    /// Literal segments count more: `/v1/items/special` wins over `/v1/items/{id}`.
    pub fn specificity(&self) -> usize {
        self.parts
            .iter()
            .filter(|part| matches!(part, Part::Segment(Segment::Literal(_))))
            .count()
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.openapi_path().0)
    }
}

/// One path parameter of the OpenAPI form of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParameter {
    /// The name in the OpenAPI path.
    pub name: String,
    /// The dotted request field it fills.
    pub field: String,
    /// The parameter is the whole field (`{shelf}`), not one id inside it (`projects/{project}`).
    pub whole: bool,
}

/// The parameter name for the id after a collection segment: `projects` → `project`,
/// `policies` → `policy`; the field's name when there is no collection before it.
fn singular(collection: Option<&str>, field: &[String]) -> String {
    let Some(collection) = collection else {
        return field.join("_");
    };
    if let Some(stem) = collection.strip_suffix("ies") {
        return format!("{stem}y");
    }
    match collection.strip_suffix('s') {
        Some(stem) if !stem.is_empty() => stem.to_owned(),
        _ => format!("{collection}_id"),
    }
}

fn parse_segment(raw: &str) -> Segment {
    match raw {
        "*" => Segment::Any,
        "**" => Segment::Rest,
        literal => Segment::Literal(literal.to_owned()),
    }
}

/// Splits on `/` outside braces, so `{name=shelves/*}` stays one piece.
fn split_segments(path: &str) -> Result<Vec<&str>, &'static str> {
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, ch) in path.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth = depth.checked_sub(1).ok_or("unbalanced braces")?,
            '/' if depth == 0 => {
                pieces.push(&path[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced braces");
    }
    pieces.push(&path[start..]);
    if pieces.iter().any(|piece| piece.is_empty()) {
        return Err("empty segment");
    }
    Ok(pieces)
}

/// A trailing `:verb` on the last segment (outside braces).
fn split_verb(path: &str) -> (&str, Option<&str>) {
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    let closing = path.rfind('}').map_or(0, |i| i + 1);
    let from = last_slash.max(closing);
    match path[from..].find(':') {
        Some(colon) => (&path[..from + colon], Some(&path[from + colon + 1..])),
        None => (path, None),
    }
}

/// Matches `pattern` starting at `position`; returns the position after the match.
fn match_segments(pattern: &[Segment], segments: &[&str], mut position: usize) -> Option<usize> {
    for segment in pattern {
        match segment {
            Segment::Rest => return Some(segments.len()),
            Segment::Any => {
                segments.get(position).filter(|s| !s.is_empty())?;
                position += 1;
            }
            Segment::Literal(literal) => {
                (segments.get(position)? == literal).then_some(())?;
                position += 1;
            }
        }
    }
    Some(position)
}

/// Decodes `%XX` escapes; None for malformed escapes or invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        let template = PathTemplate::parse(template).unwrap();
        template
            .matches(path)
            .map(|b| b.into_iter().map(|b| (b.field.join("."), b.value)).collect())
    }

    #[test]
    fn simple_and_nested_variables() {
        assert_eq!(
            bind(
                "/v1/shelves/{item.shelf}/items/{item.name}",
                "/v1/shelves/s1/items/i%202"
            ),
            Some(vec![
                ("item.shelf".into(), "s1".into()),
                ("item.name".into(), "i 2".into())
            ])
        );
        assert_eq!(bind("/v1/shelves/{shelf}", "/v1/shelves/s1/extra"), None);
        assert_eq!(bind("/v1/shelves/{shelf}", "/v1/shelves/"), None);
    }

    #[test]
    fn variables_with_patterns_and_rest() {
        assert_eq!(
            bind("/v1/{name=items/*}", "/v1/items/a"),
            Some(vec![("name".into(), "items/a".into())])
        );
        assert_eq!(bind("/v1/{name=items/*}", "/v1/things/a"), None);
        assert_eq!(
            bind("/v1/{path=**}", "/v1/a/b/c"),
            Some(vec![("path".into(), "a/b/c".into())])
        );
    }

    #[test]
    fn verbs_must_match() {
        assert_eq!(
            bind("/v1/{name}:publish", "/v1/x:publish"),
            Some(vec![("name".into(), "x".into())])
        );
        assert_eq!(bind("/v1/{name}:publish", "/v1/x"), None);
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(PathTemplate::parse("v1/x").is_err());
        assert!(PathTemplate::parse("/v1/{x").is_err());
        assert!(PathTemplate::parse("/v1/**/x").is_err());
        assert!(PathTemplate::parse("/v1//x").is_err());
    }

    #[test]
    fn openapi_form_expands_patterns_into_one_parameter_per_id() {
        let (path, parameters) = PathTemplate::parse("/v1/{config.name=projects/*/configs/*}:publish")
            .unwrap()
            .openapi_path();
        assert_eq!(path, "/v1/projects/{project}/configs/{config}:publish");
        assert_eq!(
            parameters
                .iter()
                .map(|p| (p.name.as_str(), p.field.as_str(), p.whole))
                .collect::<Vec<_>>(),
            [("project", "config.name", false), ("config", "config.name", false)]
        );
        let (path, parameters) = PathTemplate::parse("/v1/shelves/{item.shelf}/items/{item.name}")
            .unwrap()
            .openapi_path();
        assert_eq!(path, "/v1/shelves/{item_shelf}/items/{item_name}");
        assert!(parameters.iter().all(|parameter| parameter.whole));
        let (path, _) = PathTemplate::parse("/v1/{name=policies/*/x/*}").unwrap().openapi_path();
        assert_eq!(path, "/v1/policies/{policy}/x/{x_id}");
    }
}
