//! flagd flag-definition documents: validated, then compiled into a [`FlagSet`].
//!
//! Structural mistakes (a missing state, a default variant that is not a variant, variants of
//! mixed types, an unknown field) reject the whole document with the path of the mistake. A
//! targeting rule that does not compile only breaks its own flag, which then resolves with
//! PARSE_ERROR as it does in flagd; [`FlagSet::problems`] lists such flags so that management
//! APIs can refuse them.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::context::KeyHasher;

type FlagMap = HashMap<Box<str>, Flag, BuildHasherDefault<KeyHasher>>;

use serde_json::{Map, Value};

use crate::Metadata;
use crate::flag::{ErrorCode, Flag, FlagState, Resolution, Targeting, ValueKind};
use crate::logic::{Compiler, Scope, inline_refs};

/// Bounds on what a document may hold.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_flags: usize,
    pub max_variants: usize,
    pub max_key_length: usize,
    /// How deep a targeting rule may nest.
    pub max_rule_depth: usize,
    /// How many nodes one flag's targeting may have once `$ref`s are inlined.
    pub max_rule_nodes: usize,
    /// How many targeting nodes the whole document may have once `$ref`s are inlined (each
    /// flag gets its own copy of the evaluators it uses).
    pub max_document_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_flags: 10_000,
            max_variants: 1_000,
            max_key_length: 256,
            max_rule_depth: 64,
            max_rule_nodes: 10_000,
            max_document_nodes: 200_000,
        }
    }
}

/// Why a document was refused: where (a path such as `flags.new-checkout.defaultVariant`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DefinitionError {
    pub path: String,
    pub message: String,
}

impl DefinitionError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A flag whose targeting does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub flag: String,
    pub message: String,
}

/// Every flag of one document, compiled.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    flags: FlagMap,
    metadata: Metadata,
}

static NO_METADATA: std::sync::LazyLock<Metadata> = std::sync::LazyLock::new(Metadata::new);

impl FlagSet {
    /// Parses and compiles a flagd JSON document.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, DefinitionError> {
        let document: Value = serde_json::from_str(text)
            .map_err(|error| DefinitionError::new("$", format!("not valid JSON: {error}")))?;
        Self::from_document(&document, limits)
    }

    /// Compiles a flagd document already parsed (from JSON or YAML).
    pub fn from_document(document: &Value, limits: &Limits) -> Result<Self, DefinitionError> {
        let root = document
            .as_object()
            .ok_or_else(|| DefinitionError::new("$", "expected an object"))?;
        for key in root.keys() {
            if !matches!(key.as_str(), "$schema" | "flags" | "$evaluators" | "metadata") {
                return Err(DefinitionError::new(
                    key.clone(),
                    "unknown field (expected flags, $evaluators, metadata, $schema)",
                ));
            }
        }
        let flags = match root.get("flags") {
            Some(Value::Object(flags)) => flags,
            Some(_) => return Err(DefinitionError::new("flags", "expected an object of flags")),
            None => return Err(DefinitionError::new("flags", "missing")),
        };
        if flags.len() > limits.max_flags {
            return Err(DefinitionError::new(
                "flags",
                format!("more than {} flags", limits.max_flags),
            ));
        }
        let empty = Map::new();
        let evaluators = match root.get("$evaluators") {
            Some(Value::Object(evaluators)) => evaluators,
            Some(_) => return Err(DefinitionError::new("$evaluators", "expected an object of rules")),
            None => &empty,
        };
        let metadata = metadata_at(root.get("metadata"), "metadata")?;

        let mut compiler = Compiler::new(limits.max_rule_depth, limits.max_rule_nodes);
        let mut compiled = FlagMap::with_capacity_and_hasher(flags.len(), Default::default());
        for (key, definition) in flags {
            let flag = compile_flag(key, definition, &metadata, evaluators, &mut compiler, limits)?;
            if compiler.total_nodes() > limits.max_document_nodes {
                return Err(DefinitionError::new(
                    "flags",
                    format!(
                        "the targeting rules expand to more than {} nodes with $ref inlined",
                        limits.max_document_nodes
                    ),
                ));
            }
            compiled.insert(Box::from(key.as_str()), flag);
        }
        Ok(Self {
            flags: compiled,
            metadata,
        })
    }

    /// The flags `keep` accepts from several sets, later sets overriding earlier ones key by key. Each flag carries its set's metadata already.
    pub fn merged<'a>(sets: impl IntoIterator<Item = &'a FlagSet>, keep: impl Fn(&Flag) -> bool) -> FlagSet {
        let mut flags = FlagMap::default();
        for set in sets {
            for (key, flag) in &set.flags {
                if keep(flag) {
                    flags.insert(key.clone(), flag.clone());
                }
            }
        }
        FlagSet {
            flags,
            metadata: Metadata::new(),
        }
    }

    /// The set as a flagd document with `$ref`s inlined and set metadata folded into each
    /// flag — the form flagd's sync protocol carries. Keys are sorted.
    pub fn to_document(&self) -> Value {
        let mut keys: Vec<&str> = self.flags.keys().map(|key| &**key).collect();
        keys.sort_unstable();
        let flags: Map<String, Value> = keys
            .into_iter()
            .filter_map(|key| Some((key.to_owned(), self.flags.get(key)?.definition())))
            .collect();
        serde_json::json!({ "flags": flags })
    }

    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.flags.get(key)
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Every flag, in no particular order.
    pub fn flags(&self) -> impl Iterator<Item = &Flag> {
        self.flags.values()
    }

    /// The document's own metadata (flag set id, version...).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Flags whose targeting does not compile, sorted by key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .flags
            .values()
            .filter_map(|flag| {
                flag.problem().map(|message| Problem {
                    flag: flag.key().to_owned(),
                    message: message.to_owned(),
                })
            })
            .collect();
        problems.sort_by(|a, b| a.flag.cmp(&b.flag));
        problems
    }

    /// Evaluates `key`; an unknown key is FLAG_NOT_FOUND.
    pub fn evaluate(&self, key: &str, scope: &Scope<'_>) -> Resolution<'_> {
        match self.flags.get(key) {
            Some(flag) => flag.evaluate(scope),
            None => Resolution::failed(
                ErrorCode::FlagNotFound,
                format!("flag \"{key}\" not found"),
                &NO_METADATA,
            ),
        }
    }
}

fn compile_flag(
    key: &str,
    definition: &Value,
    set_metadata: &Metadata,
    evaluators: &Map<String, Value>,
    compiler: &mut Compiler,
    limits: &Limits,
) -> Result<Flag, DefinitionError> {
    let at = |field: &str| format!("flags.{key}.{field}");
    if key.is_empty() || key.len() > limits.max_key_length {
        return Err(DefinitionError::new(
            format!("flags.{key}"),
            format!("a flag key has 1 to {} bytes", limits.max_key_length),
        ));
    }
    let fields = definition
        .as_object()
        .ok_or_else(|| DefinitionError::new(format!("flags.{key}"), "expected an object"))?;
    for field in fields.keys() {
        if !matches!(
            field.as_str(),
            "state" | "variants" | "defaultVariant" | "targeting" | "metadata"
        ) {
            return Err(DefinitionError::new(
                at(field),
                "unknown field (expected state, variants, defaultVariant, targeting, metadata)",
            ));
        }
    }

    let state = match fields.get("state").and_then(Value::as_str) {
        Some("ENABLED") => FlagState::Enabled,
        Some("DISABLED") => FlagState::Disabled,
        _ => {
            return Err(DefinitionError::new(
                at("state"),
                "expected \"ENABLED\" or \"DISABLED\"",
            ));
        }
    };
    let (variants, kind) = variants_at(fields.get("variants"), &at("variants"), limits)?;

    let default_variant = match fields.get("defaultVariant") {
        None | Some(Value::Null) => None,
        // flagd writes a missing default variant as "" in the documents it syncs.
        Some(Value::String(name)) if name.is_empty() => None,
        Some(Value::String(name)) if variants.iter().any(|(variant, _)| **variant == **name) => Some(name.as_str()),
        Some(Value::String(name)) => {
            let names: Vec<&str> = variants.iter().map(|(variant, _)| &**variant).collect();
            return Err(DefinitionError::new(
                at("defaultVariant"),
                format!("\"{name}\" is not one of the variants ({})", names.join(", ")),
            ));
        }
        Some(_) => {
            return Err(DefinitionError::new(
                at("defaultVariant"),
                "expected a variant name or null",
            ));
        }
    };

    let targeting = match fields.get("targeting") {
        None | Some(Value::Null) => Targeting::None,
        Some(Value::Object(rule)) if rule.is_empty() => Targeting::None,
        Some(rule @ Value::Object(_)) => {
            let compiled = inline_refs(rule, evaluators, limits.max_rule_depth, limits.max_rule_nodes)
                .and_then(|inlined| compiler.compile(&inlined).map(|expr| (expr, inlined)));
            match compiled {
                // A rule that is only a `$ref` to something other than a rule (a number, `{}`)
                // would serialise back as a targeting flagd refuses or reads as none.
                Ok((_, inlined)) if inlined.as_object().is_none_or(|rule| rule.is_empty()) => Targeting::Broken {
                    reason: "targeting: the evaluator it refers to is not a JSON Logic rule".to_owned(),
                    source: rule.clone(),
                },
                Ok((expr, inlined)) => Targeting::Rule { expr, source: inlined },
                Err(error) => Targeting::Broken {
                    reason: format!("targeting: {error}"),
                    source: rule.clone(),
                },
            }
        }
        Some(_) => return Err(DefinitionError::new(at("targeting"), "expected a JSON Logic object")),
    };

    let mut metadata = set_metadata.clone();
    metadata.extend(metadata_at(fields.get("metadata"), &at("metadata"))?);
    Ok(Flag::new(
        key,
        state,
        variants,
        default_variant,
        kind,
        targeting,
        metadata,
    ))
}

type Variants = Vec<(Box<str>, Value)>;

fn variants_at(
    variants: Option<&Value>,
    path: &str,
    limits: &Limits,
) -> Result<(Variants, ValueKind), DefinitionError> {
    let variants = match variants {
        Some(Value::Object(variants)) if !variants.is_empty() => variants,
        _ => {
            return Err(DefinitionError::new(
                path,
                "expected an object with at least one variant",
            ));
        }
    };
    if variants.len() > limits.max_variants {
        return Err(DefinitionError::new(
            path,
            format!("more than {} variants", limits.max_variants),
        ));
    }
    let mut kind: Option<ValueKind> = None;
    for (name, value) in variants {
        let Some(this) = ValueKind::of(value) else {
            return Err(DefinitionError::new(
                format!("{path}.{name}"),
                "a variant is a boolean, string, number or object",
            ));
        };
        kind = Some(match (kind, this) {
            (None, this) => this,
            (Some(ValueKind::Integer | ValueKind::Float), ValueKind::Integer | ValueKind::Float) => {
                if kind == Some(ValueKind::Float) || this == ValueKind::Float {
                    ValueKind::Float
                } else {
                    ValueKind::Integer
                }
            }
            (Some(seen), this) if seen == this => seen,
            (Some(seen), this) => {
                return Err(DefinitionError::new(
                    format!("{path}.{name}"),
                    format!(
                        "is a {} but other variants are {}s: all variants of a flag have one type",
                        this.as_str(),
                        seen.as_str()
                    ),
                ));
            }
        });
    }
    let kind = kind.unwrap_or(ValueKind::Object);
    Ok((
        variants
            .iter()
            .map(|(name, value)| (Box::from(name.as_str()), value.clone()))
            .collect(),
        kind,
    ))
}

fn metadata_at(metadata: Option<&Value>, path: &str) -> Result<Metadata, DefinitionError> {
    let entries = match metadata {
        None | Some(Value::Null) => return Ok(Metadata::new()),
        Some(Value::Object(entries)) => entries,
        Some(_) => return Err(DefinitionError::new(path, "expected an object")),
    };
    for (key, value) in entries {
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(DefinitionError::new(
                format!("{path}.{key}"),
                "metadata values are strings, numbers or booleans",
            ));
        }
    }
    Ok(entries.clone())
}
