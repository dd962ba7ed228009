//! Config documents arrive as JSON, YAML, TOML, Java properties or plain text, but everything
//! downstream (merging, diffing, validation, hashing) works on one canonical `serde_json::Value`.
//! This module is the single border crossing between those formats and the canonical value.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use super::json_path;

/// The syntaxes a document can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Yaml,
    Toml,
    Properties,
    Text,
}

impl Format {
    /// Every format, in a stable order.
    const ALL: [Format; 5] = [
        Format::Json,
        Format::Yaml,
        Format::Toml,
        Format::Properties,
        Format::Text,
    ];

    /// The lowercase name used in APIs and storage.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
            Format::Properties => "properties",
            Format::Text => "text",
        }
    }

    /// The format called `name` (exactly as [`Format::name`] spells it).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }
}

/// The largest document text accepted by [`parse`].
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The deepest nesting of arrays and objects accepted by [`parse`].
pub const MAX_DEPTH: usize = 64;

/// Why a document could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DocumentError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl DocumentError {
    /// An error without a position.
    fn new(message: impl Into<String>) -> Self {
        DocumentError {
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error at a 1-based line and column; the position is also written into the message.
    fn at(line: usize, column: usize, message: impl fmt::Display) -> Self {
        DocumentError {
            line: Some(line),
            column: Some(column),
            message: format!("line {line}, column {column}: {message}"),
        }
    }
}

/// Parses text into the canonical JSON value. Rejects text over MAX_DOCUMENT_BYTES and values nested deeper
/// than MAX_DEPTH.
pub fn parse(format: Format, text: &str) -> Result<Value, DocumentError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::new(format!(
            "document is {} bytes, more than the limit of {MAX_DOCUMENT_BYTES}",
            text.len()
        )));
    }
    let value = match format {
        Format::Json => parse_json(text)?,
        Format::Yaml => parse_yaml(text)?,
        Format::Toml => parse_toml(text)?,
        Format::Properties => parse_properties(text)?,
        Format::Text => Value::String(text.to_owned()),
    };
    if nests_deeper_than(&value, MAX_DEPTH) {
        return Err(DocumentError::new(format!(
            "document nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(value)
}

/// Renders a canonical value back in `format` (Json pretty-printed with 2 spaces; Properties: flat
/// `key=value` lines, nested objects flattened with dots and arrays with `[i]`, null as an empty value,
/// escaping per java .properties; Text: the string value, or JSON text if not a string).
pub fn render(format: Format, value: &Value) -> Result<String, DocumentError> {
    match format {
        Format::Json => serde_json::to_string_pretty(value).map_err(|err| DocumentError::new(err.to_string())),
        Format::Yaml => serde_norway::to_string(value).map_err(|err| DocumentError::new(err.to_string())),
        Format::Toml => render_toml(value),
        Format::Properties => render_properties(value),
        Format::Text => render_text(value),
    }
}

/// A resolved document as clients receive it in text form: compact JSON, or the text itself
/// for plain-text configs.
pub fn delivered_text(format: Format, value: &Value) -> String {
    match (format, value) {
        (Format::Text, Value::String(text)) => text.clone(),
        _ => serde_json::to_string(value).unwrap_or_default(),
    }
}

/// SHA-256 hex of the canonical JSON serialization (object keys sorted), used as content hash / etag.
pub fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

/// Whether `value` has arrays or objects nested more than `budget` levels deep. Recurses at most
/// `budget + 1` frames, whatever the input.
fn nests_deeper_than(value: &Value, budget: usize) -> bool {
    match value {
        Value::Array(items) => budget == 0 || items.iter().any(|item| nests_deeper_than(item, budget - 1)),
        Value::Object(map) => budget == 0 || map.values().any(|item| nests_deeper_than(item, budget - 1)),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON and YAML: both deserialize through `Strict`, which refuses duplicate keys and non-finite
// numbers, so the parsers report those problems with their own line and column.
// ---------------------------------------------------------------------------------------------

/// How much a parsed document may grow to, in bytes of string content plus a fixed cost per
/// node. A YAML alias repeats its anchor's whole subtree, so a small text can expand to an
/// enormous value ("billion laughs"); the budget stops that while it is being built.
const EXPANSION_BUDGET: usize = 8 * MAX_DOCUMENT_BYTES;
const NODE_COST: usize = 16;

thread_local! {
    /// What the document being parsed on this thread may still grow by. Parsing is
    /// synchronous, so the budget never crosses a parse.
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Runs a parse with a fresh expansion budget, restoring "unlimited" afterwards.
fn with_budget<T>(parse: impl FnOnce() -> T) -> T {
    BUDGET.with(|budget| budget.set(EXPANSION_BUDGET));
    let result = parse();
    BUDGET.with(|budget| budget.set(usize::MAX));
    result
}

fn spend<E: de::Error>(bytes: usize) -> Result<(), E> {
    BUDGET.with(|budget| {
        let cost = NODE_COST + bytes;
        let left = budget.get();
        if left < cost {
            return Err(E::custom(
                "the document expands beyond the size limit (YAML aliases repeating large anchors?)",
            ));
        }
        budget.set(left - cost);
        Ok(())
    })
}

/// A value deserialized from any self-describing format, with the rules of canonical JSON.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON-compatible value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        spend::<E>(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        spend::<E>(0)?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|Strict(value)| value)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        spend::<E>(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        spend::<E>(0)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        spend::<E>(0)?;
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Err(E::custom(format!("integer {v} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Err(E::custom(format!("integer {v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        spend::<E>(0)?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        spend::<E>(v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        spend::<E>(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        spend::<A::Error>(0)?;
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        spend::<A::Error>(0)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            spend::<A::Error>(key.len())?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    /// Only YAML produces enums, for values carrying a `!tag`; tags have no JSON meaning.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, _) = data.variant::<String>()?;
        Err(de::Error::custom(format!("tags are not supported (found `!{tag}`)")))
    }
}

fn parse_json(text: &str) -> Result<Value, DocumentError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let Strict(value) = with_budget(|| Strict::deserialize(&mut deserializer)).map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    Ok(value)
}

fn json_error(err: serde_json::Error) -> DocumentError {
    let text = err.to_string();
    if err.line() == 0 {
        return DocumentError::new(text);
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    DocumentError::at(err.line(), err.column(), message)
}

fn parse_yaml(text: &str) -> Result<Value, DocumentError> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    match with_budget(|| Strict::deserialize(deserializer)) {
        Ok(Strict(value)) => Ok(value),
        Err(err) if err.location().is_none() && holds_no_yaml_document(text) => Ok(Value::Null),
        Err(err) => Err(yaml_error(err)),
    }
}

/// Whether `text` is only blank lines, comments and document markers: YAML for "nothing", which the
/// deserializer reports as an unexpected end of stream.
fn holds_no_yaml_document(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---" || line == "..." || line.starts_with('%'))
}

fn yaml_error(err: serde_norway::Error) -> DocumentError {
    let text = err.to_string();
    let Some(location) = err.location() else {
        return DocumentError::new(text);
    };
    let mark = format!(" at line {} column {}", location.line(), location.column());
    DocumentError::at(location.line(), location.column(), text.replacen(&mark, "", 1))
}

// ---------------------------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------------------------

fn parse_toml(text: &str) -> Result<Value, DocumentError> {
    let table = text.parse::<toml::Table>().map_err(|err| toml_error(text, &err))?;
    from_toml(json_path::ROOT, &toml::Value::Table(table), MAX_DEPTH)
}

fn toml_error(text: &str, err: &toml::de::Error) -> DocumentError {
    let message = err.message().trim().replace('\n', "; ");
    let Some(span) = err.span() else {
        return DocumentError::new(message);
    };
    let (line, column) = line_and_column(text, span.start);
    DocumentError::at(line, column, message)
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let boundary = (0..=offset.min(text.len()))
        .rev()
        .find(|at| text.is_char_boundary(*at))
        .unwrap_or(0);
    let before = &text[..boundary];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

/// Converts a TOML value found at `path`, refusing to go more than `budget` levels deeper.
fn from_toml(path: &str, value: &toml::Value, budget: usize) -> Result<Value, DocumentError> {
    let converted = match value {
        toml::Value::String(text) => Value::String(text.clone()),
        toml::Value::Integer(number) => Value::from(*number),
        toml::Value::Boolean(flag) => Value::Bool(*flag),
        toml::Value::Datetime(datetime) => Value::String(datetime.to_string()),
        toml::Value::Float(number) => Number::from_f64(*number)
            .map(Value::Number)
            .ok_or_else(|| DocumentError::new(format!("{path}: {number} is not a finite number")))?,
        toml::Value::Array(_) | toml::Value::Table(_) if budget == 0 => {
            return Err(DocumentError::new(format!(
                "document nests deeper than {MAX_DEPTH} levels"
            )));
        }
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(at, item)| from_toml(&json_path::index(path, at), item, budget - 1))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, item)| Ok((key.clone(), from_toml(&json_path::child(path, key), item, budget - 1)?)))
                .collect::<Result<_, DocumentError>>()?,
        ),
    };
    Ok(converted)
}

fn render_toml(value: &Value) -> Result<String, DocumentError> {
    let toml::Value::Table(table) = to_toml(json_path::ROOT, value)? else {
        return Err(DocumentError::new("a TOML document must be an object at the top level"));
    };
    toml::to_string(&table).map_err(|err| DocumentError::new(err.to_string()))
}

/// Converts the canonical value at `path` into TOML, which has no null and no integers above `i64::MAX`.
fn to_toml(path: &str, value: &Value) -> Result<toml::Value, DocumentError> {
    let converted = match value {
        Value::Null => return Err(DocumentError::new(format!("{path}: TOML cannot represent null"))),
        Value::Bool(flag) => toml::Value::Boolean(*flag),
        Value::Number(number) => toml_number(path, number)?,
        Value::String(text) => toml::Value::String(text.clone()),
        Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(at, item)| to_toml(&json_path::index(path, at), item))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => toml::Value::Table(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), to_toml(&json_path::child(path, key), item)?)))
                .collect::<Result<_, DocumentError>>()?,
        ),
    };
    Ok(converted)
}

fn toml_number(path: &str, number: &Number) -> Result<toml::Value, DocumentError> {
    if let Some(integer) = number.as_i64() {
        return Ok(toml::Value::Integer(integer));
    }
    if number.is_u64() {
        return Err(DocumentError::new(format!(
            "{path}: {number} is too large for a TOML integer"
        )));
    }
    let float = number
        .as_f64()
        .ok_or_else(|| DocumentError::new(format!("{path}: {number} is not representable in TOML")))?;
    Ok(toml::Value::Float(float))
}

// ---------------------------------------------------------------------------------------------
// Java .properties
// ---------------------------------------------------------------------------------------------

/// One character of a logical line, remembering where it was written.
#[derive(Debug, Clone, Copy)]
struct Located {
    ch: char,
    line: usize,
    column: usize,
}

/// Whitespace as java.util.Properties understands it.
fn is_properties_space(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\x0c')
}

fn parse_properties(text: &str) -> Result<Value, DocumentError> {
    let mut object = Map::new();
    for line in logical_lines(text) {
        let (key, value) = properties_entry(&line)?;
        object.insert(key, Value::String(value));
    }
    Ok(Value::Object(object))
}

/// Splits text at `\n`, `\r\n` or `\r`.
fn natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find(['\r', '\n']) {
        lines.push(&rest[..end]);
        let terminator = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[end + terminator..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}

/// Joins natural lines ending in an odd number of backslashes with the next one (minus its leading
/// whitespace), and drops blank lines and comments.
fn logical_lines(text: &str) -> Vec<Vec<Located>> {
    let mut logical = Vec::new();
    let mut current: Option<Vec<Located>> = None;
    for (number, raw) in natural_lines(text).into_iter().enumerate() {
        let indent = raw.chars().take_while(|ch| is_properties_space(*ch)).count();
        let body = raw.trim_start_matches(is_properties_space);
        if current.is_none() && (body.is_empty() || body.starts_with(['#', '!'])) {
            continue;
        }
        let trailing_backslashes = body.chars().rev().take_while(|ch| *ch == '\\').count();
        let continues = trailing_backslashes % 2 == 1;
        let body = if continues { &body[..body.len() - 1] } else { body };
        let line = current.get_or_insert_with(Vec::new);
        line.extend(body.chars().enumerate().map(|(at, ch)| Located {
            ch,
            line: number + 1,
            column: indent + at + 1,
        }));
        if !continues {
            logical.extend(current.take());
        }
    }
    logical.extend(current);
    logical
}

/// Splits a logical line into its unescaped key and value.
fn properties_entry(line: &[Located]) -> Result<(String, String), DocumentError> {
    let mut key_end = 0;
    while key_end < line.len() {
        match line[key_end].ch {
            '\\' => key_end += 2,
            '=' | ':' => break,
            ch if is_properties_space(ch) => break,
            _ => key_end += 1,
        }
    }
    let key_end = key_end.min(line.len());
    let mut value_start = key_end;
    let mut seen_separator = false;
    while let Some(located) = line.get(value_start) {
        if is_properties_space(located.ch) || (!seen_separator && matches!(located.ch, '=' | ':')) {
            seen_separator |= !is_properties_space(located.ch);
            value_start += 1;
            continue;
        }
        break;
    }
    Ok((
        unescape_properties(&line[..key_end])?,
        unescape_properties(&line[value_start..])?,
    ))
}

fn unescape_properties(text: &[Located]) -> Result<String, DocumentError> {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(located) = text.get(at) {
        at += 1;
        if located.ch != '\\' {
            out.push(located.ch);
            continue;
        }
        let Some(escaped) = text.get(at) else {
            break;
        };
        at += 1;
        match escaped.ch {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\x0c'),
            'u' => {
                let (ch, used) = unicode_escape(&text[at..], located)?;
                out.push(ch);
                at += used;
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Decodes the hex digits after a `\u` (and, for a high surrogate, the `\uXXXX` low surrogate that
/// must follow); returns the character and how many characters were consumed.
fn unicode_escape(text: &[Located], backslash: &Located) -> Result<(char, usize), DocumentError> {
    let malformed = || DocumentError::at(backslash.line, backslash.column, "malformed \\uXXXX escape");
    let high = hex_unit(text).ok_or_else(malformed)?;
    if !(0xD800..0xDC00).contains(&high) {
        return char::from_u32(u32::from(high)).map(|ch| (ch, 4)).ok_or_else(malformed);
    }
    let low_escape = text
        .get(4..6)
        .is_some_and(|prefix| prefix[0].ch == '\\' && prefix[1].ch == 'u');
    let low = text
        .get(6..)
        .filter(|_| low_escape)
        .and_then(hex_unit)
        .ok_or_else(malformed)?;
    char::decode_utf16([high, low])
        .next()
        .and_then(Result::ok)
        .map(|ch| (ch, 10))
        .ok_or_else(malformed)
}

/// The UTF-16 code unit written as four hex digits at the start of `text`.
fn hex_unit(text: &[Located]) -> Option<u16> {
    text.get(..4)?
        .iter()
        .try_fold(0u16, |unit, located| Some(unit * 16 + located.ch.to_digit(16)? as u16))
}

fn render_properties(value: &Value) -> Result<String, DocumentError> {
    let Value::Object(map) = value else {
        return Err(DocumentError::new(
            "a properties document must be an object at the top level",
        ));
    };
    let mut entries = BTreeMap::new();
    for (key, item) in map {
        flatten_properties(key.clone(), item, &mut entries)?;
    }
    let mut out = String::new();
    for (key, text) in entries {
        out.push_str(&escape_properties(&key, true));
        out.push('=');
        out.push_str(&escape_properties(&text, false));
        out.push('\n');
    }
    Ok(out)
}

/// Adds the leaves under `value` to `entries`, named by dotted keys and `[i]` indexes.
fn flatten_properties(key: String, value: &Value, entries: &mut BTreeMap<String, String>) -> Result<(), DocumentError> {
    let leaf = match value {
        Value::Object(map) => {
            for (child, item) in map {
                flatten_properties(format!("{key}.{child}"), item, entries)?;
            }
            return Ok(());
        }
        Value::Array(items) => {
            for (at, item) in items.iter().enumerate() {
                flatten_properties(format!("{key}[{at}]"), item, entries)?;
            }
            return Ok(());
        }
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if entries.contains_key(&key) {
        return Err(DocumentError::new(format!(
            "property `{key}` is produced twice when flattening"
        )));
    }
    entries.insert(key, leaf);
    Ok(())
}

/// Escapes text the way `java.util.Properties.store` does: separators, comment markers, control and
/// non-ASCII characters; spaces everywhere in keys but only a leading one in values.
fn escape_properties(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (at, ch) in text.chars().enumerate() {
        match ch {
            ' ' if is_key || at == 0 => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

fn render_text(value: &Value) -> Result<String, DocumentError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        other => serde_json::to_string_pretty(other).map_err(|err| DocumentError::new(err.to_string())),
    }
}

#[cfg(test)]
mod expansion_tests {
    use super::*;

    #[test]
    fn yaml_aliases_cannot_expand_a_small_text_without_bound() {
        // One large anchor repeated by many aliases: few alias jumps (under the YAML
        // library's own repetition limit), but ten million strings from 90 KB of text.
        let anchor = vec!["x"; 20_000].join(", ");
        let aliases = vec!["*big"; 500].join(", ");
        let text = format!("big: &big [{anchor}]\nmany: [{aliases}]\n");
        assert!(text.len() < MAX_DOCUMENT_BYTES);
        let started = std::time::Instant::now();
        let error = parse(Format::Yaml, &text).unwrap_err();
        assert!(error.message.contains("expands beyond"), "{}", error.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn modest_aliases_still_work() {
        let value = parse(Format::Yaml, "base: &base {pool: 5}\nprod: *base\n").unwrap();
        assert_eq!(value["prod"]["pool"], 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "name": "checkout",
            "enabled": true,
            "ratio": 0.25,
            "retries": 3,
            "negative": -7,
            "tags": ["a", "b c", "123", "yes"],
            "db": {"url": "postgres://x:5432/db", "pool": {"min": 1, "max": 10}},
            "servers": [{"host": "a", "port": 1}, {"host": "b", "port": 2}],
            "empty": {},
            "text": "line one\nline two",
            "odd key": "= # ! : \\ ü 😀",
        })
    }

    fn round_trip(format: Format, value: &Value) {
        let text = render(format, value).unwrap();
        assert_eq!(&parse(format, &text).unwrap(), value, "{} text:\n{text}", format.name());
    }

    fn nested_arrays(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("properties"), Some(Format::Properties));
        assert_eq!(Format::from_name("xml"), None);
        assert_eq!(Format::from_name("JSON"), None);
    }

    #[test]
    fn json_parses_any_top_level_value() {
        assert_eq!(
            parse(Format::Json, r#"{"a": [1, 2.5, null, "x"]}"#).unwrap(),
            json!({"a": [1, 2.5, null, "x"]})
        );
        assert_eq!(parse(Format::Json, "42").unwrap(), json!(42));
        assert_eq!(parse(Format::Json, " \"s\" ").unwrap(), json!("s"));
        assert_eq!(parse(Format::Json, "[]").unwrap(), json!([]));
        assert_eq!(parse(Format::Json, "18446744073709551615").unwrap(), json!(u64::MAX));
    }

    #[test]
    fn json_rejects_duplicate_keys_with_position() {
        let err = parse(Format::Json, "{\n  \"a\": 1,\n  \"b\": {\"x\": 1, \"x\": 2}\n}").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("duplicate key `x`"), "{err}");
        assert!(err.message.starts_with("line 3, column"), "{err}");
    }

    #[test]
    fn json_garbage_reports_line_and_column() {
        let err = parse(Format::Json, "{\n  \"a\": 1,\n  \"b\": @\n}").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.column.is_some());
        assert!(err.to_string().starts_with("line 3, column"), "{err}");
        assert!(!err.message.contains(" at line "), "{err}");

        let err = parse(Format::Json, "{} {}").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(parse(Format::Json, "").is_err());
    }

    #[test]
    fn yaml_parses_into_canonical_values() {
        let text = "a: 1\nb: [x, 2.5, true, null]\nc:\n  d: hello\n  e: ~\n";
        assert_eq!(
            parse(Format::Yaml, text).unwrap(),
            json!({"a": 1, "b": ["x", 2.5, true, null], "c": {"d": "hello", "e": null}})
        );
        assert_eq!(parse(Format::Yaml, "just text").unwrap(), json!("just text"));
        assert_eq!(parse(Format::Yaml, "").unwrap(), Value::Null);
        assert_eq!(parse(Format::Yaml, "# only a comment\n").unwrap(), Value::Null);
    }

    #[test]
    fn yaml_scalar_keys_become_strings() {
        assert_eq!(
            parse(Format::Yaml, "1: one\ntrue: yes\n2.5: x\n").unwrap(),
            json!({"1": "one", "true": "yes", "2.5": "x"})
        );
        assert!(parse(Format::Yaml, "? [a, b]\n: c\n").is_err());
    }

    #[test]
    fn yaml_anchors_expand() {
        assert_eq!(
            parse(Format::Yaml, "base: &b {x: 1}\ncopy: *b\n").unwrap(),
            json!({"base": {"x": 1}, "copy": {"x": 1}})
        );
    }

    #[test]
    fn yaml_rejects_duplicates_tags_non_finite_and_many_documents() {
        let err = parse(Format::Yaml, "a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate key `c`"), "{err}");
        assert_eq!(err.line, Some(3), "the mapping holding the duplicate: {err}");

        assert!(parse(Format::Yaml, "1: a\n\"1\": b\n").is_err());
        assert!(
            parse(Format::Yaml, "a: !custom 3\n")
                .unwrap_err()
                .message
                .contains("`!custom`")
        );
        assert!(
            parse(Format::Yaml, "a: .nan\n")
                .unwrap_err()
                .message
                .contains("not a finite number")
        );
        assert!(parse(Format::Yaml, "a: .inf\n").is_err());
        assert!(parse(Format::Yaml, "a: 1\n---\nb: 2\n").is_err());
        assert!(parse(Format::Yaml, "a: 123456789012345678901234567890\n").is_err());
    }

    #[test]
    fn yaml_garbage_reports_line() {
        let err = parse(Format::Yaml, "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err}");
        assert!(err.message.starts_with("line "), "{err}");

        let err = parse(Format::Yaml, "a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn toml_tables_become_objects_and_datetimes_strings() {
        let text = "title = \"x\"\nwhen = 1979-05-27T07:32:00Z\nday = 1979-05-27\n[db]\nport = 5432\nratio = 0.5\n\
                    [[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\n";
        assert_eq!(
            parse(Format::Toml, text).unwrap(),
            json!({
                "title": "x",
                "when": "1979-05-27T07:32:00Z",
                "day": "1979-05-27",
                "db": {"port": 5432, "ratio": 0.5},
                "hosts": [{"name": "a"}, {"name": "b"}]
            })
        );
    }

    #[test]
    fn toml_rejects_non_finite_floats_and_garbage() {
        assert!(parse(Format::Toml, "x = nan\n").unwrap_err().message.contains("$.x"));
        assert!(parse(Format::Toml, "x = 1\nx = 2\n").is_err());

        let err = parse(Format::Toml, "a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.column.is_some());
        assert!(err.message.starts_with("line 2, column"), "{err}");
    }

    #[test]
    fn toml_render_refuses_what_toml_cannot_hold() {
        assert!(render(Format::Toml, &json!([1])).is_err());
        assert!(
            render(Format::Toml, &json!({"a": {"b": null}}))
                .unwrap_err()
                .message
                .contains("$.a.b")
        );
        assert!(render(Format::Toml, &json!({"a": u64::MAX})).is_err());
    }

    #[test]
    fn properties_syntax() {
        let text = "# comment\n! another\n\n  a=1\nb: two\nc three\nd\ne =  spaced value  \n\
                    long = first \\\n       second \\\n  third\nesc = tab\\there\\nnew \\u00e9 \\= \\:\n\
                    key\\ with\\ spaces = v\nf\\=g = h\nsmile = \\uD83D\\uDE00\na=last\n";
        assert_eq!(
            parse(Format::Properties, text).unwrap(),
            json!({
                "a": "last",
                "b": "two",
                "c": "three",
                "d": "",
                "e": "spaced value  ",
                "long": "first second third",
                "esc": "tab\there\nnew é = :",
                "key with spaces": "v",
                "f=g": "h",
                "smile": "😀",
            })
        );
    }

    #[test]
    fn properties_keep_dots_and_handle_line_endings() {
        assert_eq!(
            parse(Format::Properties, "db.url=x\r\ndb.pool.max=3\rlast=\\\n").unwrap(),
            json!({"db.url": "x", "db.pool.max": "3", "last": ""})
        );
        assert_eq!(
            parse(Format::Properties, "# comment \\\nnot.continued=1").unwrap(),
            json!({"not.continued": "1"})
        );
        assert_eq!(parse(Format::Properties, "").unwrap(), json!({}));
    }

    #[test]
    fn properties_malformed_unicode_reports_line() {
        let err = parse(Format::Properties, "a=1\nb=\\u12\n").unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(3)));
        assert!(err.message.starts_with("line 2, column 3"), "{err}");
        assert!(parse(Format::Properties, "a=\\uD83D").is_err());
        assert!(parse(Format::Properties, "a=\\uDE00").is_err());
    }

    #[test]
    fn properties_render_flattens_and_escapes() {
        let value = json!({"db": {"url": "x", "pool": {"max": 3}}, "list": [true, null], "k y": " v=1"});
        assert_eq!(
            render(Format::Properties, &value).unwrap(),
            "db.pool.max=3\ndb.url=x\nk\\ y=\\ v\\=1\nlist[0]=true\nlist[1]=\n"
        );
        assert!(render(Format::Properties, &json!("x")).is_err());
        assert!(render(Format::Properties, &json!({"a.b": "1", "a": {"b": "2"}})).is_err());
    }

    #[test]
    fn text_is_the_whole_string() {
        assert_eq!(
            parse(Format::Text, "  anything: [goes\n").unwrap(),
            json!("  anything: [goes\n")
        );
        assert_eq!(render(Format::Text, &json!("hello")).unwrap(), "hello");
        assert_eq!(render(Format::Text, &json!({"a": 1})).unwrap(), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn json_renders_pretty_with_two_spaces() {
        assert_eq!(
            render(Format::Json, &json!({"a": [1]})).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn renders_round_trip_through_parse() {
        let value = sample();
        round_trip(Format::Json, &value);
        round_trip(Format::Yaml, &value);
        round_trip(Format::Toml, &value);
        round_trip(Format::Yaml, &json!([1, "two", null, {"three": 3.5}]));
        round_trip(Format::Json, &json!("scalar"));

        let flat = json!({"a.b": "1", "with space": " lead and trail ", "uni": "ü😀", "ctl": "\u{1}\t\n", "": "e"});
        round_trip(Format::Properties, &flat);
    }

    #[test]
    fn depth_limit_applies_to_every_format() {
        assert!(parse(Format::Json, &nested_arrays(MAX_DEPTH)).is_ok());
        let err = parse(Format::Json, &nested_arrays(MAX_DEPTH + 1)).unwrap_err();
        assert!(err.message.contains("deeper"), "{err}");
        assert!(parse(Format::Json, &nested_arrays(100_000)).is_err());

        assert!(parse(Format::Yaml, &nested_arrays(MAX_DEPTH)).is_ok());
        assert!(parse(Format::Yaml, &nested_arrays(MAX_DEPTH + 1)).is_err());
        assert!(parse(Format::Yaml, &nested_arrays(100_000)).is_err());

        let dotted = |depth: usize| format!("{} = 1", vec!["k"; depth].join("."));
        assert!(parse(Format::Toml, &dotted(MAX_DEPTH)).is_ok());
        assert!(parse(Format::Toml, &dotted(MAX_DEPTH + 1)).is_err());
        assert!(parse(Format::Toml, &format!("x = {}", nested_arrays(100_000))).is_err());
    }

    #[test]
    fn size_limit_applies_before_parsing() {
        let big = format!("\"{}\"", "x".repeat(MAX_DOCUMENT_BYTES));
        let err = parse(Format::Json, &big).unwrap_err();
        assert!(err.message.contains("limit"), "{err}");
        assert!(parse(Format::Text, &"x".repeat(MAX_DOCUMENT_BYTES + 1)).is_err());
        assert!(parse(Format::Text, &"x".repeat(MAX_DOCUMENT_BYTES)).is_ok());
    }

    #[test]
    fn digest_ignores_key_order_and_formatting() {
        let one = parse(Format::Json, r#"{"b": 1, "a": [true]}"#).unwrap();
        let two = parse(Format::Yaml, "a: [true]\nb: 1\n").unwrap();
        assert_eq!(digest(&one), digest(&two));
        assert_eq!(digest(&one).len(), 64);
        assert_ne!(digest(&one), digest(&json!({"a": [true], "b": 2})));
        assert_eq!(
            digest(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
